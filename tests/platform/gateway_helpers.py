"""Shared pieces of the gateway tests: a workspace env both CLIs run, a fake model that solves
it through whatever shell tool the agent offers, and upstream registration."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from tests.agents.fakes import Call, Recorded, Reply
from tests.platform.helpers import Platform

#: The agent must create <name>.txt through its shell; graded on the workspace's files.
ENV_PY = '''
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from hud import Environment

env = Environment(name="gwtest")
ROOT = Path(tempfile.mkdtemp(prefix="hud-gwtest-"))
atexit.register(functools.partial(shutil.rmtree, ROOT, ignore_errors=True))
ws = env.workspace(ROOT, name="shell")


@env.template()
async def mark(name: str):
    """The agent writes <name>.txt in its workspace."""
    yield f"write {name}.txt"
    yield 1.0 if (ws.root / f"{name}.txt").is_file() else 0.0
'''

TASKS_PY = 'from env import mark\n\ntasks = [mark(name="alpha")]\n'

#: Provider -> the agent whose calls go to it (`hud eval tasks.py <agent>`).
AGENTS = {"openai_compatible": "openai_compatible", "anthropic": "claude", "openai": "openai",
          "gemini": "gemini"}  # fmt: skip
#: What an upstream's base URL looks like for each provider (as the provider's SDK takes it).
SUFFIX = {"openai_compatible": "/v1", "openai": "/v1", "anthropic": "", "gemini": ""}
RESULT_MARKERS = ('"tool_result"', '"function_call_output"', '"shell_call_output"',
                  '"functionResponse"', '"role": "tool"')  # fmt: skip


def write_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "tasks.py").write_text(TASKS_PY)
    return root


def _tool_names(body: dict) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        decls = tool.get("functionDeclarations") or tool.get("function_declarations")
        if decls:
            out += [(d["name"], d) for d in decls]
        elif tool.get("type") == "function" and "function" in tool:
            out.append((tool["function"]["name"], tool["function"].get("parameters") or {}))
        elif tool.get("type") == "shell":
            out.append(("shell", {"commands": True}))
        elif "name" in tool:
            out.append((tool["name"], tool))
    return out


def solve_with_shell(request: Recorded) -> Reply:
    """A model that runs ``echo ok > <name>.txt`` in the offered shell tool, then says done."""
    text = json.dumps(request.body)
    if any(marker in text for marker in RESULT_MARKERS):
        return Reply(text="done")
    found = re.search(r"write (\w+)\.txt", text)
    command = f"echo ok > {found.group(1) if found else 'x'}.txt"
    for name, spec in _tool_names(request.body if isinstance(request.body, dict) else {}):
        if name == "shell" and spec.get("commands"):
            return Reply(calls=[Call("shell", {"commands": [command]})])
        if "bash" in name or "shell" in name:
            return Reply(calls=[Call(name, {"command": command})])
    return Reply(text="no shell tool offered")


def add_upstream(
    platform: Platform, provider: str, base_url: str, *models: str, key: str | None = None,
    extra: tuple[str, ...] = (),
) -> str:  # fmt: skip
    """Register an upstream under a fresh name; returns that name."""
    name = f"up-{provider}-{uuid.uuid4().hex[:8]}"
    args = ["upstream", "add", name, "--provider", provider, "--base-url", base_url]
    if key:
        args += ["--api-key", key]
    for model in models:
        args += ["--model", model]
    proc = platform.hud(*args, *extra)
    assert proc.returncode == 0, proc.stderr
    return name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
