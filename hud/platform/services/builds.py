"""The environment registry and its builds (spec platform.md §3, §14).

A build starts as an upload slot (``upload-url``): the client PUTs a context tarball to a URL
carrying a one-time token, then triggers it. The trigger names the environment (a registry
entry, created on first use; the same name is a new version), upserts its secrets (Fernet tokens
at rest) and queues the build: a background job of this process that builds the image with the
Docker daemon (layer cache kept; ``no_cache`` skips it), pushes it to the image registry when the
platform has one, and serves it once (``hello`` + ``tasks.list``) to capture its manifest. Each
build has its own log (JSON lines under ``<data>/builds``) which the log WebSocket streams; no
secret value is ever written to it or to any reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets as _secrets
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hud.platform.db import Database
from hud.platform.db.deploy_schema import builds, environment_secrets, environments
from hud.platform.services.common import iso, now, parse_uuid
from hud.platform.services.errors import Invalid, NotFound
from hud.platform.services.identity import Identity
from hud.platform.services.storage import LocalStorage, Storage
from hud.platform.services.vault import Vault
from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.builds")

ACTIVE = ("IN_PROGRESS", "MIGRATING", "CANCELLING")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Largest context tarball accepted.
MAX_UPLOAD = 1024 * 1024 * 1024
#: Label on every image the platform builds; its value identifies the platform (data dir).
IMAGE_LABEL = "io.hud.platform"
DOCKERFILES = ("Dockerfile.hud", "Dockerfile")
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
ERROR_LINES = 20
#: Builds run at once by one platform process (more wait their turn, IN_PROGRESS).
MAX_CONCURRENT_BUILDS = 2
#: A build no process of this platform runs, whose log has been silent this long, is failed.
ORPHAN_QUIET_S = 60.0
MANIFEST_TIMEOUT = 180.0
#: A log follower wakes on every write of this process's builds; this often otherwise (builds
#: run by another process, whose writes it cannot hear).
FOLLOW_POLL_S = 1.0


_STEP = re.compile(r"^Step (\d+)/(\d+) : ")
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
#: A parser directive line (only at the top of a Dockerfile).
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=")
_CONTINUED = re.compile(r"\\[ \t]*$")
_KEYWORD = re.compile(r"[\t\v\f\r ]+")
#: Steps that change the image's files (a capture may start from the image of the last one).
_FS_STEPS = ("run", "copy", "add")
#: Steps after it that leave what a container of the image runs unchanged.
_INERT_STEPS = ("expose", "label", "stopsignal", "maintainer")
#: Steps after it whose effect the capture applies itself (as container-create options).
_COMMAND_STEPS = ("cmd", "entrypoint")


@dataclass(frozen=True)
class Tail:
    """A Dockerfile whose last steps after its last file-changing one (``anchor``, a RUN, COPY
    or ADD of the last stage, numbered from 1) only set metadata: CMD and ENTRYPOINT, whose
    effect ``launch`` computes, and steps that do not change what a container runs (EXPOSE,
    LABEL, STOPSIGNAL, MAINTAINER). ``steps`` are its instructions as the legacy builder prints
    them (``Step i/n : <text>``), to check against the build's own lines."""

    steps: tuple[str, ...]
    anchor: int
    commands: tuple[tuple[str, list[str] | str], ...]  # ("cmd"|"entrypoint", exec argv | shell)
    cmd_set: bool  # the anchor's stage sets CMD before it

    def launch(self, config: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
        """(entrypoint, command) of the final image, from ``config`` (the anchor image's
        ``Config``), as the legacy builder sets them: a shell form runs in the image's SHELL
        (default ``/bin/sh -c``); an ENTRYPOINT clears the CMD unless the stage set one."""
        entrypoint = list(config.get("Entrypoint") or []) or None
        command = list(config.get("Cmd") or []) or None
        shell = list(config.get("Shell") or []) or ["/bin/sh", "-c"]
        cmd_set = self.cmd_set
        for word, form in self.commands:
            argv = form if isinstance(form, list) else [*shell, form]
            if word == "cmd":
                command, cmd_set = argv, True
            else:
                entrypoint = argv
                if not cmd_set:
                    command = None
        return entrypoint, command


def dockerfile_tail(text: str) -> Tail | None:
    """The `Tail` of a Dockerfile, or None when its last steps are not only ones it handles
    exactly (ENV, ARG, WORKDIR, USER, SHELL, ONBUILD, HEALTHCHECK, VOLUME..., a flag, an empty
    or malformed exec form) or it cannot be read plainly (an ``escape`` directive)."""
    lines = text.splitlines()
    for line in lines:
        directive = _DIRECTIVE.match(line.strip())
        if directive is None:
            break
        if directive.group(1).lower() == "escape":
            return None
    steps: list[str] = []
    current: str | None = None
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continued instruction, as docker does
        piece = raw.lstrip() if current is None else raw
        more = _CONTINUED.search(piece)
        if more is not None:
            current = (current or "") + piece[: more.start()]
            continue
        steps.append(((current or "") + piece).strip())
        current = None
    if current is not None and current.strip():
        steps.append(current.strip())
    words = [_KEYWORD.split(step, maxsplit=1)[0].lower() for step in steps]
    if "from" not in words:
        return None
    stage = len(words) - 1 - words[::-1].index("from")
    anchor = next(
        (
            i
            for i in range(len(words) - 1, stage, -1)
            if words[i] not in (*_INERT_STEPS, *_COMMAND_STEPS)
        ),
        None,
    )
    if anchor is None or words[anchor] not in _FS_STEPS or anchor == len(steps) - 1:
        return None
    commands: list[tuple[str, list[str] | str]] = []
    for step, word in zip(steps[anchor + 1 :], words[anchor + 1 :], strict=True):
        if word in _COMMAND_STEPS:
            form = _command_form(step)
            if form is None:
                return None
            commands.append((word, form))
    return Tail(tuple(steps), anchor + 1, tuple(commands), "cmd" in words[stage + 1 : anchor])


def _command_form(step: str) -> list[str] | str | None:
    """A CMD/ENTRYPOINT step's exec form (a non-empty JSON array of strings) or shell form
    (its text); None for what is not handled (flags, empty, ``[`` but not such an array)."""
    parts = _KEYWORD.split(step, maxsplit=1)
    rest = parts[1].strip() if len(parts) == 2 else ""
    if not rest or rest.startswith("--"):
        return None
    if not rest.startswith("["):
        return rest
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return None
    try:  # a lone surrogate: Go's decoder would not keep it as it is
        "".join(value).encode()
    except UnicodeError:
        return None
    return value


def normalize_env_name(name: str) -> str:
    """Registry names (§3.1): lowercase, spaces/underscores -> ``-``, other characters dropped."""
    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    text = re.sub(r"[^a-z0-9.-]", "", text)
    return re.sub(r"-{2,}", "-", text).strip("-.")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def platform_id(data_dir: Path) -> str:
    """The value of `IMAGE_LABEL` on the images of the platform serving from ``data_dir``."""
    return _hash(str(Path(data_dir).resolve()))[:12]


class BuildFailed(HudError):
    """A build step failed; ``lines`` are the failing lines shown as the error message."""


class BuildLog:
    """One build's log: JSON lines ``{"t": ms, "m": text}``, secrets masked on the way in.
    Written from the event loop and from worker threads (docker build, push) at once;
    ``notify`` (thread-safe) is called after each write, to wake the log's followers."""

    def __init__(
        self, path: Path, hide: Callable[[str], str], notify: Callable[[], None] = lambda: None
    ) -> None:
        self.path = path
        self.hide = hide
        self.notify = notify
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self.tail: list[str] = []

    def write(self, text: str) -> None:
        with self._lock:
            for line in text.splitlines():
                line = self.hide(line.rstrip())
                if not line.strip():
                    continue
                self.tail = [*self.tail[-(ERROR_LINES * 2) :], line]
                self._fh.write(json.dumps({"t": int(time.time() * 1000), "m": line}) + "\n")
            self._fh.flush()
        self.notify()

    def close(self) -> None:
        self._fh.close()


class BuildService:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        registry: str | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.db = db
        self.data_dir = Path(data_dir)
        self.storage: Storage = storage or LocalStorage(self.data_dir / "uploads")
        self.logs = self.data_dir / "builds"
        self.vault = Vault(self.data_dir)
        self.registry = registry.rstrip("/") if registry else None
        self.platform_id = platform_id(self.data_dir)
        self._jobs: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._watchers: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._since = now()
        self._lock: Any = None

    # -- registry (§3.1) --------------------------------------------------------------------
    async def list_environments(
        self, ident: Identity, *, search: str | None, limit: int, offset: int, sort_by: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        where = [environments.c.team_id == ident.team_id]
        if search:
            where.append(environments.c.name.contains(normalize_env_name(search) or search))
        order = environments.c.created_at.desc() if sort_by == "date" else environments.c.name.asc()
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(environments).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(environments).where(*where).order_by(order).limit(limit).offset(offset)
                )
            ).all()
            items = [await self._environment(conn, row) for row in rows]
        return items, total

    async def get_environment(self, ident: Identity, env_id: str) -> dict[str, Any]:
        eid = parse_uuid(env_id, "environment")
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(environments).where(
                        environments.c.id == eid, environments.c.team_id == ident.team_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"environment {env_id} not found")
            return await self._environment(conn, row)

    async def _environment(self, conn: AsyncConnection, row: Any) -> dict[str, Any]:
        latest = await self._latest(conn, row.id)
        names = (
            await conn.execute(
                select(environment_secrets.c.name).where(
                    environment_secrets.c.environment_id == row.id
                )
            )
        ).scalars()
        return {
            "id": str(row.id),
            "name": row.name,
            "project_id": str(row.project_id) if row.project_id else None,
            "created_at": iso(row.created_at),
            "runtime_provider": row.runtime_provider,
            "secret_names": sorted(names),
            "latest_build": _build(latest) if latest is not None else None,
        }

    async def _latest(self, conn: AsyncConnection, env_id: uuid.UUID) -> Any:
        return (
            await conn.execute(
                select(builds)
                .where(builds.c.environment_id == env_id, builds.c.status == "SUCCEEDED")
                .order_by(builds.c.version.desc())
                .limit(1)
            )
        ).first()

    async def latest_build(self, ident: Identity, name: str) -> dict[str, Any] | None:
        """The newest successful build of the environment called ``name`` (any spelling)."""
        async with self.db.read() as conn:
            env = (
                await conn.execute(
                    select(environments).where(
                        environments.c.team_id == ident.team_id,
                        environments.c.name == normalize_env_name(name),
                    )
                )
            ).first()
            if env is None:
                return None
            row = await self._latest(conn, env.id)
        return None if row is None else {**_build(row), "registry_id": str(env.id)}

    async def runtime(
        self, ident: Identity, env_id: str, *, include_secrets: bool = True
    ) -> dict[str, Any]:
        """What a runner needs to run the environment: the latest build's image (or Compose
        recipe), the names of its secrets and, with ``include_secrets``, their values in clear
        for injecting into its containers. The platform's own runners (sessions, hosted
        rollouts) take them in process; over the API (``POST /v2/registry/<id>/runtime``) they
        are sent only on an explicit opt-in (``hud eval <taskset> --runtime docker
        --env-secrets``), the one reply that can carry them."""
        env = await self.get_environment(ident, env_id)
        latest = env.get("latest_build")
        if not latest:
            raise NotFound(f"environment {env['name']} has no successful build: run `hud deploy`")
        out: dict[str, Any] = {
            "registry_id": env["id"],
            "name": env["name"],
            "version": latest["version"],
            "image": latest["uri"],
            "runtime_config": latest.get("runtime_config") or {"image": latest["uri"]},
            "secret_names": env["secret_names"],
        }
        if include_secrets:
            out["environment_variables"] = await self.secrets_for(
                ident.team_id, uuid.UUID(env["id"])
            )
        return out

    async def secrets_for(self, team_id: uuid.UUID, env_id: uuid.UUID) -> dict[str, str]:
        """The environment's secrets in clear, for injecting into its containers only."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(environment_secrets).where(
                        environment_secrets.c.environment_id == env_id
                    )
                )
            ).all()
        return {r.name: self.vault.open(r.value) for r in rows}

    # -- builds (§3.2) ----------------------------------------------------------------------
    async def upload_url(self, ident: Identity, base_url: str) -> dict[str, Any]:
        build_id = uuid.uuid4()
        token = _secrets.token_urlsafe(32)
        async with self.db.write() as conn:
            await conn.execute(
                builds.insert().values(
                    id=build_id,
                    team_id=ident.team_id,
                    user_id=ident.user_id,
                    status="UPLOADING",
                    upload_token=_hash(token),
                    no_cache=0,
                    created_at=now(),
                )
            )
        url = f"{base_url.rstrip('/')}/v2/builds/{build_id}/upload?token={token}"
        return {"build_id": str(build_id), "upload_url": url}

    async def receive_upload(
        self, build_id: str, token: str | None, chunks: AsyncIterator[bytes]
    ) -> int:
        bid = parse_uuid(build_id, "build")
        async with self.db.read() as conn:
            row = (await conn.execute(select(builds).where(builds.c.id == bid))).first()
        if row is None or not token or not _secrets.compare_digest(row.upload_token, _hash(token)):
            raise NotFound(f"upload {build_id} not found")
        if row.status != "UPLOADING":
            raise Invalid(f"build {build_id} was already triggered")
        key = f"contexts/{bid}.tar.gz"
        size = await self.storage.put(key, chunks, limit=MAX_UPLOAD)
        async with self.db.write() as conn:
            await conn.execute(update(builds).where(builds.c.id == bid).values(upload_key=key))
        return size

    async def trigger(self, ident: Identity, body: dict[str, Any]) -> dict[str, Any]:
        bid = parse_uuid(body.get("build_id"), "build")
        raw_name = str(body.get("name") or "").strip()
        name = normalize_env_name(raw_name)
        if not name:
            raise Invalid("name: the environment needs a name (Environment(name=...))")
        env_vars = body.get("environment_variables") or {}
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise Invalid("environment_variables: expected an object of strings")
        registry_id = body.get("registry_id")
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(builds).where(builds.c.id == bid, builds.c.team_id == ident.team_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"build {body.get('build_id')} not found")
            if row.status != "UPLOADING":
                raise Invalid(f"build {bid} was already triggered")
            if not row.upload_key:
                raise Invalid(f"build {bid} has no upload: PUT the context to its upload_url")
            if registry_id:
                env = (
                    await conn.execute(
                        select(environments).where(
                            environments.c.id == parse_uuid(registry_id, "environment"),
                            environments.c.team_id == ident.team_id,
                        )
                    )
                ).first()
                if env is None:
                    raise NotFound(f"environment {registry_id} not found")
            else:
                env = (
                    await conn.execute(
                        select(environments).where(
                            environments.c.team_id == ident.team_id,
                            environments.c.name == name,
                        )
                    )
                ).first()
            project_id = body.get("project_id")
            env_values: dict[str, Any] = {}
            if body.get("runtime_provider"):
                env_values["runtime_provider"] = str(body["runtime_provider"])
            if env is None:
                env_id = uuid.uuid4()
                await conn.execute(
                    environments.insert().values(
                        id=env_id,
                        team_id=ident.team_id,
                        project_id=parse_uuid(project_id, "project") if project_id else None,
                        name=name,
                        created_at=now(),
                        **env_values,
                    )
                )
            else:
                env_id = env.id
                if env_values:
                    await conn.execute(
                        update(environments).where(environments.c.id == env_id).values(**env_values)
                    )
            for key, value in env_vars.items():
                await conn.execute(
                    environment_secrets.delete().where(
                        environment_secrets.c.environment_id == env_id,
                        environment_secrets.c.name == key,
                    )
                )
                await conn.execute(
                    environment_secrets.insert().values(
                        environment_id=env_id,
                        name=key,
                        value=self.vault.seal(value),
                        updated_at=now(),
                    )
                )
            version = (
                await conn.execute(
                    select(func.coalesce(func.max(builds.c.version), 0)).where(
                        builds.c.environment_id == env_id
                    )
                )
            ).scalar_one() + 1
            build_args = body.get("build_args") or None
            await conn.execute(
                update(builds)
                .where(builds.c.id == bid)
                .values(
                    environment_id=env_id,
                    name=raw_name,
                    status="IN_PROGRESS",
                    no_cache=1 if body.get("no_cache") else 0,
                    build_args=build_args,
                    runtime_config=body.get("runtime_config") or None,
                    version=version,
                    uri=self._image_ref(ident.team_id, name, version),
                    started_at=now(),
                )
            )
        hidden = sorted(body.get("build_secrets") or {})
        # its log, created now, marks the build as run from this data dir (see `recover`)
        self.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_path(bid).touch()
        self._start(bid, ident.team_id, env_id, hidden)
        return {"id": str(bid), "registry_id": str(env_id), "version": version}

    def _image_ref(self, team_id: uuid.UUID, name: str, version: int) -> str:
        repo = f"hud-env/{name}-{team_id.hex[:8]}"
        return f"{self.registry}/{repo}:v{version}" if self.registry else f"{repo}:v{version}"

    async def status(self, ident: Identity, build_id: str) -> dict[str, Any]:
        row = await self._row(ident, build_id)
        if row.status in ACTIVE and self._orphaned(row):
            await self._finish(row.id, "FAILED", error="the platform restarted during this build")
            row = await self._row(ident, build_id)
        return _build(row)

    async def recover(self) -> int:
        """At start-up: fail the builds a previous process on this data dir left queued or
        running (it died: a crash, SIGKILL, power loss), so none stays IN_PROGRESS forever.

        A build belongs to this data dir when its log is here (created at trigger). The sweep
        runs only when this process holds the data dir's build lock, i.e. no other live
        process builds from it. Their uploads and Compose contexts are deleted; the Docker
        daemon drops a build whose client went away (killing its step's container), and the
        container serving an image for its manifest is removed by the dead process's reaper
        (or by `hud.eval.runtimes.docker.reap` on the next run). Returns how many were failed."""
        if not self._hold_lock():
            log.warning("another process builds from %s: no sweep of its builds", self.data_dir)
            return 0
        async with self.db.read() as conn:
            rows = (await conn.execute(select(builds).where(builds.c.status.in_(ACTIVE)))).all()
        swept = 0
        reason = "the platform stopped during this build (it was restarted): deploy again"
        for row in rows:
            path = self.log_path(row.id)
            if row.id in self._jobs or not path.exists():
                continue  # not run from this data dir: `status` fails it once its log is quiet
            blog = BuildLog(path, lambda text: text)
            try:
                blog.write(f"Build failed: {reason}")
            finally:
                blog.close()
            await self._finish(row.id, "FAILED", error=reason)
            if row.upload_key:
                with contextlib.suppress(Exception):
                    self.storage.delete(row.upload_key)
            shutil.rmtree(self.data_dir / "contexts" / str(row.id), ignore_errors=True)
            (self.data_dir / "contexts" / f"{row.id}.override.json").unlink(missing_ok=True)
            swept += 1
        if swept:
            log.warning("failed %d build(s) left unfinished by the previous run", swept)
        return swept

    def _hold_lock(self) -> bool:
        """Take (for this process's life) the exclusive lock of this data dir's builds."""
        if self._lock is not None:
            return True
        self.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        fh = open(self.logs / ".lock", "a+b")  # noqa: SIM115 - held until the process exits
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): one server per data dir is assumed
            pass
        except OSError:
            fh.close()
            return False
        self._lock = fh
        return True

    def _orphaned(self, row: Any) -> bool:
        """True for a build no process runs any more: not a job of this process, started before
        this process, and its log silent for a while (another replica may be running it)."""
        if row.id in self._jobs:
            return False
        started = row.started_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=self._since.tzinfo)
        if started is not None and started >= self._since:
            return False
        try:
            quiet = time.time() - self.log_path(row.id).stat().st_mtime
        except OSError:
            quiet = float("inf")
        return quiet > ORPHAN_QUIET_S

    async def _row(self, ident: Identity, build_id: str) -> Any:
        bid = parse_uuid(build_id, "build")
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(builds).where(builds.c.id == bid, builds.c.team_id == ident.team_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"build {build_id} not found")
        return row

    async def check_access(self, ident: Identity, build_id: str) -> uuid.UUID:
        return (await self._row(ident, build_id)).id

    def log_path(self, bid: uuid.UUID) -> Path:
        return self.logs / f"{bid}.log"

    async def follow(self, ident: Identity, build_id: str) -> AsyncIterator[dict[str, Any]]:
        """The build's log frames (§3.3) as they are written, then its end. Woken by each write
        of a build this process runs (no polling delay), else it looks every `FOLLOW_POLL_S`."""
        bid = await self.check_access(ident, build_id)
        path = self.log_path(bid)
        offset = 0
        pending = b""
        wake = asyncio.Event()
        self._watchers.setdefault(bid, set()).add(wake)
        try:
            yield {"type": "status", "message": f"Streaming logs of build {bid}"}
            ended: str | None = None
            while True:
                wake.clear()
                try:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        data = fh.read(1 << 20)
                except FileNotFoundError:
                    data = b""
                offset += len(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    yield {
                        "type": "log",
                        "message": entry.get("m", ""),
                        "timestamp": entry.get("t"),
                    }
                if data:
                    continue  # more may be there already; the status is read once it is drained
                if ended is not None:  # drained after the end was seen: nothing was lost
                    break
                status = (await self._row(ident, build_id)).status
                if status in ACTIVE and bid not in self._jobs:
                    status = (await self.status(ident, build_id))["status"]
                if status in TERMINAL:
                    ended = status  # read once more: lines written just before the end
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), FOLLOW_POLL_S)
        finally:
            watchers = self._watchers.get(bid)
            if watchers is not None:
                watchers.discard(wake)
                if not watchers:
                    self._watchers.pop(bid, None)
        yield {"type": "status_update", "status": ended}
        if ended == "SUCCEEDED":
            yield {"type": "complete", "message": "Build succeeded"}
        else:
            row = await self._row(ident, build_id)
            yield {"type": "error", "error": row.error_message or ended}

    def _wake(self, bid: uuid.UUID) -> None:
        for event in self._watchers.get(bid, ()):
            event.set()

    def _waker(self, bid: uuid.UUID) -> Callable[[], None]:
        """A thread-safe `_wake` of ``bid``'s followers (log writes come from worker threads)."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            if bid in self._watchers:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(self._wake, bid)

        return wake

    # -- the build job ------------------------------------------------------------------------
    def _start(
        self, bid: uuid.UUID, team_id: uuid.UUID, env_id: uuid.UUID, build_secrets: list[str]
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._queued(bid, team_id, env_id, build_secrets)
        )
        self._jobs[bid] = task
        task.add_done_callback(lambda _t: self._jobs.pop(bid, None))

    async def _finish(
        self,
        bid: uuid.UUID,
        status: str,
        *,
        error: str | None = None,
        manifest: dict[str, Any] | None = None,
        runtime_config: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": now(), "error_message": error}
        if manifest is not None:
            values["manifest"] = manifest
        if runtime_config is not None:
            values["runtime_config"] = runtime_config
        async with self.db.write() as conn:
            await conn.execute(update(builds).where(builds.c.id == bid).values(**values))
        self._wake(bid)

    async def _queued(
        self, bid: uuid.UUID, team_id: uuid.UUID, env_id: uuid.UUID, build_secrets: list[str]
    ) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_CONCURRENT_BUILDS)
        async with self._slots:
            await self._run(bid, team_id, env_id, build_secrets)

    async def _run(
        self, bid: uuid.UUID, team_id: uuid.UUID, env_id: uuid.UUID, build_secrets: list[str]
    ) -> None:
        from hud.eval.runtimes.docker import in_thread

        secret_values = await self.secrets_for(team_id, env_id)

        def hide(text: str) -> str:
            for value in secret_values.values():
                if len(value) >= 3:
                    text = text.replace(value, "***")
            return text

        blog = BuildLog(self.log_path(bid), hide, self._waker(bid))
        async with self.db.read() as conn:
            row = (await conn.execute(select(builds).where(builds.c.id == bid))).first()
        assert row is not None
        workdir = Path(tempfile.mkdtemp(prefix=f"hud-build-{bid.hex[:8]}-"))
        # The container serving the image for its manifest is removed after the build's end
        # is recorded (leaving this stack waits for it): nobody waits for that removal.
        probes = contextlib.AsyncExitStack()
        try:
            blog.write(f"Build {bid}: {row.name} v{row.version} -> {row.uri}")
            if build_secrets:
                blog.write(
                    "warning: build secrets are not supported by this platform's builder; "
                    f"ignored: {', '.join(build_secrets)}"
                )
            context = workdir / "context.tar"
            with self.storage.open(row.upload_key) as src, open(context, "wb") as out:
                names = await in_thread(_refilter, src, out)
            config = dict(row.runtime_config or {})
            compose_doc = _compose_document(names, config)
            runtime_config: dict[str, Any] | None = None
            early: asyncio.Future[dict[str, Any]] | None = None  # a capture already under way
            if compose_doc is not None:
                runtime_config, pushed = await self._build_compose(row, context, compose_doc, blog)
            else:
                dockerfile = next((d for d in DOCKERFILES if d in names), None)
                if dockerfile is None:
                    raise BuildFailed(
                        "the context has no Dockerfile.hud or Dockerfile (nor a compose.yaml "
                        "with a 'main' service) at its top level"
                    )
                blog.write(f"Building {row.uri} from {dockerfile}")
                early = await self._build_serving_early(
                    row, context, dockerfile, blog, secret_values, probes
                )
                pushed = [row.uri]
            # the push (to the platform's registry, if any) and the manifest capture at once
            _, manifest = await _both(
                self._push_all(pushed if self.registry else [], blog),
                early or self._capture(row, runtime_config, secret_values, blog, probes),
            )
            blog.write(
                f"Manifest: {len(manifest.get('tasks') or [])} task(s), "
                f"{len(manifest.get('capabilities') or [])} capability(ies)"
            )
            blog.write(f"Build succeeded: {row.uri}")
            await self._finish(bid, "SUCCEEDED", manifest=manifest, runtime_config=runtime_config)
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(bid, "FAILED", error="the build was cancelled"))
            raise
        except Exception as exc:
            if isinstance(exc, BuildFailed):
                message = hide(str(exc))
            else:
                message = hide(f"{type(exc).__name__}: {exc}")
                log.error("build %s crashed: %s", bid, message)  # masked: no raw traceback
            blog.write(message)
            blog.write("Build failed")
            await self._finish(bid, "FAILED", error=message)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(probes.aclose())
            blog.close()
            shutil.rmtree(workdir, ignore_errors=True)
            with contextlib.suppress(Exception):  # the image is the artifact now
                self.storage.delete(row.upload_key)

    def _labels(self) -> dict[str, str]:
        # One constant label, so an unchanged context is a fully cached build.
        return {IMAGE_LABEL: self.platform_id}

    def _docker_build(
        self,
        row: Any,
        context: Path,
        dockerfile: str,
        blog: BuildLog,
        user_image: Callable[[str, Tail | None], None] = lambda _id, _tail: None,
        tail: Tail | None = None,
    ) -> bool:
        """Build ``row.uri`` (blocking). ``user_image`` gets the id of the image of the
        Dockerfile's last step — all of it but our label — when it is new (some step was not
        served from the cache), as the daemon starts the label step. With ``tail`` (the
        Dockerfile's, as read from the context) it gets instead, as the daemon starts the step
        after the tail's anchor, the anchor's image and ``tail`` when that image is new and
        the build's steps so far are the tail's (and no base image's ONBUILD trigger ran: one
        can set CMD). False when they were not to the end: a capture started from that image
        does not tell what the built image serves."""
        import docker.errors

        from hud.eval.runtimes.docker import docker_client

        api = docker_client().api
        label_step = f"LABEL {IMAGE_LABEL}="
        steps = cached = froms = 0
        last: str | None = None
        followed = tail is not None  # the build's steps are the tail's so far
        early = False  # ``user_image`` was given the tail's anchor
        try:
            with open(context, "rb") as fh:
                for chunk in api.build(
                    fileobj=fh,
                    custom_context=True,
                    tag=row.uri,
                    dockerfile=dockerfile,
                    buildargs=row.build_args or None,
                    nocache=bool(row.no_cache),
                    rm=True,
                    forcerm=True,
                    decode=True,
                    labels=self._labels(),
                ):
                    if "stream" in chunk:
                        text = str(chunk["stream"])
                        for line in text.splitlines():
                            step = _STEP.match(line)
                            if step is not None:
                                steps += 1
                                number, total = int(step.group(1)), int(step.group(2))
                                said = line[step.end() :]
                                froms += _KEYWORD.split(said, maxsplit=1)[0].lower() == "from"
                                if tail is not None and followed:
                                    followed = total == len(tail.steps) + 1 and (
                                        said == tail.steps[number - 1]
                                        if number <= len(tail.steps)
                                        else number == total and label_step in line
                                    )
                                if (
                                    tail is not None
                                    and followed
                                    and number == tail.anchor + 1
                                    and last is not None
                                    and cached < tail.anchor - froms  # some step was built
                                ):
                                    early = True
                                    user_image(last, tail)
                                elif (
                                    not early
                                    and label_step in line
                                    and step.group(1) == step.group(2)
                                    and last is not None
                                    and cached < steps - 2  # the FROM step never says cached
                                ):
                                    user_image(last, None)
                            elif line.strip() == "---> Using cache":
                                cached += 1
                            elif line.startswith("# Executing ") and "build trigger" in line:
                                followed = False  # a base image's ONBUILD steps: not read
                            elif (image := _STEP_IMAGE.match(line)) is not None:
                                last = image.group(1)
                        blog.write(text)
                    if "error" in chunk:
                        blog.write(str(chunk["error"]))
                        raise BuildFailed("\n".join(blog.tail[-ERROR_LINES:]))
        except docker.errors.APIError as exc:
            raise BuildFailed(f"docker build failed: {exc.explanation or exc}") from None
        return followed or not early

    def _push(self, ref: str, blog: BuildLog) -> None:
        from hud.eval.runtimes.docker import docker_client

        repo, _, tag = ref.rpartition(":")
        blog.write(f"Pushing {ref}")
        last = ""
        for chunk in docker_client().api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise BuildFailed(f"pushing {ref} failed: {chunk['error']}")
            status = str(chunk.get("status") or "")
            if status and status != last and not chunk.get("progressDetail"):
                blog.write(f"{chunk.get('id', '')} {status}".strip())
                last = status
        blog.write(f"Pushed {ref}")

    async def _build_compose(
        self, row: Any, context: Path, document: str, blog: BuildLog
    ) -> tuple[dict[str, Any], list[str]]:
        """Build a Compose environment's images; (its runtime config, whose document names them
        by tag; the images it built)."""
        from hud.eval.runtimes.docker import Compose

        root = self.data_dir / "contexts" / str(row.id)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tarfile.open(context) as tar:
            tar.extractall(root, filter="data")
        project = f"hudbuild-{row.id.hex[:12]}"
        base = Compose(project, [root / document], project_dir=root)
        services = (await base.config()).get("services") or {}
        if "main" not in services:
            raise BuildFailed(
                f"{document} has no service 'main' (services: {', '.join(sorted(services))}); "
                "'main' serves the control channel"
            )
        repo, _, tag = row.uri.rpartition(":")
        images: dict[str, str] = {}
        override: dict[str, Any] = {"services": {}}
        for svc, spec in services.items():
            if "build" in spec:
                ref = row.uri if svc == "main" else f"{repo}-{svc}:{tag}"
                images[svc] = ref
                override["services"][svc] = {
                    "image": ref,
                    "build": {"labels": self._labels()},
                }
        over = root.parent / f"{row.id}.override.json"
        over.write_text(json.dumps(override))
        compose = Compose(project, [root / document, over], project_dir=root)
        blog.write(f"Building Compose project {document}: {', '.join(sorted(images)) or 'none'}")
        argv = compose.argv("build", *(["--no-cache"] if row.no_cache else []))
        code = await _stream(argv, blog)
        if code != 0:
            raise BuildFailed("\n".join(blog.tail[-ERROR_LINES:]))
        resolved = await compose.config()
        for spec in (resolved.get("services") or {}).values():
            spec.pop("build", None)
        resolved.pop("name", None)
        for kind in ("networks", "volumes"):
            for spec in (resolved.get(kind) or {}).values():
                if isinstance(spec, dict) and str(spec.get("name", "")).startswith(project):
                    spec.pop("name")  # each run's project names its own
        if "main" not in images:
            row_uri = (resolved["services"]["main"] or {}).get("image")
            if row_uri:
                async with self.db.write() as conn:
                    await conn.execute(
                        update(builds).where(builds.c.id == row.id).values(uri=row_uri)
                    )
        return {"compose": {"document": resolved, "root": str(root)}}, list(images.values())

    async def _unchanged_manifest(
        self, row: Any, runtime_config: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The previous version's manifest when this build produced the very same image."""
        from hud.eval.runtimes.docker import docker_client, in_thread

        if runtime_config is not None:  # Compose: several images, always served
            return None
        async with self.db.read() as conn:
            prev = await self._latest(conn, row.environment_id)
        if prev is None or not prev.manifest or not prev.uri:
            return None

        def image_id(ref: str) -> str | None:
            try:
                return str(docker_client().images.get(ref).id)
            except Exception:
                return None

        new, old = await in_thread(image_id, row.uri), await in_thread(image_id, prev.uri)
        return dict(prev.manifest) if new is not None and new == old else None

    async def _build_serving_early(
        self,
        row: Any,
        context: Path,
        dockerfile: str,
        blog: BuildLog,
        env_vars: dict[str, str],
        probes: contextlib.AsyncExitStack,
    ) -> asyncio.Future[dict[str, Any]] | None:
        """Build the image; when it is new, its manifest capture starts before the build ends:
        from the image of the Dockerfile's last step that changes files, with the CMD and
        ENTRYPOINT of the steps after it applied to the container (see `Tail`), as the
        daemon starts the step after it; else (a tail not handled) from the image of the
        Dockerfile's last step, while the daemon adds our label and tags it (the same image
        but for that label). Returns the capture under way, if any."""
        from hud.eval.runtimes.docker import in_thread

        loop = asyncio.get_running_loop()
        seen: asyncio.Future[tuple[str, Tail | None]] = loop.create_future()

        def settle(image_id: str, tail: Tail | None) -> None:
            if not seen.done():
                seen.set_result((image_id, tail))

        def user_image(image_id: str, tail: Tail | None) -> None:
            loop.call_soon_threadsafe(settle, image_id, tail)

        tail = await in_thread(_read_tail, context, dockerfile)
        building = asyncio.ensure_future(
            in_thread(self._docker_build, row, context, dockerfile, blog, user_image, tail)
        )
        capture: asyncio.Future[dict[str, Any]] | None = None
        try:
            either: set[asyncio.Future[Any]] = {building, seen}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if seen.done() and not building.done():
                image_id, used = seen.result()
                if used is None:
                    blog.write("Serving the image once to read its manifest (hello + tasks.list)")
                else:
                    blog.write(
                        f"Serving the image of step {used.anchor}/{len(used.steps) + 1} once to "
                        "read its manifest (hello + tasks.list), with the CMD and ENTRYPOINT "
                        "of the steps after it"
                    )
                capture = asyncio.ensure_future(
                    self._manifest(image_id, None, env_vars, probes, tail=used)
                )
            if not await building and capture is not None:
                blog.write("The build's steps were not the Dockerfile's as read: capture again")
                capture.cancel()
                await asyncio.gather(capture, return_exceptions=True)
                capture = None
        except BaseException:
            seen.cancel()
            if capture is not None:
                capture.cancel()
                await asyncio.gather(capture, return_exceptions=True)
            raise
        return capture

    async def _push_all(self, refs: list[str], blog: BuildLog) -> None:
        from hud.eval.runtimes.docker import in_thread

        for ref in refs:
            await in_thread(self._push, ref, blog)

    async def _capture(
        self,
        row: Any,
        runtime_config: dict[str, Any] | None,
        env_vars: dict[str, str],
        blog: BuildLog,
        probes: contextlib.AsyncExitStack,
    ) -> dict[str, Any]:
        """The built image's manifest: the previous version's when the image is the same,
        else read by serving it once."""
        manifest = await self._unchanged_manifest(row, runtime_config)
        if manifest is not None:
            blog.write("The image is unchanged since the previous version: manifest kept")
            return manifest
        blog.write("Serving the image once to read its manifest (hello + tasks.list)")
        return await self._manifest(row.uri, runtime_config, env_vars, probes)

    async def _manifest(
        self,
        image: str,
        runtime_config: dict[str, Any] | None,
        env_vars: dict[str, str],
        probes: contextlib.AsyncExitStack,
        *,
        tail: Tail | None = None,
    ) -> dict[str, Any]:
        """``hello`` + ``tasks.list`` of a container of ``image`` (with ``tail``: the image of
        its anchor step, run with the entrypoint and command the tail gives it); the container
        is removed when ``probes`` is closed (inside ``async with`` a `DockerRuntime` removes in
        the background)."""
        from hud.clients.client import HudClient
        from hud.eval.runtimes.docker import DockerRuntime, docker_client, in_thread
        from hud.eval.task import Task

        config = runtime_config or {"image": image}
        entrypoint = command = None
        if tail is not None:
            inspected = await in_thread(docker_client().api.inspect_image, image)
            entrypoint, command = tail.launch(inspected.get("Config") or {})
        runtime = DockerRuntime(
            runtime_config=config,
            env_vars=env_vars,
            prefork=0,
            entrypoint=entrypoint,
            command=command,
        )
        await probes.enter_async_context(runtime)
        probe = Task(env="manifest", id="manifest")
        try:
            async with asyncio.timeout(MANIFEST_TIMEOUT), runtime(probe) as rt:
                client = HudClient(rt.url, token=rt.params.get("token"))
                try:
                    await client.connect()
                    hello = await client.hello()
                    listed = await client.list_tasks()
                finally:
                    with contextlib.suppress(Exception):
                        await client.close()
        except TimeoutError:
            raise BuildFailed(
                f"the image did not serve hello within {MANIFEST_TIMEOUT:g}s"
            ) from None
        except Exception as exc:
            raise BuildFailed(f"serving the built image failed: {exc}") from None
        info = dict(hello)
        caps = [
            {"name": b.get("name"), "protocol": b.get("protocol")}
            for b in info.get("bindings") or []
            if isinstance(b, dict)
        ]
        return {
            "env": info.get("env") or {},
            "tasks": listed,
            "capabilities": caps,
        }


async def _both(first: Any, second: Any) -> tuple[Any, Any]:
    """Run two coroutines at once; both end before the first error (if any) is raised."""
    results: tuple[Any, Any] = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]


def _read_tail(context: Path, dockerfile: str) -> Tail | None:
    """The `Tail` of the Dockerfile in the context tarball, if it has one."""
    try:
        with tarfile.open(context) as tar:
            fh = tar.extractfile(dockerfile)
            data = fh.read(1 << 20) if fh is not None else b""
        return dockerfile_tail(data.decode("utf-8"))
    except (OSError, KeyError, tarfile.TarError, UnicodeError):
        return None


def _refilter(src: Any, out: Any) -> list[str]:
    from hud.platform.client.context import refilter

    return refilter(src, out)


def _compose_document(names: list[str], config: dict[str, Any]) -> str | None:
    compose = config.get("compose") if isinstance(config, dict) else None
    if isinstance(compose, dict) and isinstance(compose.get("document"), str):
        doc = compose["document"].removeprefix("./")
        if doc not in names:
            raise BuildFailed(f"runtime_config.compose.document {doc!r} is not in the upload")
        return doc
    if any(d in names for d in DOCKERFILES):
        return None
    return next((c for c in COMPOSE_FILES if c in names), None)


async def _stream(argv: list[str], blog: BuildLog) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    async for line in proc.stdout:
        blog.write(line.decode("utf-8", "replace"))
    return await proc.wait()


def _build(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(row.id),
        "status": row.status if row.status != "UPLOADING" else "PENDING",
        "name": row.name,
        "registry_id": str(row.environment_id) if row.environment_id else None,
        "version": str(row.version) if row.version is not None else None,
        "uri": row.uri,
        "error_message": row.error_message,
        "manifest": row.manifest,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
    }
    if row.runtime_config:
        out["runtime_config"] = row.runtime_config
    return out


__all__ = ["BuildService", "normalize_env_name", "platform_id"]
