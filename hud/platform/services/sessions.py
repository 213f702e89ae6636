"""Runtime sessions (spec platform.md §7): a fresh container of an environment's latest
successful build per session, reached through WebSocket tunnels spliced to its control port.

A session lives in memory (it is bound to containers of this process, which the Docker
watchdog removes if the process dies). It ends on ``DELETE``, after ``idle`` seconds without
an open tunnel (a client that vanished: its WebSockets closed), or after ``max_lifetime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

from hud.platform.services.errors import Invalid, NotFound
from hud.platform.services.identity import Identity

log = logging.getLogger("hud.platform.sessions")

P = TypeVar("P", bound=asyncio.Protocol)

#: Seconds a session may stay without any open tunnel before it is reaped.
DEFAULT_IDLE = float(os.environ.get("HUD_PLATFORM_SESSION_IDLE_S", "300"))
#: Seconds a session may live at all.
DEFAULT_MAX_LIFETIME = float(os.environ.get("HUD_PLATFORM_SESSION_MAX_S", "7200"))
#: At most this many live sessions per team.
MAX_SESSIONS_PER_TEAM = int(os.environ.get("HUD_PLATFORM_SESSIONS_PER_TEAM", "64"))


@dataclass
class Session:
    id: str
    team_id: uuid.UUID
    environment: str
    trace_id: str | None
    host: str
    port: int
    container: str | None
    token: str | None
    stack: contextlib.AsyncExitStack
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    tunnels: int = 0
    closing: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "trace_id": self.trace_id,
            "status": "closing" if self.closing else "running",
            "tunnels": self.tunnels,
        }


class SessionService:
    """Starts, tracks, tunnels to and tears down runtime sessions."""

    def __init__(
        self,
        builds: Any,
        *,
        idle: float = DEFAULT_IDLE,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        sweep_every: float = 1.0,
    ) -> None:
        self.builds = builds
        self.idle = idle
        self.max_lifetime = max_lifetime
        self.sweep_every = sweep_every
        self.sessions: dict[str, Session] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def create(
        self, ident: Identity, environment: str, trace_id: str | None = None
    ) -> dict[str, Any]:
        from hud.eval.runtimes.docker import DockerRuntime
        from hud.types.task import Task

        live = [s for s in self.sessions.values() if s.team_id == ident.team_id]
        if len(live) >= MAX_SESSIONS_PER_TEAM:
            raise Invalid(f"too many runtime sessions ({len(live)}); delete finished ones first")
        latest = await self.builds.latest_build(ident, environment)
        if latest is None:
            raise NotFound(
                f"environment {environment!r} has no successful build: run `hud deploy` first"
            )
        spec = await self.builds.runtime(ident, latest["registry_id"])
        runtime = DockerRuntime(
            runtime_config=spec.get("runtime_config") or {"image": spec["image"]},
            env_vars=spec.get("environment_variables") or {},
            prefork=0,
        )
        stack = contextlib.AsyncExitStack()
        try:
            task = Task(env=spec["name"], id="session")
            rt = await stack.enter_async_context(runtime(task))
        except BaseException:
            await stack.aclose()
            raise
        parsed = urlparse(rt.url)
        session = Session(
            id=uuid.uuid4().hex,
            team_id=ident.team_id,
            environment=spec["name"],
            trace_id=trace_id,
            host=parsed.hostname or "127.0.0.1",
            port=int(parsed.port or 8765),
            container=rt.params.get("container"),
            token=rt.params.get("token"),
            stack=stack,
        )
        self.sessions[session.id] = session
        self._ensure_sweeper()
        log.info("session %s: %s on %s", session.id, spec["name"], rt.url)
        return session.public()

    def get(self, ident: Identity, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.team_id != ident.team_id or session.closing:
            raise NotFound(f"runtime session not found: {session_id}")
        return session

    async def delete(self, ident: Identity, session_id: str) -> dict[str, Any]:
        session = self.get(ident, session_id)
        await self._close(session, "deleted")
        return {"id": session.id, "status": "deleted"}

    async def _close(self, session: Session, why: str) -> None:
        if session.closing:
            return
        session.closing = True
        self.sessions.pop(session.id, None)
        log.info("session %s %s", session.id, why)
        with contextlib.suppress(Exception):
            await asyncio.shield(session.stack.aclose())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self.sessions.values()):
            await self._close(session, "closed with the platform")

    # -- expiry --------------------------------------------------------------------------
    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while self.sessions:
            await asyncio.sleep(self.sweep_every)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.created > self.max_lifetime:
                    await self._close(session, "reached its maximum lifetime")
                elif session.tunnels == 0 and now - session.last_active > self.idle:
                    await self._close(session, f"idle for {self.idle:g}s (reaped)")

    # -- tunnels -------------------------------------------------------------------------
    async def open_tunnel(
        self, ident: Identity, session_id: str, protocol: Callable[[], P]
    ) -> tuple[Session, P]:
        """A new TCP connection to the session's control port, served by ``protocol()``
        (raises `OSError` while the container boots: the caller closes the WebSocket and the
        client retries)."""
        session = self.get(ident, session_id)
        session.last_active = time.monotonic()  # a client retrying while the container boots
        loop = asyncio.get_running_loop()
        _, made = await loop.create_connection(protocol, session.host, session.port)
        session.tunnels += 1
        session.last_active = time.monotonic()
        return session, made

    def tunnel_closed(self, session: Session) -> None:
        session.tunnels = max(0, session.tunnels - 1)
        session.last_active = time.monotonic()


#: Largest first frame the tunnel reads to add the control token to.
MAX_FIRST_FRAME = 1024 * 1024


def with_token(first_line: bytes, token: str | None) -> bytes:
    """The first hud/1.0 frame of a tunnel connection with the session container's control
    token added (``params.auth_token``): the container's server only serves (and shares ssh
    client keys with) connections that present it; clients never see it."""
    if not token:
        return first_line
    try:
        frame = json.loads(first_line)
    except ValueError:
        return first_line
    if not isinstance(frame, dict):
        return first_line
    params = frame.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return first_line
    frame["params"] = {**params, "auth_token": token}
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"
