"""Prototype: a Protocol-based splice, a drop-in for ``hud.transport.splice``.

Instead of two ``StreamReader.read`` / ``StreamWriter.write`` loops (a task wake-up, a future and
a copy per chunk), the two transports are handed protocols that write each received chunk
straight into the other transport, with flow control done by pausing the reading side when the
writing side's buffer is full. Bytes the StreamReader had already buffered (read past the
``tunnel.open`` frame) are forwarded first.

Used by ``tunnel_throughput.py`` (unless ``--no-prototype``) through ``_proto_server.py``,
which runs our server with this function patched in. Not used by the package itself.
"""

from __future__ import annotations

import asyncio
import contextlib

HIGH_WATER = 1 << 20
READ_SIZE = 1 << 20


class _Half(asyncio.BufferedProtocol):
    """Receives from ``own`` and writes into ``peer``; pauses ``peer``'s reads when ``own``'s
    write buffer is full.

    Reads land in a preallocated buffer (``recv_into``, up to ``READ_SIZE`` per call). A write
    that the peer transport could not send at once may keep a reference to that buffer (3.12
    queues a memoryview), so a fresh buffer is taken whenever the peer has buffered data.
    """

    def __init__(self, own: asyncio.Transport, done: asyncio.Future[None]) -> None:
        self.own = own
        self.peer: asyncio.Transport | None = None
        self.other: _Half | None = None
        self.done = done
        self.eof = False
        self.lost = False
        self.buffer = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self.peer is not None
        self.peer.write(self.buffer[:nbytes])
        if self.peer.get_write_buffer_size():
            self.buffer = memoryview(bytearray(READ_SIZE))

    def data_received(self, data: bytes) -> None:
        """Bytes the StreamReader had buffered before the take-over."""
        assert self.peer is not None
        self.peer.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        assert self.peer is not None and self.other is not None
        with contextlib.suppress(Exception):
            if self.peer.can_write_eof() and not self.peer.is_closing():
                self.peer.write_eof()
        self._check()
        return True  # keep the transport open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        if self.peer is not None and not self.peer.is_closing():
            if exc is None and self.peer.can_write_eof():
                with contextlib.suppress(Exception):
                    self.peer.write_eof()
            else:
                self.peer.abort()
        self._check()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            self.peer.resume_reading()

    def _check(self) -> None:
        if self.other is not None and self.eof and self.other.eof and not self.done.done():
            self.done.set_result(None)


def _take_over(reader: asyncio.StreamReader, half: _Half) -> tuple[bytes, bool]:
    """Switch the transport to ``half``; return what the StreamReader had buffered and EOF."""
    pending = bytes(reader._buffer)
    reader._buffer.clear()
    half.own.set_protocol(half)
    return pending, reader.at_eof() or reader._eof


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Splice A <-> B until both directions reached EOF (or a side failed)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    a_t: asyncio.Transport = a_writer.transport  # type: ignore[assignment]
    b_t: asyncio.Transport = b_writer.transport  # type: ignore[assignment]
    a_half, b_half = _Half(a_t, done), _Half(b_t, done)
    a_half.peer, a_half.other = b_t, b_half
    b_half.peer, b_half.other = a_t, a_half
    for t in (a_t, b_t):
        t.set_write_buffer_limits(high=HIGH_WATER)
    try:
        for reader, half in ((a_reader, a_half), (b_reader, b_half)):
            pending, eof = _take_over(reader, half)
            if pending:
                half.data_received(pending)
            if eof:
                half.eof_received()
            elif not half.own.is_reading():
                half.own.resume_reading()
        await done
    finally:
        for t in (a_t, b_t):
            with contextlib.suppress(Exception):
                t.close()
