"""The `spelling` env of wire.md Appendix B (golden transcript), for both implementations.

The `shell` capability is an SSH binding whose backend is a plain echo server: the transcript
only needs raw bytes to flow through the tunnel.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hud import Environment
from hud.capabilities import Capability
from hud.environment import Answer

env = Environment(name="spelling")

HOST_PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGold"
_BACKEND: dict[str, Any] = {}


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@env.initialize
async def _shell() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    _BACKEND["server"] = server
    port = server.sockets[0].getsockname()[1]
    env.add_capability(
        Capability.ssh(
            url=f"ssh://127.0.0.1:{port}",
            host_pubkey=HOST_PUBKEY,
            shell="bash",
            cwd="/workspace",
        )
    )


@env.shutdown
async def _stop() -> None:
    server = _BACKEND.pop("server", None)
    if server is not None:
        server.close()


@env.template(description="Count vowels", input=str, returns=int)
async def vowels(word: str, strict: bool = False):
    answer: Answer[int] = yield f"How many vowels are in '{word}'?"
    yield 1.0 if answer.content == sum(ch in "aeiou" for ch in word.lower()) else 0.0
