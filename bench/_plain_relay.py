"""Plain asyncio TCP relays: the same bytes as a tunnel, with no HUD framing (a baseline).

Usage: ``python _plain_relay.py MODE SINK_PORT SOURCE_PORT``; prints
``SINK_PORT=<p> SOURCE_PORT=<q>`` (relays forwarding to the given ports), stops on SIGTERM.
Standalone (standard library only):

- ``streams``: the textbook relay, two ``StreamReader.read(64 KiB)`` / ``write`` / ``drain``
  loops per connection;
- ``protocols``: buffered protocols writing each received chunk straight into the other
  transport, flow control by pausing the reading side (the technique our tunnels use, in
  about 50 lines, so the row shows what a relay process costs by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

CHUNK = 1 << 16
READ_SIZE = 1 << 20


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()


def streams_relay(target: int) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", target)
        try:
            await asyncio.gather(_pipe(reader, b_writer), _pipe(b_reader, writer))
        finally:
            writer.close()
            b_writer.close()

    return asyncio.start_server(handle, "127.0.0.1", 0)


class _Half(asyncio.BufferedProtocol):
    def __init__(self, done: asyncio.Future[None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.done = done
        self.eof = False
        self.pending = bytearray()
        self.buffer = memoryview(bytearray(READ_SIZE))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=0)  # pause the source on any backlog

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.peer is None or self.peer.transport is None:
            self.pending += self.buffer[:nbytes]
        else:
            self.peer.transport.write(self.buffer[:nbytes])

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write_eof()
        self._check()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        self._check()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _check(self) -> None:
        done = self.done or (self.peer.done if self.peer else None)
        if self.peer is not None and self.eof and self.peer.eof and done and not done.done():
            done.set_result(None)


def protocols_relay(target: int) -> Any:
    loop = asyncio.get_running_loop()
    links: set[asyncio.Task[None]] = set()

    class Front(_Half):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.done = loop.create_future()
            transport.pause_reading()  # type: ignore[attr-defined]
            task = loop.create_task(link(self))
            links.add(task)
            task.add_done_callback(links.discard)

    async def link(a: _Half) -> None:
        _, b = await loop.create_connection(_Half, "127.0.0.1", target)
        assert a.transport is not None and b.transport is not None and a.done is not None
        a.peer, b.peer = b, a
        for src, dst in ((a, b), (b, a)):
            if src.pending:
                dst.transport.write(bytes(src.pending))  # type: ignore[union-attr]
        a.transport.resume_reading()
        try:
            await a.done
        finally:
            a.transport.close()
            b.transport.close()

    return loop.create_server(Front, "127.0.0.1", 0)


async def main(mode: str, sink: int, source: int) -> None:
    make = streams_relay if mode == "streams" else protocols_relay
    servers = [await make(sink), await make(source)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(f"SINK_PORT={ports[0]} SOURCE_PORT={ports[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
