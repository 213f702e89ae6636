"""`HUDRuntime`: the ``--runtime hud`` provider (spec platform.md §7, runtimes-agents.md §1.5).

Per rollout: ``POST <runtime url>/runtime/sessions {"environment", "trace_id"}`` -> ``{"id"}``; a
loopback listener whose every TCP connection (the control connection and each capability
tunnel) becomes one WebSocket ``/runtime/tunnels/<id>`` carrying raw bytes in binary frames;
on exit the listener closes and ``DELETE /runtime/sessions/<id>`` ends the session.

Each local connection is spliced to its WebSocket at the transport level (:class:`_Local` and
:class:`_Tunnel`: the websockets sans-I/O client opens it, hud/platform/wsframe.py frames the
bytes, no task or queue per frame, each side's reading paused while the other's write buffer
is full); through an HTTP or SOCKS proxy the websockets asyncio client carries them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from hud.eval.runtime import Runtime
from hud.platform.wsframe import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    FrameError,
    FrameReader,
    close_payload,
    frame,
    set_paused,
)
from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.runtime")

#: Bytes read from a local connection per frame.
CHUNK = 256 * 1024
#: Row ``runtime_config`` fields a hosted session cannot honour.
REFUSED = ("gpu", "os", "tpu", "limits")
#: Seconds to open a tunnel's WebSocket; between keepalive pings; to wait for a pong.
OPEN_TIMEOUT = 30.0
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0


class HUDRuntimeError(HudError, RuntimeError):
    """A runtime session could not be started."""


def ws_base(url: str) -> str:
    url = url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class HUDRuntime:
    """Provider of one platform runtime session per rollout."""

    def __init__(
        self,
        *,
        runtime_url: str | None = None,
        api_key: str | None = None,
        ready_timeout: float = 300.0,
    ) -> None:
        from hud.settings import settings

        current = settings()
        self.runtime_url = (runtime_url or current.runtime_url).rstrip("/")
        self.api_key = api_key or current.api_key
        if not self.api_key:
            raise HUDRuntimeError("HUDRuntime needs HUD_API_KEY (run `hud login`)")
        self.ready_timeout = ready_timeout

    def __repr__(self) -> str:
        return f"HUDRuntime({self.runtime_url!r})"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def __call__(self, task: Any) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    @contextlib.asynccontextmanager
    async def _acquire(self, task: Any) -> AsyncIterator[Runtime]:
        config = getattr(task, "runtime_config", None)
        if config is not None:
            asked = [k for k in REFUSED if getattr(config, k, None)]
            if asked:
                raise HUDRuntimeError(
                    f"--runtime hud cannot honour runtime_config {', '.join(asked)} of {task.slug}"
                )
        body = {"environment": task.env, "trace_id": str(uuid.uuid4())}
        async with httpx.AsyncClient(timeout=30) as http:
            try:
                reply = await http.post(
                    f"{self.runtime_url}/runtime/sessions", json=body, headers=self._headers
                )
            except httpx.HTTPError as exc:
                raise HUDRuntimeError(f"cannot reach the runtime service: {exc}") from None
            if reply.status_code >= 300:
                try:
                    detail = reply.json().get("detail")
                except Exception:
                    detail = None
                raise HUDRuntimeError(
                    f"runtime session refused ({reply.status_code}): {detail or reply.text[:200]}"
                )
            session_id = reply.json().get("id")
            if not isinstance(session_id, str):
                raise HUDRuntimeError("the runtime service sent a session without an id")
            tunnel_url = f"{ws_base(self.runtime_url)}/runtime/tunnels/{session_id}"
            locals_: set[_Local] = set()
            loop = asyncio.get_running_loop()
            if _proxied(tunnel_url):

                async def on_connect(
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                ) -> None:
                    await self._bridge(tunnel_url, reader, writer)

                server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
            else:
                headers = self._headers

                def accept() -> _Local:
                    local = _Local(lambda: _Tunnel(tunnel_url, headers), locals_)
                    locals_.add(local)
                    return local

                server = await loop.create_server(accept, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                yield Runtime(
                    f"tcp://127.0.0.1:{port}",
                    params={
                        "session_id": session_id,
                        "gateway_url": self.runtime_url,
                        "ready_timeout": self.ready_timeout,
                    },
                )
            finally:
                server.close()
                for local in list(locals_):  # each closes its WebSocket
                    local.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        http.delete(
                            f"{self.runtime_url}/runtime/sessions/{session_id}",
                            headers=self._headers,
                            timeout=15,
                        )
                    )

    async def _bridge(
        self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One local connection through a proxy: the websockets asyncio client, a task per
        direction."""
        import websockets

        try:
            async with websockets.connect(
                url, additional_headers=self._headers, max_size=None, open_timeout=OPEN_TIMEOUT
            ) as ws:

                async def up() -> None:
                    while True:
                        data = await reader.read(CHUNK)
                        if not data:
                            return
                        await ws.send(data)

                async def down() -> None:
                    async for message in ws:
                        writer.write(message if isinstance(message, bytes) else message.encode())
                        await writer.drain()

                tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
                try:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except Exception as exc:  # refused / closed: the local peer sees EOF and retries
            log.debug("tunnel %s: %s", url, exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _proxied(url: str) -> bool:
    """Whether websockets would reach ``url`` through a proxy (the environment's)."""
    try:
        from websockets.proxy import get_proxy
    except ImportError:  # websockets < 15 connects directly
        return False
    return get_proxy(parse_uri(url)) is not None


class _Local(asyncio.Protocol):
    """A local TCP connection: read once its WebSocket is open, closed when it closes (and
    the other way round)."""

    def __init__(self, tunnel: Callable[[], _Tunnel], registry: set[_Local]) -> None:
        self.make_tunnel = tunnel
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.tunnel: _Tunnel | None = None
        self.opening: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()  # until the WebSocket is open
        self.opening = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        tunnel = self.make_tunnel()
        try:
            await asyncio.wait_for(tunnel.open(self), OPEN_TIMEOUT)
        except Exception as exc:  # refused / closed: the local peer sees EOF and retries
            log.debug("tunnel %s: %s", tunnel.url, exc)
            tunnel.abort()
            self.close()
            return
        except BaseException:  # cancelled: the local peer left
            tunnel.abort()
            raise
        if self.transport is None or self.transport.is_closing():
            tunnel.close()
            return
        self.tunnel = tunnel
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.send(data)

    def eof_received(self) -> bool:
        return False  # no half-close through the tunnel: close both

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
        elif self.opening is not None:
            self.opening.cancel()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading(True)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading(False)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause_reading(self, paused: bool) -> None:
        set_paused(self.transport, paused)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Tunnel(asyncio.Protocol):
    """A tunnel's WebSocket (``Authorization: Bearer``, no compression, no size limit,
    keepalive pings): the websockets sans-I/O client does the opening handshake, then frames
    are read and written by hud/platform/wsframe.py."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.uri = parse_uri(url)
        self.conn = ClientProtocol(self.uri, max_size=None)
        self.transport: asyncio.Transport | None = None
        self.local: _Local | None = None
        self.loop = asyncio.get_running_loop()
        self.opened = self.loop.create_future()
        self.head = bytearray()  # what came before the handshake's end
        self.reader: FrameReader | None = None  # once open
        self.timers: list[asyncio.TimerHandle] = []
        self.pong: bytes | None = None
        self.close_sent = False

    async def open(self, local: _Local) -> None:
        self.local = local
        context = ssl.create_default_context() if self.uri.secure else None
        await self.loop.create_connection(
            lambda: self,
            self.uri.host,
            self.uri.port,
            ssl=context,
            server_hostname=self.uri.host if context else None,
        )
        await self.opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        request = self.conn.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        self.conn.send_request(request)
        self._write(b"".join(self.conn.data_to_send()))

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            try:
                self.reader.feed(data)
            except FrameError as exc:
                log.debug("tunnel %s: %s", self.url, exc)
                self._write(frame(CLOSE, close_payload(1002), mask=True))
                self.abort()
            return
        self.head += data
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if not isinstance(event, Response):
                continue
            if self.conn.handshake_exc is not None:
                self._fail(self.conn.handshake_exc)
                return
            # Open: the bytes after the response's head are frames, read from now on here.
            end = self.head.find(b"\r\n\r\n") + 4
            rest, self.head = bytes(self.head[end:]), bytearray()
            self.reader = FrameReader(masked=False, on_data=self._data, on_control=self._control)
            if not self.opened.done():
                self.opened.set_result(None)
            self.timers.append(self.loop.call_later(PING_INTERVAL, self._ping))
            if rest:
                self.data_received(rest)
            return
        if len(self.head) > 1 << 16:
            self._fail(ConnectionError("no WebSocket handshake response"))

    def _data(self, payload: bytes) -> None:
        if self.local is not None:
            self.local.write(payload)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            self._write(frame(PONG, payload, mask=True))
        elif opcode == PONG:
            if payload == self.pong:
                self.pong = None
        else:  # the server closes (or answers our close): complete the handshake, hang up
            local, self.local = self.local, None  # nothing comes after a close frame
            if local is not None:
                local.close()
            if not self.close_sent:
                self.close_sent = True
                self._write(frame(CLOSE, payload[:2], mask=True))
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self.timers:
            timer.cancel()
        self._fail(exc or ConnectionError("the tunnel's WebSocket closed"))
        if self.local is not None:
            self.local.close()

    def pause_writing(self) -> None:
        if self.local is not None:
            self.local.pause_reading(True)

    def resume_writing(self) -> None:
        if self.local is not None:
            self.local.pause_reading(False)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
            self.opened.exception()  # retrieved: `open` may be gone
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _ping(self) -> None:
        if self.close_sent:
            return
        if self.pong is not None:  # the last ping went unanswered
            self.abort()
            return
        self.pong = os.urandom(4)
        self._write(frame(PING, self.pong, mask=True))
        self.timers.append(self.loop.call_later(PING_TIMEOUT, self._ping))

    def send(self, data: bytes) -> None:
        if self.reader is not None and not self.close_sent:
            self._write(frame(BINARY, data, mask=True))

    def pause_reading(self, paused: bool) -> None:
        set_paused(self.transport, paused)

    def close(self) -> None:
        """The closing handshake (the server then hangs up; after `PING_TIMEOUT` we do)."""
        if self.reader is None:  # not open yet: no handshake to do
            if self.transport is not None:
                self.transport.close()
            return
        if self.close_sent:
            return
        self.close_sent = True
        self._write(frame(CLOSE, close_payload(1000), mask=True))
        self.timers.append(self.loop.call_later(PING_TIMEOUT, self.abort))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
