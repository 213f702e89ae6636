"""Fixtures for agent tests: fake providers, a workspace environment, key isolation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hud import Environment
from hud.eval.rollout import rollout
from hud.eval.run import Run
from hud.eval.runtimes import LocalRuntime
from hud.eval.task import Task
from tests.agents.fakes import FakeProvider

PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
SECRET = "sk-test-SECRET-4f9c2a7e1b"


@pytest.fixture(autouse=True)
def _isolated_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real keys or saved settings leak into agent tests."""
    import hud.settings

    for name in (*PROVIDER_KEYS, "HUD_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "agent-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    hud.settings.reload()
    yield
    hud.settings.reload()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


# -- workspace ---------------------------------------------------------------------------------
@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The prepared root of the test environment's workspace (``shell`` capability)."""
    root = tmp_path / "ws"
    root.mkdir()
    return root


@dataclass
class Seen:
    """What the workspace held when the task was graded (path -> text), and the answer."""

    files: dict[str, str]
    answer: Any = None


@pytest.fixture
def seen() -> Seen:
    return Seen({})


@pytest.fixture
def shell_env(workspace: Path, seen: Seen) -> Environment:
    """An environment publishing a real `Workspace` over ``workspace`` as ``shell``, with
    templates ``hello`` (write out.txt with ``hi`` and answer its content) and ``ask`` (a
    question). Grading snapshots the rollout's workspace files into ``seen``."""
    env = Environment(name="agentlab")
    ws = env.workspace(workspace, track_files=False)

    def snapshot(answer: Any) -> None:
        root = ws.root
        seen.answer = answer
        seen.files.clear()
        for path in sorted(root.rglob("*")):
            if path.is_file():
                seen.files[str(path.relative_to(root))] = path.read_text(errors="replace")

    @env.template()
    async def hello():
        answer = yield "Write 'hi' into out.txt in the workspace, then answer with its content."
        snapshot(answer)
        ok = seen.files.get("out.txt", "").strip() == "hi" and str(answer).strip() == "hi"
        yield 1.0 if ok else 0.0

    @env.template()
    async def ask(question: str = "What is 2+2?", expected: str = "4"):
        answer = yield question
        snapshot(answer)
        yield 1.0 if str(answer).strip() == expected else 0.0

    return env


async def run_task(env: Environment, agent: Any, task_id: str = "hello", **task: Any) -> Run:
    """One rollout of ``task_id`` on ``env`` (in-process); a hang fails it within 150 s."""
    row = Task(env=env.name, id=task_id, **task)
    return await rollout(row, agent, runtime=LocalRuntime(env), rollout_timeout=150)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


# -- an MCP server (the mcp SDK's own, streamable HTTP) --------------------------------------
@pytest.fixture
async def mcp_url() -> Any:
    """URL of an MCP server with tools ``add`` and ``math.mul`` (a name that needs sanitizing)."""
    import contextlib
    import socket

    import uvicorn

    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as MCPServer

    server = MCPServer("agent-tools", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool(name="math.mul")
    def mul(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    class Quiet(uvicorn.Server):
        def install_signal_handlers(self) -> None:
            pass

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = server.streamable_http_app()
    uv = Quiet(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        assert not task.done(), "uvicorn failed to start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
def display() -> Iterator[tuple[str, int]]:
    """(X display, VNC port) of a 320x240 Xvfb served by x11vnc (skipped without them)."""
    from tests.screens import desktop

    with desktop() as desk:
        yield desk.display, desk.port
