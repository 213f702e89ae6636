"""Running the platform: the data directory, first-start bootstrap, the server, admin actions.

The data directory (default ``~/.hud/platform``) holds the embedded SQLite database and
``platform.json`` — where the running server listens and which database it uses — so admin
commands given the same ``--data-dir`` reach the same platform.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hud.platform.db import Database, redact_url

T = TypeVar("T")
log = logging.getLogger("hud.platform")
STATE_FILE = "platform.json"
DEFAULT_PORT = 8700


def default_data_dir() -> Path:
    return Path.home() / ".hud" / "platform"


@dataclass
class DataDir:
    path: Path

    @classmethod
    def at(cls, path: Path | str | None) -> DataDir:
        return cls(Path(path).expanduser() if path else default_data_dir())

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self, **values: Any) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {**self.state(), **values}
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, self.state_file)

    def db_url(self, override: str | None = None) -> str:
        if override:
            return override
        stored = self.state().get("db")
        if isinstance(stored, str) and stored:
            return stored
        return f"sqlite:///{self.path / 'platform.db'}"

    def url(self) -> str | None:
        value = self.state().get("url")
        return value if isinstance(value, str) else None


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def open_database(data_dir: DataDir, db: str | None) -> Database:
    """The platform database, migrated to the newest schema."""
    if data_dir.db_url(db).startswith("sqlite"):
        data_dir.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = Database(data_dir.db_url(db))
    try:
        await database.migrate()
    except Exception:
        await database.close()
        raise
    return database


def admin(data_dir: DataDir, db: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(IdentityService)`` against the platform's database (created if new)."""
    from hud.platform.services import IdentityService

    async def main() -> T:
        database = await open_database(data_dir, db)
        try:
            identities = IdentityService(database)
            await identities.bootstrap()
            return await action(identities)
        finally:
            await database.close()

    return asyncio.run(main())


@dataclass
class Started:
    url: str
    admin_key: str | None
    db: str


def _uvicorn_server() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """Runs ``on_stop`` (e.g. writing buffered gateway usage) once connections are closed,
        before uvicorn re-raises the stopping signal."""

        def __init__(self, config: Any, *, on_stop: Callable[[], Awaitable[None]]) -> None:
            super().__init__(config)
            self.on_stop = on_stop

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets=sockets)
            await self.on_stop()

    return Server


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    data_dir: DataDir,
    db: str | None = None,
    on_start: Callable[[Started], None] | None = None,
    device_interval: int = 5,
    log_level: str = "warning",
    registry: str | None = None,
    rollouts: dict[str, Any] | None = None,
) -> None:
    """Migrate, bootstrap, bind and serve until cancelled (Ctrl-C / SIGTERM). ``rollouts``:
    where hosted rollouts run (``ray`` address, ``workers``, ``per_team``)."""
    import uvicorn

    from hud.platform.api import create_app, splice
    from hud.platform.services import IdentityService

    _Server = _uvicorn_server()
    database = await open_database(data_dir, db)
    try:
        admin_key = await IdentityService(database).bootstrap()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: a reply written in two parts (head, then body)
        # must not wait out the client's delayed ACK (~40 ms per request otherwise).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
        bound = sock.getsockname()[1]
        url = f"http://{_url_host(host)}:{bound}"
        # one id per data dir: the label of the containers this platform starts, so the next
        # start on the same data removes what a crash left behind
        instance = str(data_dir.state().get("instance") or uuid.uuid4().hex)
        data_dir.save_state(
            url=url, host=host, port=bound, pid=os.getpid(), db=data_dir.db_url(db),
            instance=instance,
        )  # fmt: skip
        app = create_app(
            database,
            device_interval=device_interval,
            data_dir=data_dir.path,
            registry=registry,
            rollout_options={**(rollouts or {}), "instance": instance},
        )
        await app.state.builds.recover()  # builds a dead previous run left IN_PROGRESS
        from hud.eval.runtimes.docker import SESSION_ENV

        os.environ[SESSION_ENV] = app.state.rollouts.container_label()  # session containers
        swept = await app.state.rollouts.recover()
        if any(swept.values()):
            log.warning("after a restart: %s", swept)
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            # Runtime tunnels splice WebSockets to container connections (api/splice.py);
            # compressing a byte tunnel costs time on both ends for nothing.
            ws=splice.protocol_class(),
            ws_per_message_deflate=False,
        )
        server = _Server(config, on_stop=app.state.gateway.flush)
        if on_start is not None:
            on_start(Started(url=url, admin_key=admin_key, db=redact_url(database.url)))
        # What is alive now (modules, the app, the schema) lives as long as the server: out of
        # the collector's sight, a full collection no longer walks it every time a burst of
        # reports (parsed JSON: many small containers) triggers one.
        gc.collect()
        gc.freeze()
        # A batch of reports allocates and frees some 100,000 containers: a young generation
        # of 10,000 (not 700) lets them die by reference counting before a collection promotes
        # them, for a tenth of the collector's passes (a quarter less CPU per report).
        gc.set_threshold(10_000, 10, 10)
        try:
            await server.serve(sockets=[sock])
        finally:
            await app.state.rollouts.aclose()
            await app.state.sessions.aclose()
    finally:
        await database.close()
