"""Copy bytes between two connections, forwarding half-close, until both sides are done.

Two layers:

- `Half` / `relay`: the fast path used by the server's tunnels and the client's forwarders. Each
  transport gets a `Half` protocol that reads into a preallocated buffer and writes each chunk
  straight into the other transport, from the transport's own read callback: no task, future or
  extra copy per chunk. Flow control: a `Half` pauses reading its own transport while the
  other transport holds unsent bytes, and resumes once they are all sent (so the read buffer is
  never reused while a transport may still reference it). A `Half` can be attached to a
  connection before the other end exists (a backend being dialled, a reply frame still to be
  read): it then buffers what arrives, pausing reads past a limit, and `relay` forwards those
  bytes first.
- `splice` / `pipe`: the same job for `asyncio` stream pairs (kept for callers holding streams).
"""

from __future__ import annotations

import asyncio
import contextlib

#: Largest single read of the relay.
READ_SIZE = 1 << 20
#: Bytes a not-yet-linked `Half` buffers before it pauses reading.
PENDING_LIMIT = 1 << 20
#: Read size of the stream-based `pipe`.
CHUNK = 256 * 1024


class Half(asyncio.BufferedProtocol):
    """One connection of a relay: what it reads is written to the other connection.

    Create it as the protocol of a new connection (``loop.create_connection(Half, ...)``,
    ``loop.create_server(Half, ...)``) or take over an existing transport with `Half.adopt`.
    Until `relay` links it, received bytes accumulate in `pending`.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Half | None = None
        self.pending = bytearray()
        self.eof = False  # no more bytes will come from this connection
        self.lost = False
        self.error: BaseException | None = None
        self._buffer: memoryview | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._paused_by_peer = False

    @classmethod
    def adopt(
        cls, transport: asyncio.Transport, pending: bytes | bytearray = b"", eof: bool = False
    ) -> Half:
        """Take over ``transport`` (its reads must be paused); ``pending``: bytes already read
        from it, ``eof``: whether it already reported EOF."""
        half = cls()
        half.transport = transport
        half.pending += pending
        half.eof = eof
        transport.set_protocol(half)
        return half

    # -- protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._buffer is None:
            self._buffer = memoryview(bytearray(READ_SIZE))
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self._buffer is not None
        peer = self.peer
        if peer is None:
            self.pending += self._buffer[:nbytes]
            self._wake()
            if len(self.pending) >= PENDING_LIMIT and self.transport is not None:
                self.transport.pause_reading()
            return
        # Writes happen from here; pause_writing on the peer pauses our reads when it buffers.
        assert peer.transport is not None
        peer.transport.write(self._buffer[:nbytes])

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self.peer is not None:
            self.peer._write_eof()
            self._check()
        return True  # keep the transport open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        # Everything read from this connection was already written to the peer: the relay
        # ends, and closing the peer flushes what it still holds.
        self.lost = True
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()
        if self.peer is not None:
            self.peer._write_eof()
            self._check()

    def pause_writing(self) -> None:
        # Our transport holds unsent bytes (which may reference the peer's read buffer).
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer._paused_by_peer = True
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer._paused_by_peer:
            peer._paused_by_peer = False
            if peer.transport is not None and not peer.transport.is_closing() and not peer.eof:
                peer.transport.resume_reading()

    # -- helpers ---------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _write_eof(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(Exception):
            if transport.can_write_eof():
                transport.write_eof()

    def _check(self) -> None:
        peer = self.peer
        done = self._done
        if done is None or done.done() or peer is None:
            return
        if (self.eof and peer.eof) or self.lost or peer.lost:
            done.set_result(None)

    async def readline(self, limit: int = 1 << 16) -> bytes:
        """Before linking: wait for one newline-terminated line and remove it from `pending`.

        Returns ``b""`` on EOF before a full line; raises ValueError past ``limit`` bytes.
        """
        loop = asyncio.get_running_loop()
        while True:
            end = self.pending.find(b"\n")
            if end >= 0:
                if end > limit:
                    raise ValueError("line longer than the limit")
                line = bytes(self.pending[: end + 1])
                del self.pending[: end + 1]
                return line
            if len(self.pending) > limit:
                raise ValueError("line longer than the limit")
            if self.eof:
                if self.error is not None:
                    raise self.error
                return b""
            if self.transport is not None and not self.transport.is_reading():
                self.transport.resume_reading()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


async def relay(a: Half, b: Half) -> None:
    """Relay bytes between ``a`` and ``b`` until both directions reached EOF or one failed;
    then close both. Bytes each side had buffered go first."""
    assert a.transport is not None and b.transport is not None
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    a.peer, b.peer = b, a
    a._done = b._done = done
    # Any buffered byte pauses the writer's source, so a read buffer is never reused while
    # the transport still holds part of it (Python 3.12 queues memoryviews, not copies).
    for half in (a, b):
        with contextlib.suppress(Exception):
            half.transport.set_write_buffer_limits(high=0)  # type: ignore[union-attr]
    try:
        for src, dst in ((a, b), (b, a)):
            assert src.transport is not None and dst.transport is not None
            if src.pending:
                data, src.pending = bytes(src.pending), bytearray()
                dst.transport.write(data)
        for src, dst in ((a, b), (b, a)):
            if src.eof:
                dst._write_eof()
        for half in (a, b):
            t = half.transport
            assert t is not None
            if not half.eof and not half._paused_by_peer and not t.is_closing():
                t.resume_reading()
        a._check()
        if not done.done():
            await done
    finally:
        for half in (a, b):
            if half.transport is not None:
                with contextlib.suppress(Exception):
                    half.transport.close()


# -- stream API ------------------------------------------------------------------------------


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` into ``writer`` until EOF, then half-close ``writer``."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            if writer.transport.get_write_buffer_size() > CHUNK:
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Splice A <-> B; returns when both directions reached EOF (or one side failed)."""
    try:
        await asyncio.gather(pipe(a_reader, b_writer), pipe(b_reader, a_writer))
    finally:
        for w in (a_writer, b_writer):
            with contextlib.suppress(Exception):
                w.close()
