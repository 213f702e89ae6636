"""The runtime tunnel's data path: a WebSocket spliced to a TCP connection at the transport
level (spec platform.md §7).

An ASGI WebSocket costs, per frame and direction, an ASGI message, a queue hand-off, a task
wake-up and a pause/resume of the socket; a tunnel needs none of that: once the app has
authenticated the WebSocket and opened the container connection, :class:`SplicingProtocol`
(uvicorn's websockets-sansio protocol plus a scope extension) writes each data frame's payload
straight into the container's transport, and :class:`Upstream` (that connection's protocol)
writes each chunk it reads straight back as a binary frame. Frames are read and written by
hud/platform/wsframe.py (payloads streamed, pings answered, uvicorn's keepalive fed, the close
handshake completed); the websockets state machine does the handshake. Each side's reading
pauses while the other side's write buffer is full.

Under another ASGI server the extension is absent (and a client that sent frames before the
handshake's reply cannot be spliced): the app pumps the same `Upstream` through ASGI messages
instead (:meth:`Upstream.pump`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hud.platform.wsframe import set_paused

#: ASGI scope extension offered by :class:`SplicingProtocol`: ``{"splice": fn}``, where
#: ``await fn(upstream)`` carries the WebSocket's frames to and from ``upstream`` until either
#: side closes and returns True, or returns False at once if it cannot (frames came before
#: it: the app pumps them with :meth:`Upstream.pump`).
EXTENSION = "hud.splice"


class Upstream(asyncio.Protocol):
    """The container side of one tunnel: the first line sent to it (up to ``max_first``
    bytes) goes through :attr:`first_line` (the session token is added there), the rest passes
    unchanged. Bytes the container sends before a WebSocket is attached wait in a buffer
    (reading paused past ``limit``)."""

    def __init__(self, *, max_first: int, limit: int = 1 << 20) -> None:
        self.first_line: Callable[[bytes], bytes] = bytes
        self.max_first = max_first
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.first: bytearray | None = bytearray()  # None once the first line went through
        self.pending = bytearray()  # container bytes before `send` is attached
        self.send: Callable[[bytes], None] | None = None
        self.on_pause: Callable[[bool], None] | None = None  # pause the WebSocket's reading
        self.closed = asyncio.get_running_loop().create_future()

    # -- the container connection ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.send is not None:
            self.send(data)
            return
        self.pending += data
        if len(self.pending) > self.limit and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # no half-close through the tunnel: close it

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self.on_pause is not None:
            self.on_pause(True)

    def resume_writing(self) -> None:
        if self.on_pause is not None:
            self.on_pause(False)

    # -- the WebSocket side ----------------------------------------------------------------
    def attach(self, send: Callable[[bytes], None]) -> None:
        """Send the container's bytes with ``send`` from now on (and those buffered)."""
        self.send = send
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            send(data)
        set_paused(self.transport, False)

    def write(self, data: bytes) -> None:
        """Bytes from the WebSocket to the container."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.first is not None:
            self.first += data
            line, newline, rest = self.first.partition(b"\n")
            if not newline and len(self.first) < self.max_first:
                return
            data = self.first_line(bytes(line + newline)) + rest if newline else bytes(self.first)
            self.first = None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def pump(self, websocket: Any) -> None:
        """The portable data path: a Starlette WebSocket's ASGI messages, for an ASGI server
        without :data:`EXTENSION` (slower: a task wake-up per frame and direction)."""
        out: asyncio.Queue[bytes | None] = asyncio.Queue()
        writable = asyncio.Event()
        writable.set()
        self.on_pause = lambda paused: writable.clear() if paused else writable.set()

        def send(data: bytes) -> None:
            out.put_nowait(data)
            if out.qsize() >= 8 and self.transport is not None:
                self.transport.pause_reading()  # until the WebSocket catches up

        self.closed.add_done_callback(lambda _f: out.put_nowait(None))
        self.attach(send)

        async def upstream() -> None:  # WebSocket -> container
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                self.write(data if data is not None else (message.get("text") or "").encode())
                await writable.wait()

        async def downstream() -> None:  # container -> WebSocket
            while (data := await out.get()) is not None:
                await websocket.send_bytes(data)
                if out.qsize() < 8:
                    set_paused(self.transport, False)

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(upstream()), loop.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _drop(_data: bytes) -> None:
    pass


def protocol_class() -> Any:
    """The WebSocket protocol for uvicorn's ``ws`` setting: :class:`SplicingProtocol`, or
    ``"auto"`` when this uvicorn has no websockets-sansio protocol to build it on."""
    try:
        return _splicing_protocol()
    except ImportError:  # pragma: no cover - uvicorn < 0.35
        return "auto"


def _splicing_protocol() -> type:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Request

    from hud.platform.wsframe import (
        BINARY,
        CLOSE,
        PING,
        PONG,
        FrameError,
        FrameReader,
        close_payload,
        frame,
    )

    class SplicingProtocol(WebSocketsSansIOProtocol):
        """uvicorn's websockets-sansio WebSocket protocol that an app can splice (see the
        module docstring)."""

        upstream: Upstream | None = None
        reader: FrameReader | None = None  # once spliced: frames are read here
        received = 0  # data_received calls (the first is the handshake request)

        def data_received(self, data: bytes) -> None:
            if self.reader is None:
                self.received += 1
                super().data_received(data)
                return
            try:
                self.reader.feed(data)
            except FrameError as exc:
                self.logger.debug("tunnel: %s", exc)
                self.transport.write(frame(CLOSE, close_payload(1002), mask=False))
                self.transport.close()

        def _control(self, opcode: int, payload: bytes) -> None:
            if opcode == PING:
                self.transport.write(frame(PONG, payload, mask=False))
                return
            if opcode == PONG:
                handle_pong = getattr(self, "handle_pong", None)  # uvicorn's keepalive
                if handle_pong is not None:
                    handle_pong(Frame(Opcode.PONG, payload))
                return
            if self.reader is not None:  # CLOSE: nothing comes after it
                self.reader.on_data = _drop
            if self.close_sent:  # the reply to our close frame
                timer = getattr(self, "close_timer", None)
                if timer is not None:
                    timer.cancel()
                    self.close_timer = None
            else:  # the client closes: echo its code
                self.transport.write(frame(CLOSE, payload[:2], mask=False))
            self.transport.close()

        def handle_connect(self, event: Request) -> None:
            super().handle_connect(event)
            if not self.handshake_complete:  # accepted: the app runs with this scope
                self.scope["extensions"][EXTENSION] = {"splice": self._splice}

        async def _splice(self, upstream: Upstream) -> bool:
            if (
                self.received != 1
                or self.conn.reader.buffer
                or not self.queue.empty()
                or self.transport.is_closing()
            ):
                return False  # frames came before the splice: the app pumps ASGI messages
            # Nothing came after the handshake request (uvicorn passes exactly that): the
            # websockets parser stands at a frame boundary, frames are read here from now on.
            self.upstream = upstream
            upstream.on_pause = self._pause_reading
            self.reader = FrameReader(masked=True, on_data=upstream.write, on_control=self._control)
            upstream.attach(self._send_frame)
            if not self.writable.is_set() and upstream.transport is not None:
                upstream.transport.pause_reading()  # the client is not reading
            await upstream.closed
            return True

        def _send_frame(self, data: bytes) -> None:
            if not (self.close_sent or self.disconnected):
                self.transport.write(frame(BINARY, data, mask=False))

        def _pause_reading(self, paused: bool) -> None:
            set_paused(self.transport, paused)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.pause_reading()

        def resume_writing(self) -> None:
            super().resume_writing()
            if self.upstream is not None:
                set_paused(self.upstream.transport, False)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.upstream is not None:
                self.upstream.close()

    return SplicingProtocol
