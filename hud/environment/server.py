"""The control-channel server: one TCP port, JSON-RPC sessions and capability tunnels.

Run an environment file with ``python -m hud.environment.server PATH [--env NAME] [--host H]
[--port P]``; it prints ``HUD_SERVE_PORT=<port>`` once it is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hud.environment.environment import Environment
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
    decode_frame,
    encode_frame,
    error_frame,
    oversize_message,
    result_frame,
)
from hud.transport import splice

log = logging.getLogger("hud.server")

#: Parked (started, disconnected, ungraded) sessions are cancelled after this idle time.
DEFAULT_SESSION_TTL = 24 * 3600.0
SECRET_PARAMS = ("client_key", "client_key_path")
#: Extensions announced in ``hello`` (official clients ignore unknown result keys).
#: ``tasks.grade.id``: a ``tasks.grade`` carrying ``id`` (and optionally ``args``) adopts only a
#: parked task started with that id (and those args).
FEATURES = ["tasks.grade.id"]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Session:
    id: str
    runner: TaskRunner | None = None
    live: bool = True
    parked_at: float = field(default_factory=time.monotonic)


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
        session_ttl: float = DEFAULT_SESSION_TTL,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.env = env
        self.host = host
        self.requested_port = port
        self.token = token or None
        self.session_ttl = session_ttl
        self.max_frame = max_frame
        self.share_keys = is_loopback(host) or self.token is not None
        self._sessions: dict[str, _Session] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
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
        # StreamReader accepts a line whose newline sits at index <= limit, i.e. frames of
        # up to ``limit`` bytes (newline excluded): the limit is max_frame, not max_frame + 1.
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.requested_port, limit=self.max_frame
        )
        if self.session_ttl and self.session_ttl > 0:
            self._sweeper = asyncio.create_task(self._sweep())
        return self

    async def close(self) -> None:
        """Stop accepting, cancel handlers and every task (teardown runs), stop the env."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        for session in list(self._sessions.values()):
            await self._drop_runner(session)
        self._sessions.clear()
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
        return bool(self._handlers) or any(s.runner is not None for s in self._sessions.values())

    # -- sessions --------------------------------------------------------------------
    def parked(self) -> list[_Session]:
        return [s for s in self._sessions.values() if not s.live and s.runner is not None]

    async def _drop_runner(self, session: _Session) -> None:
        runner, session.runner = session.runner, None
        if runner is not None:
            await runner.close()

    async def _sweep(self) -> None:
        interval = min(60.0, max(0.05, self.session_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session in self.parked():
                if now - session.parked_at >= self.session_ttl:
                    log.info("parked session %s expired; cancelling its task", session.id)
                    self._sessions.pop(session.id, None)
                    await self._drop_runner(session)

    def _park(self, session: _Session) -> None:
        if session.runner is None:
            self._sessions.pop(session.id, None)
        else:
            session.live = False
            session.parked_at = time.monotonic()

    # -- connections -----------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            # Cancelled by close(); asyncio's stream callback must not see the cancellation.
            with contextlib.suppress(Exception):
                writer.close()
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
        try:
            data = encode_frame(frame, self.max_frame)
        except FrameTooLargeError as exc:
            data = encode_frame(error_frame(frame.get("id"), SERVER_ERROR, str(exc)))
        writer.write(data)
        await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(_Session(_mint_session_id()))
        self._sessions[conn.session.id] = conn.session
        first = True
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial
                    if not line.strip():
                        break
                except asyncio.LimitOverrunError:
                    message = oversize_message(self.max_frame)
                    await self._send(writer, error_frame(None, SERVER_ERROR, message))
                    break
                try:
                    frame = decode_frame(line)
                except ValueError as exc:
                    await self._send(writer, error_frame(None, PARSE_ERROR, f"parse error: {exc}"))
                    continue
                if not isinstance(frame, dict):
                    message = "invalid request: a frame must be a JSON object"
                    await self._send(writer, error_frame(None, INVALID_REQUEST, message))
                    continue
                if first:
                    first = False
                    if self.token is not None and not self._authorized(frame):
                        message = "unauthorized: control token required"
                        await self._send(
                            writer, error_frame(frame.get("id"), UNAUTHORIZED, message)
                        )
                        break
                    if frame.get("method") == "tunnel.open":
                        self._sessions.pop(conn.session.id, None)
                        await self._tunnel(frame, reader, writer)
                        return
                reply = await self._request(conn, frame)
                if reply is not None:
                    await self._send(writer, reply)
                if conn.bye:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self._park(conn.session)
            with contextlib.suppress(Exception):
                writer.close()

    def _authorized(self, frame: dict[str, Any]) -> bool:
        params = frame.get("params")
        supplied = params.get("auth_token") if isinstance(params, dict) else None
        return isinstance(supplied, str) and secrets.compare_digest(supplied, self.token or "")

    async def _request(self, conn: _Conn, frame: dict[str, Any]) -> dict[str, Any] | None:
        """Run one request; returns the reply frame, or None for a notification."""
        has_id = "id" in frame
        rid = frame.get("id")
        try:
            method = frame.get("method", "")
            params = frame.get("params")
            if params is None:
                params = {}
            if not isinstance(method, str):
                raise RpcError(INVALID_REQUEST, "invalid request: 'method' must be a string")
            handler = self._methods.get(method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            result = await handler(self, conn, params)
        except RpcError as exc:
            return error_frame(rid, exc.code, exc.message) if has_id else None
        except TaskError as exc:
            return error_frame(rid, SERVER_ERROR, str(exc)) if has_id else None
        except Exception as exc:
            log.exception("handler for %r failed", frame.get("method"))
            return (
                error_frame(rid, SERVER_ERROR, f"{type(exc).__name__}: {exc}") if has_id else None
            )
        return result_frame(rid, result) if has_id else None

    # -- methods ---------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        bindings = []
        for cap in self.env.capabilities:
            binding = cap.to_binding()
            if not self.share_keys:
                for key in SECRET_PARAMS:
                    binding["params"].pop(key, None)
            bindings.append(binding)
        return {"env": {"name": self.env.name, "version": self.env.version}, "bindings": bindings}

    async def _hello(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("session_id", conn.session.id)
        if wanted is not None and wanted != conn.session.id:
            if not isinstance(wanted, str):
                raise RpcError(INVALID_PARAMS, "hello: 'session_id' must be a string")
            target = self._sessions.get(wanted)
            if target is not None and target.live:
                raise RpcError(INVALID_REQUEST, f"session '{wanted}' has a live connection")
            if target is None or target.runner is None:
                raise RpcError(INVALID_REQUEST, f"unknown session: '{wanted}'")
            old = conn.session
            self._park(old)  # its own task, if any, stays parked and resumable
            target.live = True
            conn.session = target
        return {"session_id": conn.session.id, **self.manifest(), "features": FEATURES}

    async def _list(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        return {"tasks": [t.manifest() for t in self.env.tasks.values()]}

    async def _start(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        task_id = params.get("id")
        args = params.get("args")
        if args is None:
            args = {}
        if not isinstance(task_id, str):
            raise RpcError(INVALID_PARAMS, "tasks.start: 'id' must be a string")
        if not isinstance(args, dict):
            raise RpcError(INVALID_PARAMS, "tasks.start: 'args' must be an object")
        session = conn.session
        await self._drop_runner(session)
        template = self.env.tasks.get(task_id)
        if template is None:
            raise RpcError(INVALID_PARAMS, f"unknown task: '{task_id}'")
        try:
            gen = template.open(args)
        except BadArgs as exc:
            raise RpcError(SERVER_ERROR, str(exc)) from None
        runner = TaskRunner(self.env, template, gen, session.id, args)
        frame = await runner.start()
        try:
            encode_frame(frame, self.max_frame)
        except FrameTooLargeError as exc:
            await runner.close()
            raise RpcError(
                SERVER_ERROR, f"task '{task_id}': start frame too large: {exc}"
            ) from None
        if conn.session is session and session.live:
            session.runner = runner
        else:
            await runner.close()
        return frame

    def _grade_target(self, conn: _Conn, params: dict[str, Any]) -> _Session:
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
            raise RpcError(INVALID_REQUEST, "no task in progress")
        if len(parked) > 1:
            ids = ", ".join(sorted(s.id for s in parked))
            raise RpcError(
                INVALID_REQUEST,
                f"{len(parked)} parked sessions ({ids}); "
                "resume one by sending hello with its session_id",
            )
        return parked[0]

    async def _grade(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        session = self._grade_target(conn, params)
        runner, session.runner = session.runner, None
        assert runner is not None
        if session is not conn.session:
            self._sessions.pop(session.id, None)
        return await runner.grade(params)

    async def _cancel(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        await self._drop_runner(conn.session)
        return {"cancelled": True}

    async def _bye(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        await self._drop_runner(conn.session)
        conn.bye = True
        return {"goodbye": True}

    _methods = {
        "hello": _hello,
        "tasks.list": _list,
        "tasks.start": _start,
        "tasks.grade": _grade,
        "tasks.cancel": _cancel,
        "bye": _bye,
    }

    # -- tunnels ---------------------------------------------------------------------
    async def _tunnel(
        self, frame: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        has_id = "id" in frame
        rid = frame.get("id")
        params = frame.get("params")
        name = params.get("capability") if isinstance(params, dict) else None

        async def fail(code: int, message: str) -> None:
            if has_id:
                await self._send(writer, error_frame(rid, code, message))
            writer.close()

        if not isinstance(name, str):
            return await fail(INVALID_PARAMS, "tunnel.open: 'capability' must be a string")
        try:
            cap = self.env.capability(name)
        except KeyError:
            return await fail(SERVER_ERROR, f"unknown capability: '{name}'")
        target = urlsplit(cap.url)
        try:
            host, port = target.hostname, target.port
        except ValueError:
            host, port = None, None
        if not host or not port:
            return await fail(INVALID_PARAMS, f"capability '{name}' has no host:port to tunnel to")
        try:
            b_reader, b_writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            return await fail(SERVER_ERROR, str(exc))
        if has_id:
            await self._send(writer, result_frame(rid, {"capability": name}))
        await splice(reader, writer, b_reader, b_writer)


@dataclass
class _Conn:
    session: _Session
    bye: bool = False


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hud.environment.server``."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m hud.environment.server", description="Serve a HUD environment."
    )
    parser.add_argument("path", nargs="?", default="env", help="env file, directory or module")
    parser.add_argument("--env", dest="name", default=None, help="environment name to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=os.environ.get("HUD_CONTROL_TOKEN") or None)
    parser.add_argument("--session-ttl", type=float, default=DEFAULT_SESSION_TTL)
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
        env = load_environment(ns.path, name=ns.name)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        server = Server(env, ns.host, ns.port, token=ns.token, session_ttl=ns.session_ttl)
        try:
            # Initialize hooks first, so their failures are not reported as listen errors.
            await env.start()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            print(f"error: environment {env.name!r} failed to start: {message}", file=sys.stderr)
            await env.stop()
            return 1
        try:
            await server.start()
        except OSError as exc:
            print(f"error: cannot listen on {ns.host}:{ns.port}: {exc.strerror}", file=sys.stderr)
            await env.stop()
            return 1
        await run_until_signal(
            server,
            idle_exit=ns.idle_exit,
            ready=lambda: print(f"HUD_SERVE_PORT={server.port}", flush=True),
        )
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
