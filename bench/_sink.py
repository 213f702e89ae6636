"""Raw TCP endpoints for the tunnel benchmark (run as a separate process).

- sink: counts bytes until EOF, then sends the count as 8 big-endian bytes and closes.
- source: reads an 8-byte big-endian length, sends that many bytes, then closes.

Both use asyncio's buffered protocols so the endpoints are not the bottleneck. Prints
``SINK_PORT=<p> SOURCE_PORT=<q>`` once listening; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import struct

BUFFER = 1 << 20
_BLOCK = memoryview(bytes(range(256)) * (BUFFER // 256))


class Sink(asyncio.BufferedProtocol):
    """Count bytes until EOF, then report the count."""

    def __init__(self) -> None:
        self.buffer = bytearray(BUFFER)
        self.count = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.count += nbytes

    def eof_received(self) -> bool:
        assert self.transport is not None
        self.transport.write(struct.pack(">Q", self.count))
        self.transport.close()
        return True


class Source(asyncio.Protocol):
    """Send the requested number of bytes, honouring flow control."""

    def __init__(self) -> None:
        self.header = b""
        self.remaining = 0
        self.paused = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=4 * BUFFER)

    def data_received(self, data: bytes) -> None:
        if len(self.header) >= 8:
            return
        self.header += data
        if len(self.header) >= 8:
            (self.remaining,) = struct.unpack(">Q", self.header[:8])
            self._pump()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        # Deferred: closing from inside the transport's write callback double-fires
        # connection_lost on CPython 3.11.
        self.paused = False
        asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        while self.remaining and not self.paused:
            n = min(self.remaining, BUFFER)
            self.transport.write(_BLOCK[:n])
            self.remaining -= n
        if not self.remaining:
            self.transport.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(Sink, "127.0.0.1", 0)
    source = await loop.create_server(Source, "127.0.0.1", 0)
    sink_port = sink.sockets[0].getsockname()[1]
    source_port = source.sockets[0].getsockname()[1]
    print(f"SINK_PORT={sink_port} SOURCE_PORT={source_port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
