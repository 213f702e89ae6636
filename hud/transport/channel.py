"""Newline-delimited frames over one TCP connection, with as little per-message work as possible.

The control channel is latency-bound: a rollout is a handful of small request/reply exchanges,
so Python work per exchange is on the critical path. `LineChannel` drives a non-blocking socket
straight from event-loop reader/writer callbacks (no transport, no stream, no task per read):
a reply is split into lines in the read callback and wakes the one waiting coroutine. Loops
without ``add_reader`` (the Windows proactor loop) get `TransportChannel`, the same interface
over an asyncio transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections import deque
from typing import Any

log = logging.getLogger("hud.transport")

#: Size of the receive buffer (longer frames arrive in several reads).
READ_SIZE = 1 << 16

_local = threading.local()


def _read_buffer() -> tuple[bytearray, memoryview]:
    """This thread's receive buffer, shared by its `LineChannel`s and `SocketIO`s: each read
    callback copies what it needs before returning, and one thread runs one callback at a time.
    """
    try:
        return _local.buffer
    except AttributeError:
        buffer = bytearray(READ_SIZE)
        _local.buffer = (buffer, memoryview(buffer))
        return _local.buffer


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (TCP_NODELAY set); raises OSError like asyncio.

    A loopback connect usually completes inside ``connect()``: then no event-loop round trip
    is spent waiting for writability.
    """
    loop = asyncio.get_running_loop()
    infos = _numeric_address(host, port)
    if infos is None:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await _connect(loop, sock, address)
            return sock
        except OSError as exc:
            sock.close()
            errors.append(exc)
        except BaseException:
            sock.close()
            raise
    if not errors:
        raise OSError(f"getaddrinfo({host!r}) returned no addresses")
    if len(errors) == 1 or all(str(e) == str(errors[0]) for e in errors):
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


def _numeric_address(host: str, port: int) -> list[tuple[Any, ...]] | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any) -> None:
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    try:
        sock.getpeername()  # already established (the usual case on loopback)
        return
    except OSError:
        pass
    fd = sock.fileno()
    ready: asyncio.Future[None] = loop.create_future()
    try:
        loop.add_writer(fd, _set_ready, ready)
    except NotImplementedError:
        await loop.sock_connect(sock, address)
        return
    try:
        await ready
    finally:
        loop.remove_writer(fd)
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"Connect call failed {address}")


def _set_ready(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Lines:
    """Splits received bytes into lines (newline kept), StreamReader-style limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: deque[bytes] = deque()
        self.eof = False
        self.exc: BaseException | None = None
        self._partial = bytearray()
        self._scan = 0
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes | memoryview) -> None:
        partial = self._partial
        if not partial and data[-1:] == b"\n":
            whole = bytes(data)
            if whole.find(b"\n") == len(whole) - 1 and len(whole) <= self.limit + 1:
                self.lines.append(whole)  # the usual case: exactly one whole frame
                return
            data = whole
        partial += data
        while True:
            end = partial.find(b"\n", self._scan)
            if end < 0:
                if len(partial) > self.limit:
                    self.fail(ValueError("Separator is not found, and chunk exceed the limit"))
                else:
                    self._scan = len(partial)
                return
            if end > self.limit:
                self.fail(ValueError("Separator is found, but chunk is longer than limit"))
                return
            self.lines.append(bytes(partial[: end + 1]))
            del partial[: end + 1]
            self._scan = 0

    def fail(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        self._partial.clear()
        self._scan = 0

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def readline(self, loop: asyncio.AbstractEventLoop) -> bytes:
        lines = self.lines
        while not lines:
            if self.exc is not None:
                raise self.exc
            if self.eof:
                return b""
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return lines.popleft()


class LineChannel:
    """Frames over a connected non-blocking socket, driven by ``loop.add_reader``/``add_writer``.

    ``readline()`` mirrors `asyncio.StreamReader.readline` with limit ``limit``: ``b""`` at EOF,
    ValueError past the limit, the socket error if the connection broke. Raises
    NotImplementedError at construction on loops without ``add_reader``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, limit: int) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self._in = _Lines(limit)
        self._rbuf, self._rview = _read_buffer()
        self._wbuf = bytearray()
        self._drain: asyncio.Future[None] | None = None
        loop.add_reader(self.fd, self._on_readable)

    @property
    def at_eof(self) -> bool:
        return self._in.eof

    def _on_readable(self) -> None:
        try:
            n = self.sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(exc)
            return
        lines = self._in
        if n:
            lines.feed(self._rview[:n])
            if lines.exc is not None:
                self.loop.remove_reader(self.fd)
        else:
            lines.eof = True
            self.loop.remove_reader(self.fd)
        lines.wake()

    def _broken(self, exc: BaseException) -> None:
        self._in.fail(exc)
        self._in.eof = True
        self._detach()
        self._in.wake()
        self._wake_drain(exc)

    def _wake_drain(self, exc: BaseException | None = None) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            if exc is None:
                drain.set_result(None)
            else:
                drain.set_exception(exc)

    def write(self, data: bytes) -> None:
        """Send ``data`` (what the socket does not take now is sent from a writer callback)."""
        if self.closed:
            raise ConnectionError("channel is closed")
        if self._wbuf:
            self._wbuf += data
            return
        try:
            n = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n < len(data):
            self._wbuf += data[n:]
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            n = self.sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(exc)
            return
        del self._wbuf[:n]
        if not self._wbuf:
            self.loop.remove_writer(self.fd)
            self._wake_drain()

    async def drain(self) -> None:
        """Wait until everything written was handed to the kernel."""
        while self._wbuf:
            if self.closed:
                raise ConnectionResetError("Connection lost")
            if self._in.exc is not None and self._in.eof:
                raise self._in.exc
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    @property
    def draining(self) -> bool:
        """True while written bytes wait for the socket (``await drain()`` then)."""
        return bool(self._wbuf)

    async def readline(self) -> bytes:
        lines = self._in.lines
        if lines:
            return lines.popleft()
        return await self._in.readline(self.loop)

    def _detach(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.fd)
        with contextlib.suppress(Exception):
            self.loop.remove_writer(self.fd)
        self._wbuf.clear()
        self.sock.close()

    def close(self) -> None:
        """Close now (unsent bytes are dropped); a pending `readline` returns ``b""``."""
        self._in.eof = True
        self._detach()
        self._in.wake()
        self._wake_drain(ConnectionResetError("Connection lost"))

    abort = close


class _ChannelProtocol(asyncio.BufferedProtocol):
    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.transport: asyncio.Transport | None = None
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._paused = False
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        lines = self.lines
        lines.feed(self._buffer[:nbytes])
        if lines.exc is not None and self.transport is not None:
            self.transport.pause_reading()
        lines.wake()

    def eof_received(self) -> bool:
        self.lines.eof = True
        self.lines.wake()
        return True  # like StreamReaderProtocol: closed by the owner

    def connection_lost(self, exc: Exception | None) -> None:
        lines = self.lines
        lines.eof = True
        if exc is not None:
            lines.fail(exc)
        lines.wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("Connection lost"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)


class TransportChannel:
    """`LineChannel`'s interface over an asyncio transport (for loops without add_reader)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self._in = _Lines(limit)
        self._protocol = _ChannelProtocol(self._in)
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def create(
        cls, loop: asyncio.AbstractEventLoop, sock: socket.socket, limit: int
    ) -> TransportChannel:
        channel = cls(loop, limit)
        transport, _ = await loop.create_connection(lambda: channel._protocol, sock=sock)
        channel.transport = transport
        return channel

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    @property
    def at_eof(self) -> bool:
        return self._in.eof

    def write(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionError("channel is closed")
        self.transport.write(data)

    @property
    def draining(self) -> bool:
        return self._protocol._paused

    async def drain(self) -> None:
        protocol = self._protocol
        if protocol._paused:
            protocol._drain = self.loop.create_future()
            try:
                await protocol._drain
            finally:
                protocol._drain = None

    async def readline(self) -> bytes:
        return await self._in.readline(self.loop)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_channel(host: str, port: int, limit: int) -> LineChannel | TransportChannel:
    """Connect to ``host:port`` and return a channel (the fastest the running loop supports)."""
    loop = asyncio.get_running_loop()
    sock = await open_socket(host, port)
    try:
        return LineChannel(loop, sock, limit)
    except NotImplementedError:
        pass
    except BaseException:
        sock.close()
        raise
    try:
        return await TransportChannel.create(loop, sock, limit)
    except BaseException:
        sock.close()
        raise


class Consumer:
    """What `SocketIO` / `ProtocolIO` report to (duck-typed)."""

    def feed(self, data: memoryview) -> None:  # bytes received
        raise NotImplementedError

    def on_eof(self) -> None:  # the peer half-closed
        raise NotImplementedError

    def on_lost(self, exc: BaseException | None) -> None:  # the connection is gone
        raise NotImplementedError

    def pause_writing(self) -> None:  # more than the high-water mark is unsent
        raise NotImplementedError

    def resume_writing(self) -> None:
        raise NotImplementedError


class SocketIO:
    """A connected non-blocking socket driven by ``add_reader``/``add_writer`` callbacks, for
    a server's many short-lived connections: no transport, no task, one reused read buffer.

    Raises NotImplementedError from `start` on loops without ``add_reader``.
    """

    HIGH_WATER = 1 << 16

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.consumer: Any = None
        self.closing = False
        self.closed = False
        self._reading = False
        self._rbuf, self._rview = _read_buffer()
        self._wbuf = bytearray()
        self._paused = False
        self._eof = False

    def start(self, consumer: Any) -> None:
        """Begin delivering to ``consumer``; bytes already queued are read at once."""
        self.consumer = consumer
        self.loop.add_reader(self.fd, self._on_readable)
        self._reading = True
        self._on_readable()

    def _on_readable(self) -> None:
        try:
            n = self.sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        try:
            if n:
                self.consumer.feed(self._rview[:n])
            else:
                self._eof = True
                self.pause_reading()
                self.consumer.on_eof()
        except Exception as exc:  # a bug in the consumer: drop the connection, as a transport would
            log.exception("fatal error handling data on fd %d", self.fd)
            self._lost(exc)

    def pause_reading(self) -> None:
        if self._reading and not self.closed:
            self._reading = False
            self.loop.remove_reader(self.fd)

    def resume_reading(self) -> None:
        if not self._reading and not self.closed and not self._eof:
            self._reading = True
            self.loop.add_reader(self.fd, self._on_readable)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self._wbuf:
            try:
                n = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self.loop.call_soon(self._lost, exc)  # reported outside the caller's frame
                return
            if n == len(data):
                return
            self.loop.add_writer(self.fd, self._on_writable)
            data = data[n:]
        self._wbuf += data
        if not self._paused and len(self._wbuf) > self.HIGH_WATER:
            self._paused = True
            self.consumer.pause_writing()

    def _on_writable(self) -> None:
        try:
            n = self.sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._wbuf[:n]
        if self._wbuf:
            return
        self.loop.remove_writer(self.fd)
        if self.closing:
            self._close_now()
            return
        if self._paused:
            self._paused = False
            self.consumer.resume_writing()

    def close(self) -> None:
        """Close once everything written is sent."""
        self.closing = True
        self.pause_reading()
        if not self._wbuf:
            self._close_now()

    def abort(self) -> None:
        self.closing = True
        self._close_now()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._release()
        self.sock.close()

    def _release(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)
        if self._wbuf:
            self._wbuf = bytearray()
            self.loop.remove_writer(self.fd)

    def _lost(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self._close_now()
        self.consumer.on_lost(exc)

    async def to_half(self, pending: bytes, eof: bool) -> Any:
        """Hand the connection to a relay `Half` (``pending``: bytes already read from it)."""
        from hud.transport.splice import Half

        unsent = bytes(self._wbuf)
        self._release()
        self.closed = True  # the transport owns the socket from here
        half = Half()
        half.pending += pending
        half.eof = eof
        await self.loop.connect_accepted_socket(lambda: half, self.sock)
        if unsent and half.transport is not None:
            half.transport.write(unsent)
        return half


class ProtocolIO(asyncio.BufferedProtocol):
    """`SocketIO`'s interface over an asyncio transport (loops without ``add_reader``)."""

    def __init__(self, start: Any) -> None:
        self._start = start  # called with self once connected
        self.transport: asyncio.Transport | None = None
        self.consumer: Any = None
        self.closing = False
        self.closed = False
        self._buffer = memoryview(bytearray(READ_SIZE))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._start(self)

    def start(self, consumer: Any) -> None:
        self.consumer = consumer

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.consumer.feed(self._buffer[:nbytes])

    def eof_received(self) -> bool:
        self.consumer.on_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.on_lost(exc)

    def pause_writing(self) -> None:
        self.consumer.pause_writing()

    def resume_writing(self) -> None:
        self.consumer.resume_writing()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    async def to_half(self, pending: bytes, eof: bool) -> Any:
        from hud.transport.splice import Half

        assert self.transport is not None
        self.closed = True
        return Half.adopt(self.transport, pending, eof)
