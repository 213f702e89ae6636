"""The tools environment: an MCP server (the `tools` capability) that agents call.

On start the environment runs an MCP server over streamable HTTP on 127.0.0.1 (a free port),
with a small vault of secrets made fresh for each environment process. Agents reach it through
the control port's tunnel, so it works the same when the env runs in a container.

Try it:

    hud eval examples/tools/tasks.py oracle --all   # the oracle calls the tools: reward 1.0
    hud serve examples/tools/env.py                  # serve it for any agent
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from hud import Environment
from hud.capabilities import Capability

try:  # mcp >= 2
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

env = Environment(name="tools")

#: Key -> secret value, made at start: only the `lookup` tool tells them.
VAULT: dict[str, str] = {}
KEYS = ("alpha", "bravo", "charlie", "delta")


def build_server() -> Any:
    """The MCP server and its tools."""
    server = MCPServer("hud-tools-example", log_level="WARNING")

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words of a text (split on whitespace)."""
        return len(text.split())

    @server.tool()
    def list_keys() -> list[str]:
        """The keys stored in the vault."""
        return sorted(VAULT)

    @server.tool()
    def lookup(key: str) -> str:
        """The secret stored under `key` in the vault."""
        if key not in VAULT:  # a ToolError's message reaches the agent (isError: true)
            raise ToolError(f"no such key: {key!r} (see list_keys)")
        return VAULT[key]

    return server


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the env server owns SIGTERM."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield


_state: dict[str, Any] = {}


@env.initialize
async def start_mcp_server() -> None:
    VAULT.clear()
    VAULT.update({key: secrets.token_hex(6) for key in KEYS})
    app = build_server().streamable_http_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _QuietServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("MCP server exited during start-up")
        await asyncio.sleep(0.01)
    _state.update(server=server, task=task, sock=sock)
    env.add_capability(Capability.mcp(f"http://127.0.0.1:{port}/mcp"))


@env.shutdown
async def stop_mcp_server() -> None:
    server, task = _state.pop("server", None), _state.pop("task", None)
    if server is not None and task is not None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
    sock = _state.pop("sock", None)
    if sock is not None:
        sock.close()


async def _lookup(run: Any) -> str:
    """Reference solution: ask the vault through the `tools` capability."""
    tools = await run.client.open("tools")
    result = await tools.call_tool("lookup", {"key": run.args["key"]})
    if result.get("isError"):
        raise RuntimeError(f"lookup failed: {result}")
    return "".join(b.get("text", "") for b in result["content"] if b.get("type") == "text")


@env.template(solution=_lookup)
async def vault(key: str):
    """Read a secret that only the MCP `lookup` tool knows."""
    answer = yield (
        f"The tools capability (MCP) has a `lookup` tool. Look up the secret stored under "
        f"'{key}' and answer with the secret only."
    )
    yield 1.0 if str(answer).strip() == VAULT.get(key) else 0.0


async def _total(run: Any) -> str:
    """Reference solution: sum with the `add` tool, one call per number."""
    tools = await run.client.open("tools")
    total: float = 0
    for number in run.args["numbers"]:
        result = await tools.call_tool("add", {"a": total, "b": number})
        total = result["structuredContent"]["result"]
    return f"{total:g}"


@env.template(solution=_total)
async def total(numbers: list[float]):
    """Add up numbers (the `add` tool helps)."""
    answer = yield (
        "Add up these numbers (the tools capability has an `add` tool): "
        + ", ".join(f"{n:g}" for n in numbers)
        + ". Answer with the number only."
    )
    try:
        correct = abs(float(str(answer).strip()) - sum(numbers)) < 1e-9
    except ValueError:
        correct = False
    yield 1.0 if correct else 0.0


if __name__ == "__main__":
    asyncio.run(env.serve())
