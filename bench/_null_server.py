"""A null control server: the latency floor of a Python asyncio server on this machine.

Parses each request line and answers ``hello`` / ``tasks.start`` / ``tasks.grade`` with fixed
results from a bare ``asyncio.Protocol`` (no sessions, templates or validation). Prints
``HUD_SERVE_PORT=<port>``; stops on SIGTERM. Standalone: runs under either venv.
"""

from __future__ import annotations

import asyncio
import json
import signal

RESULTS = {
    "hello": {
        "session_id": "sess-00000000",
        "env": {"name": "bench", "version": "0.0.1"},
        "bindings": [],
    },
    "tasks.start": {"prompt": "Repeat the word 'hello'."},
    "tasks.grade": {"score": 1.0},
}


class NullSession(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            frame = json.loads(line)
            result = RESULTS.get(frame.get("method"), {})
            reply = {"jsonrpc": "2.0", "id": frame.get("id"), "result": result}
            self.transport.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullSession, "127.0.0.1", 0)
    print(f"HUD_SERVE_PORT={server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
