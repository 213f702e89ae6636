"""The control-channel server: one TCP port, JSON-RPC sessions and capability tunnels.

Run an environment file with ``python -m hud.environment.server PATH [--env NAME] [--host H]
[--port P]``; it prints ``HUD_SERVE_PORT=<port>`` once it is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hud.environment.environment import Environment, current_task_limits
from hud.environment.runner import TaskError, TaskRunner
from hud.environment.template import BadArgs
from hud.protocol import (
    DEFAULT_MAX_FRAME,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    UNAUTHORIZED,
    FrameTooLargeError,
    HudError,
    HudProtocolError,
    decode_frame,
    encode_frame,
    error_frame,
    oversize_message,
    result_frame,
)
from hud.transport import Half, relay
from hud.transport.channel import ProtocolIO, SocketIO

log = logging.getLogger("hud.server")

#: Parked (started, disconnected, ungraded) sessions are cancelled after this idle time.
DEFAULT_SESSION_TTL = 24 * 3600.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what clients can make a `Server` hold (``hud serve`` flags of the same names).

    With the defaults the server's memory stays below about
    ``60 MiB + max_buffered + max_parked_bytes + 4 * max_frame`` (~ 250 MiB; the security
    tests hold it under 300 MiB) whatever clients send: beyond ``max_buffered`` bytes of
    incomplete frames in total, the connections whose frames have waited longest are dropped
    (with an error frame); parking a session beyond ``max_parked`` / ``max_parked_bytes``
    cancels the oldest parked one (its teardown runs).
    """

    #: Open connections (control sessions and tunnels); never more than the process's
    #: descriptor limit minus ``fd_reserve``. At the limit a new connection sheds an idle one
    #: (one that never completed a frame, else one with no task), or is refused.
    max_connections: int = 1024
    #: Descriptors kept free for the environment itself (tasks, tunnels' backends, files).
    fd_reserve: int = 64
    #: Longest frame accepted (bytes, newline excluded); also the most a connection buffers.
    max_frame: int = DEFAULT_MAX_FRAME
    #: Bytes of incomplete frames buffered over all connections.
    max_buffered: int = 64 * MiB
    #: Parked sessions kept (count, and bytes of their start request and reply).
    max_parked: int = 1000
    max_parked_bytes: int = 64 * MiB
    #: A connection that does not complete a frame this many seconds after connecting (or
    #: after the first bytes of a frame) is closed. 0 = never.
    idle_timeout: float = 30.0
    #: Parked sessions are cancelled after this many idle seconds. 0 = never.
    session_ttl: float = DEFAULT_SESSION_TTL

    def connection_cap(self) -> int:
        """``max_connections``, lowered to fit the process's descriptor limit."""
        cap = self.max_connections
        try:
            import resource

            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ImportError, OSError, ValueError):  # pragma: no cover - non-POSIX
            return max(1, cap)
        if soft != resource.RLIM_INFINITY:
            cap = min(cap, soft - self.fd_reserve)
        return max(8, cap)


SECRET_PARAMS = ("client_key", "client_key_path")
#: Extensions announced in ``hello`` (official clients ignore unknown result keys).
#: ``tasks.grade.id``: a ``tasks.grade`` carrying ``id`` (and optionally ``args``) adopts only a
#: parked task started with that id (and those args).
FEATURES = ["tasks.grade.id"]


@dataclass
class _Session:
    id: str
    runner: TaskRunner | None = None
    live: bool = True
    parked_at: float = field(default_factory=time.monotonic)
    #: Size of the running task's start request and reply (what parking it holds, roughly).
    nbytes: int = 0


def _mint_session_id() -> str:
    return f"sess-{secrets.token_hex(4)}"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """Serves one `Environment` on one TCP port."""

    def __init__(
        self,
        env: Environment,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        limits: ServerLimits | None = None,
        session_ttl: float | None = None,
        max_frame: int | None = None,
    ) -> None:
        limits = limits or ServerLimits()
        if session_ttl is not None:
            limits = dataclasses.replace(limits, session_ttl=session_ttl)
        if max_frame is not None:
            limits = dataclasses.replace(limits, max_frame=max_frame)
        self.env = env
        self.host = host
        self.requested_port = port
        self.token = token or None
        self.limits = limits
        self.session_ttl = limits.session_ttl
        self.max_frame = limits.max_frame
        self.max_buffered = limits.max_buffered
        self.max_connections = limits.connection_cap()
        self.share_keys = is_loopback(host) or self.token is not None
        self._sessions: dict[str, _Session] = {}
        self._parked: dict[str, _Session] = {}  # oldest first
        self._parked_bytes = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._fresh: dict[_Connection, None] = {}  # no frame completed yet; oldest first
        self._buffered = 0  # bytes of incomplete frames over all connections
        self._ticks = 0  # frames handled (orders connections by last activity)
        self._listeners: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._handlers: set[asyncio.Task[Any]] = set()
        self._evictions: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._idle_watch: asyncio.Task[None] | None = None
        self._accept_delay = 0.0
        self._warned: dict[str, float] = {}
        self._shed_count = 0
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"tcp://{host}:{self.port}"

    async def start(self) -> Server:
        await self.env.start()
        if not self.share_keys and any(
            k in c.params for c in self.env.capabilities for k in SECRET_PARAMS
        ):
            log.warning(
                "serving on non-loopback %s without a control token: SSH client keys are "
                "withheld from hello replies (set a token to share them)",
                self.host,
            )
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ProtocolIO(_Connection(self).start),
            self.host,
            self.requested_port,
            start_serving=False,
        )
        # Accept on the listening sockets from our own reader callback (SocketIO
        # connections); loops without add_reader serve through transports (ProtocolIO).
        try:
            for tsock in self._server.sockets:
                listener = socket.socket(fileno=os.dup(tsock.fileno()))
                self._listeners.append(listener)
                listener.listen(_BACKLOG)
                loop.add_reader(listener.fileno(), self._accept, listener)
        except (NotImplementedError, OSError):  # e.g. the proactor loop: no add_reader
            self._stop_accepting()
            await self._server.start_serving()
        if self.session_ttl and self.session_ttl > 0:
            self._sweeper = asyncio.create_task(self._sweep())
        if self.limits.idle_timeout and self.limits.idle_timeout > 0:
            self._idle_watch = asyncio.create_task(self._watch_idle(self.limits.idle_timeout))
        return self

    async def close(self) -> None:
        """Stop accepting, cancel handlers and every task (teardown runs), stop the env."""
        if self._closing:
            return
        self._closing = True
        self._stop_accepting()
        if self._server is not None:
            self._server.close()
        for watcher in (self._sweeper, self._idle_watch):
            if watcher is not None:
                watcher.cancel()
        for conn in list(self._connections):
            conn.shutdown()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        for conn in list(self._connections):
            conn.finish()
        if self._evictions:
            await asyncio.gather(*self._evictions, return_exceptions=True)
        for session in list(self._sessions.values()):
            await self._drop_runner(session)
        self._sessions.clear()
        self._parked.clear()
        self._parked_bytes = 0
        await self.env.stop()

    async def serve_forever(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def busy(self) -> bool:
        """True while a connection is open or a task is parked."""
        if self._connections or self._handlers:
            return True
        return any(s.runner is not None for s in self._sessions.values())

    # -- sessions --------------------------------------------------------------------
    def parked(self) -> list[_Session]:
        return [s for s in self._parked.values() if s.runner is not None]

    async def _drop_runner(self, session: _Session) -> None:
        runner, session.runner = session.runner, None
        if runner is not None:
            await runner.close()

    async def _sweep(self) -> None:
        interval = min(60.0, max(0.05, self.session_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session in list(self._parked.values()):
                if now - session.parked_at >= self.session_ttl:
                    log.info("parked session %s expired; cancelling its task", session.id)
                    self._forget(session)
                    await self._drop_runner(session)

    def _park(self, session: _Session) -> None:
        if session.runner is None:
            self._forget(session)
            return
        self._unpark(session)  # (never counted twice)
        session.live = False
        session.parked_at = time.monotonic()
        self._parked[session.id] = session
        self._parked_bytes += session.nbytes
        limits = self.limits
        while self._parked and (
            len(self._parked) > limits.max_parked or self._parked_bytes > limits.max_parked_bytes
        ):
            oldest = next(iter(self._parked.values()))
            self._warn_rarely(
                "parked",
                "parked sessions over the limit (%d sessions, %d bytes; max %d, %d): "
                "cancelling the oldest (%s); further cancellations are logged at INFO",
                len(self._parked),
                self._parked_bytes,
                limits.max_parked,
                limits.max_parked_bytes,
                oldest.id,
            )
            self._forget(oldest)
            task = self._loop.create_task(self._drop_runner(oldest))
            self._evictions.add(task)
            task.add_done_callback(self._evictions.discard)

    def _warn_rarely(self, topic: str, message: str, *args: Any) -> None:
        """Log a warning at most once a minute per topic (INFO otherwise): an attack must not
        flood the log."""
        now = time.monotonic()
        if now - self._warned.get(topic, -1e9) >= _WARN_EVERY:
            self._warned[topic] = now
            log.warning(message, *args)
        else:
            log.info(message, *args)

    def _unpark(self, session: _Session) -> None:
        if self._parked.pop(session.id, None) is not None:
            self._parked_bytes -= session.nbytes

    def _forget(self, session: _Session) -> None:
        """Drop ``session`` from the table (its runner, if any, is the caller's)."""
        self._unpark(session)
        self._sessions.pop(session.id, None)

    # -- connections -----------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # Out of descriptors: close idle connections and try again at once; with
                # nothing to shed, stop accepting for a while (doubling up to a second).
                if exc.errno in _FD_ERRORS and self.shed(_SHED_BATCH):
                    continue
                self._back_off(listener, exc)
                return
            self._accept_delay = 0.0
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            _Connection(self).start(SocketIO(self._loop, sock))

    def _back_off(self, listener: socket.socket, exc: OSError) -> None:
        self._accept_delay = min(1.0, max(0.05, self._accept_delay * 2))
        self._warn_rarely(
            "accept",
            "accept failed (%s) with %d connections open; pausing accepts for %.2fs",
            exc.strerror or exc,
            len(self._connections),
            self._accept_delay,
        )
        with contextlib.suppress(Exception):
            self._loop.remove_reader(listener.fileno())
            self._loop.call_later(self._accept_delay, self._resume_accepting, listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if not self._closing and listener in self._listeners:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def shed(self, n: int, keep: _Connection | None = None) -> int:
        """Close up to ``n`` idle connections (never ``keep``); returns how many.

        Connections that never completed a frame go first (oldest first), then control
        sessions with neither a task nor a request in flight (least recently active first).
        Tunnels and sessions holding a task are never shed.
        """
        closed = 0
        for conn in list(self._fresh):
            if closed >= n:
                return closed
            if conn is not keep:
                conn.drop("server busy: idle connection closed to make room")
                closed += 1
        if closed < n:
            idle = [
                c
                for c in self._connections
                if c is not keep
                and not c.tunnel
                and not c.finished
                and c._task is None
                and c.session.runner is None
            ]
            idle.sort(key=lambda c: c.active_at)
            for conn in idle[: n - closed]:
                conn.drop("server busy: idle connection closed to make room")
                closed += 1
        if closed:
            self._shed_count += closed
            log.info("closed %d idle connection(s) to make room", closed)
        return closed

    async def _watch_idle(self, timeout: float) -> None:
        """Close connections that have not completed a frame within ``timeout`` seconds."""
        interval = min(5.0, max(0.05, timeout / 4))
        loop = self._loop
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self._connections):
                since = conn.waiting_since
                if since is not None and now - since >= timeout and not conn.tunnel:
                    conn.drop(f"timed out: no complete frame within {timeout:g}s")

    def _trim_buffers(self, current: _Connection) -> None:
        """Over `max_buffered`: drop the connections whose incomplete frames wait longest."""
        waiting = [
            c
            for c in self._connections
            if c is not current and c._accounted > _ALLOWANCE and c._task is None
        ]
        waiting.sort(key=lambda c: c.waiting_since or 0.0)
        message = "server busy: too many bytes of incomplete frames buffered; frame dropped"
        for conn in waiting:
            if self._buffered <= self.max_buffered:
                return
            conn.drop(message)
        if self._buffered > self.max_buffered:
            current.drop(message)

    def _stop_accepting(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(listener.fileno())
            listener.close()

    def _authorized(self, frame: dict[str, Any]) -> bool:
        params = frame.get("params")
        supplied = params.get("auth_token") if isinstance(params, dict) else None
        return isinstance(supplied, str) and secrets.compare_digest(supplied, self.token or "")

    # -- methods ---------------------------------------------------------------------
    def manifest(self, session_id: str | None = None) -> dict[str, Any]:
        bindings = []
        for cap in self.env.capabilities:
            binding = self.env.binding(cap, session_id)
            if not self.share_keys:
                for key in SECRET_PARAMS:
                    binding["params"].pop(key, None)
            bindings.append(binding)
        return {"env": {"name": self.env.name, "version": self.env.version}, "bindings": bindings}

    def _hello(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("session_id", conn.session.id)
        if wanted is not None and wanted != conn.session.id:
            if not isinstance(wanted, str):
                raise HudProtocolError(INVALID_PARAMS, "hello: 'session_id' must be a string")
            target = self._sessions.get(wanted)
            if target is not None and target.live:
                raise HudProtocolError(INVALID_REQUEST, f"session '{wanted}' has a live connection")
            if target is None or target.runner is None:
                raise HudProtocolError(INVALID_REQUEST, f"unknown session: '{wanted}'")
            old = conn.session
            self._park(old)  # its own task, if any, stays parked and resumable
            self._unpark(target)
            target.live = True
            conn.session = target
        manifest = self.manifest(conn.session.id)
        return {"session_id": conn.session.id, **manifest, "features": FEATURES}

    def _list(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        return {"tasks": [t.manifest() for t in self.env.tasks.values()]}

    async def _start(self, conn: _Connection, params: dict[str, Any]) -> dict[str, Any]:
        task_id = params.get("id")
        args = params.get("args")
        if args is None:
            args = {}
        if not isinstance(task_id, str):
            raise HudProtocolError(INVALID_PARAMS, "tasks.start: 'id' must be a string")
        if not isinstance(args, dict):
            raise HudProtocolError(INVALID_PARAMS, "tasks.start: 'args' must be an object")
        limits = params.get("limits")  # ours: the row's workspace limits
        if limits is not None and not isinstance(limits, dict):
            raise HudProtocolError(INVALID_PARAMS, "tasks.start: 'limits' must be an object")
        session = conn.session
        await self._drop_runner(session)
        template = self.env.tasks.get(task_id)
        if template is None:
            raise HudProtocolError(INVALID_PARAMS, f"unknown task: '{task_id}'")
        try:
            gen = template.open(args)
        except BadArgs as exc:
            raise HudProtocolError(SERVER_ERROR, str(exc)) from None
        runner = TaskRunner(self.env, template, gen, session.id, args)
        token = current_task_limits.set(limits)
        try:
            frame = await runner.start()
        finally:
            current_task_limits.reset(token)
        try:
            reply_bytes = len(encode_frame(frame, self.max_frame))
        except FrameTooLargeError as exc:
            await runner.close()
            raise HudProtocolError(
                SERVER_ERROR, f"task '{task_id}': start frame too large: {exc}"
            ) from None
        if conn.session is session and session.live:
            session.runner = runner
            session.nbytes = conn.frame_bytes + reply_bytes
        else:
            await runner.close()
        return frame

    def _grade_target(self, conn: _Connection, params: dict[str, Any]) -> _Session:
        if conn.session.runner is not None:
            return conn.session
        wanted = params.get("id")
        wanted_args = params.get("args")
        parked = self.parked()
        if isinstance(wanted, str):
            parked = [s for s in parked if s.runner is not None and s.runner.task_id == wanted]
            if isinstance(wanted_args, dict):
                parked = [
                    s for s in parked if s.runner is not None and s.runner.args == wanted_args
                ]
        if not parked:
            raise HudProtocolError(INVALID_REQUEST, "no task in progress")
        if len(parked) > 1:
            ids = ", ".join(sorted(s.id for s in parked))
            raise HudProtocolError(
                INVALID_REQUEST,
                f"{len(parked)} parked sessions ({ids}); "
                "resume one by sending hello with its session_id",
            )
        return parked[0]

    def _grade(self, conn: _Connection, params: dict[str, Any]) -> Reply:
        session = self._grade_target(conn, params)
        runner, session.runner = session.runner, None
        assert runner is not None
        if session is not conn.session:
            self._forget(session)
        return runner.grade(params)

    def _cancel(self, conn: _Connection, params: dict[str, Any]) -> Reply:
        if conn.session.runner is None:
            return {"cancelled": True}
        return self._cancel_task(conn)

    async def _cancel_task(self, conn: _Connection) -> dict[str, Any]:
        await self._drop_runner(conn.session)
        return {"cancelled": True}

    def _bye(self, conn: _Connection, params: dict[str, Any]) -> Reply:
        conn.bye = True
        if conn.session.runner is None:
            return {"goodbye": True}
        return self._bye_task(conn)

    async def _bye_task(self, conn: _Connection) -> dict[str, Any]:
        await self._drop_runner(conn.session)
        return {"goodbye": True}

    #: method -> handler(server, conn, params) returning the result, or an awaitable of it.
    _methods: dict[str, Callable[[Server, _Connection, dict[str, Any]], Reply]] = {
        "hello": _hello,
        "tasks.list": _list,
        "tasks.start": _start,
        "tasks.grade": _grade,
        "tasks.cancel": _cancel,
        "bye": _bye,
    }

    # -- tunnels ---------------------------------------------------------------------
    async def _tunnel(self, conn: _Connection, frame: dict[str, Any]) -> None:
        """Connect to capability ``params.capability``, reply, then relay bytes both ways."""
        has_id = "id" in frame
        rid = frame.get("id")
        params = frame.get("params")
        name = params.get("capability") if isinstance(params, dict) else None

        def fail(code: int, message: str) -> None:
            if has_id:
                conn.send(error_frame(rid, code, message))
            conn.close()

        if not isinstance(name, str):
            return fail(INVALID_PARAMS, "tunnel.open: 'capability' must be a string")
        try:
            cap = self.env.capability(name)
        except KeyError:
            return fail(SERVER_ERROR, f"unknown capability: '{name}'")
        target = urlsplit(cap.url)
        try:
            host, port = target.hostname, target.port
        except ValueError:
            host, port = None, None
        if not host or not port:
            return fail(INVALID_PARAMS, f"capability '{name}' has no host:port to tunnel to")
        loop = asyncio.get_running_loop()
        try:
            _, backend = await loop.create_connection(Half, host, port)
        except OSError as exc:
            return fail(SERVER_ERROR, str(exc))
        if conn.lost:
            assert backend.transport is not None
            backend.transport.close()
            return
        if has_id:
            conn.send(result_frame(rid, {"capability": name}))
        try:
            client = await conn.take_over()
        except BaseException:
            assert backend.transport is not None
            backend.transport.close()
            raise
        await relay(client, backend)


#: What a method handler returns: the result object, or an awaitable of it.
Reply = dict[str, Any] | Awaitable[dict[str, Any]]

#: Python 3.12+ runs a request's handler eagerly: one that completes without suspending
#: replies from the read callback, without a trip through the event loop.
_EAGER = sys.version_info >= (3, 12)
#: While a request is in flight, reading pauses once this many bytes are buffered.
_READ_AHEAD = 1 << 20
#: Connections accepted per wake-up of a listening socket; listen() backlog (asyncio's).
_ACCEPT_BATCH = 100
_BACKLOG = 100
#: accept() errors meaning "out of descriptors or memory"; idle connections closed per retry.
_FD_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_SHED_BATCH = 16
#: Seconds between two warnings on one topic (accept failures, refusals, evictions).
_WARN_EVERY = 60.0
#: Incomplete frames up to this size are never dropped for `max_buffered` (small requests of
#: legitimate clients are always read).
_ALLOWANCE = 256 * 1024


class _Connection:
    """One accepted connection: a control session, or a tunnel if its first frame says so.

    Bytes come from its I/O object (`SocketIO`: callbacks on the raw socket; `ProtocolIO`: an
    asyncio transport). Lines are handled in order as they arrive; a handler that completes at
    once (``hello``, ``tasks.list``, ...) is answered from the read callback. A handler
    returning an awaitable runs as a task; frames arriving meanwhile wait in the buffer.
    Replies produced while a request is in flight are written together when it completes, so
    a client that pipelines ``hello`` with ``tasks.start`` gets both in one segment.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.io: SocketIO | ProtocolIO = None  # type: ignore[assignment]
        self.session = _Session(_mint_session_id())
        self.bye = False
        self.first = True
        self.eof = False  # the peer half-closed: finish the buffered frames, then close
        self.lost = False
        self.closing = False  # no more frames are read
        self.finished = False
        self.tunnel = False
        self._buffer = bytearray()
        self._scan = 0  # no newline in _buffer[:_scan]
        self._out: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._accounted = 0  # len(_buffer) as counted in server._buffered
        #: Since when a frame is awaited (connect time until the first frame; then the first
        #: byte of an incomplete one); None while nothing is pending or a request is running.
        self.waiting_since: float | None = server._loop.time()
        self.active_at = 0  # server._ticks at the last frame
        self.frame_bytes = 0  # size of the frame being handled

    def start(self, io: SocketIO | ProtocolIO) -> None:
        self.io = io
        server = self.server
        full = len(server._connections) >= server.max_connections
        server._connections.add(self)
        server._sessions[self.session.id] = self.session
        if server._closing:
            self.close()
            self.finish()
            return
        if full and not server.shed(1, keep=self):
            io.consumer = self
            server._warn_rarely(
                "busy", "refusing connections: %d open (max_connections)", server.max_connections
            )
            self.drop(f"server busy: {server.max_connections} connections open; retry later")
            return
        server._fresh[self] = None
        io.start(self)

    # -- I/O callbacks ---------------------------------------------------------------
    def feed(self, data: memoryview) -> None:
        if self.closing:
            return
        self._buffer += data
        self._process()

    def on_eof(self) -> None:
        self.eof = True
        if not self.closing:
            self._process()

    def on_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.closing = True
        self._release_buffer()
        if self._task is None and not self.tunnel:
            self.finish()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self.closing and self._task is None:
            self._process()

    # -- frames ----------------------------------------------------------------------
    def _process(self) -> None:
        """Handle the complete lines in the buffer, in order, until one needs a task."""
        buffer = self._buffer
        limit = self.server.max_frame
        while not (self.closing or self._task is not None or self._write_paused):
            end = buffer.find(b"\n", self._scan)
            if end < 0:
                if len(buffer) > limit:
                    self._oversize()
                    break
                self._scan = len(buffer)
                if not self.eof:
                    break
                # EOF: a last frame without its newline still counts; blank is just the end.
                line = bytes(buffer)
                buffer.clear()
                self._scan = 0
                if line.strip():
                    self._line(line)
                if self._task is None:
                    self.close()
                break
            if end > limit:
                self._oversize()
                break
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            self._scan = 0
            self._line(line)
        if self.tunnel:
            return
        if self._task is None:
            self.flush()
            if self.closing:
                self.finish()
                return
        server = self.server
        size = len(buffer)
        if size != self._accounted:
            server._buffered += size - self._accounted
            self._accounted = size
        blocked = self._task is not None or self._write_paused
        if size and not blocked and self.waiting_since is None:
            self.waiting_since = server._loop.time()
        if blocked and not self._read_paused and size > _READ_AHEAD:
            self._read_paused = True
            self.io.pause_reading()
        elif not blocked and self._read_paused:
            self._read_paused = False
            self.io.resume_reading()
        if size > _ALLOWANCE and server._buffered > server.max_buffered:
            server._trim_buffers(self)

    def _release_buffer(self) -> None:
        """Free the input buffer (the connection reads no more)."""
        if self._buffer:
            self._buffer = bytearray()
        self._scan = 0
        if self._accounted:
            self.server._buffered -= self._accounted
            self._accounted = 0

    def _oversize(self) -> None:
        self.send(error_frame(None, SERVER_ERROR, oversize_message(self.server.max_frame)))
        self.close()

    def _line(self, line: bytes) -> None:
        server = self.server
        self.frame_bytes = len(line)
        try:
            frame = decode_frame(line)
        except ValueError as exc:
            self.send(error_frame(None, PARSE_ERROR, f"parse error: {exc}"))
            return
        if not isinstance(frame, dict):
            message = "invalid request: a frame must be a JSON object"
            self.send(error_frame(None, INVALID_REQUEST, message))
            return
        server._ticks += 1
        self.active_at = server._ticks
        self.waiting_since = None
        if self.first:
            self.first = False
            server._fresh.pop(self, None)
            if server.token is not None and not server._authorized(frame):
                message = "unauthorized: control token required"
                self.send(error_frame(frame.get("id"), UNAUTHORIZED, message))
                self.close()
                return
            if frame.get("method") == "tunnel.open":
                self._start_tunnel(frame)
                return
        self._request(frame)

    def _request(self, frame: dict[str, Any]) -> None:
        """Run one request; its reply (none for a notification) is queued in order."""
        has_id = "id" in frame
        rid = frame.get("id")
        try:
            method = frame.get("method", "")
            params = frame.get("params")
            if params is None:
                params = {}
            if not isinstance(method, str) or (not has_id and "method" not in frame):
                # Not a request (nor a notification): JSON-RPC wants a reply with id null.
                has_id = True  # (rid is None without an id)
                what = "'method' must be a string" if "method" in frame else "no 'method'"
                raise HudProtocolError(INVALID_REQUEST, f"invalid request: {what}")
            handler = Server._methods.get(method)
            if handler is None:
                raise HudProtocolError(METHOD_NOT_FOUND, f"method not found: {method}")
            if not isinstance(params, dict):
                raise HudProtocolError(INVALID_PARAMS, "params must be an object")
            result = handler(self.server, self, params)
            if not isinstance(result, dict):
                self._await(result, has_id, rid, method)
                return
        except Exception as exc:
            reply = self._error_reply(exc, rid, frame.get("method"))
            if has_id:
                self.send(reply)
            return
        if has_id:
            self.send(result_frame(rid, result))
        if self.bye:
            self.close()

    @staticmethod
    def _error_reply(exc: Exception, rid: Any, method: Any) -> dict[str, Any]:
        if isinstance(exc, HudProtocolError):
            return error_frame(rid, exc.code, exc.message)
        if isinstance(exc, TaskError):
            return error_frame(rid, SERVER_ERROR, str(exc))
        log.exception("handler for %r failed", method)
        return error_frame(rid, SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _await(
        self, awaitable: Awaitable[dict[str, Any]], has_id: bool, rid: Any, method: str
    ) -> None:
        coro = self._complete(awaitable, has_id, rid, method)
        loop = self.server._loop
        if _EAGER:
            task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]  # 3.12+
            if task.done():
                return
        else:
            task = loop.create_task(coro)
        self._task = task
        self.server._handlers.add(task)
        task.add_done_callback(self.server._handlers.discard)

    async def _complete(
        self, awaitable: Awaitable[dict[str, Any]], has_id: bool, rid: Any, method: str
    ) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            self._task = None
            raise
        except Exception as exc:
            reply = self._error_reply(exc, rid, method)
        else:
            reply = result_frame(rid, result)
        if has_id:
            self.send(reply)
        if self.bye:
            self.close()
        if self._task is not None:
            self._task = None
            self._process()

    # -- output and lifecycle --------------------------------------------------------
    def send(self, frame: dict[str, Any]) -> None:
        """Queue one reply frame (written by `flush`)."""
        try:
            data = encode_frame(frame, self.server.max_frame)
        except FrameTooLargeError as exc:
            data = encode_frame(error_frame(frame.get("id"), SERVER_ERROR, str(exc)))
        self._out.append(data)

    def flush(self) -> None:
        out = self._out
        if out and not self.lost:
            self.io.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def close(self) -> None:
        """Stop reading frames; the connection closes once queued replies are written."""
        self.closing = True

    def finish(self) -> None:
        """Park the session and close the connection (once)."""
        if self.finished:
            return
        self.finished = True
        self.closing = True
        server = self.server
        if not self.tunnel:
            server._park(self.session)
        self.flush()
        self.io.close()
        self._release_buffer()
        self.waiting_since = None
        server._connections.discard(self)
        server._fresh.pop(self, None)

    def drop(self, message: str) -> None:
        """Tell the peer why (an error with id null) and close, unless a request is running."""
        if self.finished or self.tunnel:
            return
        if self._task is not None:
            self.closing = True  # closes once the running request completes
            return
        self.send(error_frame(None, SERVER_ERROR, message))
        self.finish()

    def shutdown(self) -> None:
        """Server shutdown: drop the connection (an in-flight request is cancelled)."""
        self.closing = True
        if self._task is not None:
            self._task.cancel()
        if not self.tunnel:
            self.io.abort()

    # -- tunnels ---------------------------------------------------------------------
    def _start_tunnel(self, frame: dict[str, Any]) -> None:
        self.tunnel = True
        self.closing = True
        self.waiting_since = None
        self.server._sessions.pop(self.session.id, None)
        self.io.pause_reading()
        task = self.server._loop.create_task(self._run_tunnel(frame))
        self.server._handlers.add(task)
        task.add_done_callback(self.server._handlers.discard)

    async def _run_tunnel(self, frame: dict[str, Any]) -> None:
        try:
            await self.server._tunnel(self, frame)
        finally:
            self.flush()
            if not self.io.closed:
                self.io.close()
            self.server._connections.discard(self)
            self.finished = True

    async def take_over(self) -> Half:
        """The connection as a relay `Half`, with the bytes read past the tunnel.open frame."""
        self.flush()
        pending = bytes(self._buffer)
        self._release_buffer()
        return await self.io.to_half(pending, self.eof)


async def bind(env: Environment, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Server:
    """Start ``env`` and listen; returns the running `Server` (close it when done)."""
    return await Server(env, host, port, **kwargs).start()


async def serve(env: Environment, host: str = "127.0.0.1", port: int = 8765, **kwargs: Any) -> None:
    """Serve ``env`` until cancelled."""
    server = await bind(env, host, port, **kwargs)
    await server.serve_forever()


async def run_until_signal(
    server: Server, *, idle_exit: float | None = None, ready: Any = None
) -> None:
    """Serve until SIGTERM/SIGINT (or ``idle_exit`` seconds without work), then close.

    ``ready()`` is called once the signal handlers are installed: announce the port there, so
    a supervisor that signals right after reading it still gets a clean shutdown.
    """
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    watchdog = asyncio.create_task(_idle_watch(server, idle_exit, stop)) if idle_exit else None
    try:
        await stop.wait()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await server.close()


async def _idle_watch(server: Server, idle_exit: float, stop: asyncio.Event) -> None:
    idle_since = time.monotonic()
    while True:
        await asyncio.sleep(min(1.0, idle_exit / 4))
        if server.busy:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_exit:
            log.info("idle for %.0fs; exiting", idle_exit)
            stop.set()
            return


class ServeError(HudError, RuntimeError):
    """`serve_until_signal` could not start: the environment failed, or the address is taken."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


async def serve_until_signal(
    env: Environment,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    token: str | None = None,
    limits: ServerLimits | None = None,
    idle_exit: float | None = None,
    on_ready: Callable[[Server], None] | None = None,
) -> None:
    """Run ``env``'s initialize hooks, listen, call ``on_ready(server)``, and serve until
    SIGTERM/SIGINT (or ``idle_exit`` idle seconds); then close (shutdown hooks run).

    The one serve entry point (``hud serve`` and ``python -m hud.environment.server``).
    Raises `ServeError` (one readable line, maybe a hint) when the hooks fail or the address
    cannot be bound.
    """
    server = Server(env, host, port, token=token, limits=limits)
    try:
        # Initialize hooks first, so their failures are not reported as listen errors.
        await env.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await env.stop()
        raise ServeError(
            f"environment {env.name!r} failed to start: {type(exc).__name__}: {exc}"
        ) from None
    try:
        await server.start()
    except OSError as exc:
        await env.stop()
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another port with -p, or -p 0 for a free one",
        ) from None
    ready = (lambda: on_ready(server)) if on_ready is not None else None
    await run_until_signal(server, idle_exit=idle_exit, ready=ready)


#: ``hud serve`` / ``python -m hud.environment.server`` flags setting `ServerLimits`:
#: flag -> (field, unit multiplier, help).
LIMIT_FLAGS: dict[str, tuple[str, int, str]] = {
    "--max-connections": (
        "max_connections",
        1,
        "Most open connections (lowered to fit the descriptor limit); idle ones are shed.",
    ),
    "--max-frame-mib": ("max_frame", MiB, "Longest frame accepted, in MiB."),
    "--max-buffered-mib": (
        "max_buffered",
        MiB,
        "MiB of incomplete frames buffered over all connections.",
    ),
    "--max-parked": ("max_parked", 1, "Parked sessions kept; the oldest is cancelled beyond."),
    "--max-parked-mib": (
        "max_parked_bytes",
        MiB,
        "MiB of parked sessions' start requests kept; the oldest is cancelled beyond.",
    ),
    "--idle-timeout": (
        "idle_timeout",
        1,
        "Seconds a connection may take to complete a frame (0 = forever).",
    ),
    "--session-ttl": ("session_ttl", 1, "Seconds a parked task is kept (0 = forever)."),
}


def limits_from_flags(values: Mapping[str, float | None]) -> ServerLimits:
    """`ServerLimits` from ``{flag: value}`` (`LIMIT_FLAGS` units; None = default)."""
    fields: dict[str, Any] = {}
    for flag, value in values.items():
        if value is None:
            continue
        name, unit, _ = LIMIT_FLAGS[flag]
        if value < 0:
            raise ValueError(f"{flag} must not be negative (got {value:g})")
        default = getattr(ServerLimits(), name)
        fields[name] = int(value * unit) if isinstance(default, int) else float(value)
    return ServerLimits(**fields)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hud.environment.server`` (argparse: starts fast)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m hud.environment.server", description="Serve a HUD environment."
    )
    parser.add_argument("path", nargs="?", default="env", help="env file, directory or module")
    parser.add_argument("--env", dest="name", default=None, help="environment name to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=os.environ.get("HUD_CONTROL_TOKEN") or None)
    for flag, (_, _, text) in LIMIT_FLAGS.items():
        parser.add_argument(flag, type=float, default=None, help=text)
    parser.add_argument(
        "--idle-exit", type=float, default=None, help="exit after this many idle seconds"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if ns.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from hud.environment.loader import load_environment

    try:
        limits = limits_from_flags(
            {flag: getattr(ns, flag[2:].replace("-", "_")) for flag in LIMIT_FLAGS}
        )
        env = load_environment(ns.path, name=ns.name)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def ready(server: Server) -> None:
        print(f"HUD_SERVE_PORT={server.port}", flush=True)

    try:
        asyncio.run(
            serve_until_signal(
                env,
                ns.host,
                ns.port,
                token=ns.token,
                limits=limits,
                idle_exit=ns.idle_exit,
                on_ready=ready,
            )
        )
    except ServeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
