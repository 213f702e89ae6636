"""The coding environment: a small Python project in a sandboxed workspace over SSH.

The workspace (the `shell` capability) serves a copy of `project/` over SSH: commands run in
a bubblewrap sandbox where bubblewrap works (the agent sees the project at /workspace, no
network, nothing else of this machine), and every rollout starts from the project as
prepared here, whatever other rollouts do at the same time. File tracking records the
agent's edits in the trace.

Try it:

    hud eval examples/coding/tasks.py oracle --all   # the oracle works through the shell: 1.0
    hud serve examples/coding/env.py                  # serve it for any agent
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hud import Environment
from hud.graders import BashGrader

env = Environment(name="coding")

# The prepared workspace: a fresh copy of project/ per environment process (made at import,
# so a forking runtime prepares it once; removed when the importing process exits).
ROOT = Path(tempfile.mkdtemp(prefix="hud-coding-"))
shutil.copytree(Path(__file__).parent / "project", ROOT, dirs_exist_ok=True)
atexit.register(functools.partial(shutil.rmtree, ROOT, ignore_errors=True))

ws = env.workspace(ROOT, name="shell")

# Ground truth is read once, here: while rollouts run, the root belongs to them (one works in
# it in place, and its teardown restores it), so graders must not re-read it for answers.
LOG_LINES = (ROOT / "data" / "service.log").read_text().splitlines()


# -- fix_bug -------------------------------------------------------------------------------
async def _fix_mean(run: Any) -> str:
    """Reference solution: patch calc.py in the workspace through the shell."""
    shell = await run.client.open("shell")
    fixed = await shell.run(
        "sed -i 's|total(numbers) / (len(numbers) + 1)|total(numbers) / len(numbers)|' calc.py"
        " && python3 -m unittest -q test_calc 2>&1 | tail -1"
    )
    return fixed.stdout.strip()


@env.template(solution=_fix_mean)
async def fix_bug():
    """Make the project's unit tests pass."""
    yield (
        "The Python project in your workspace has a failing unit test "
        "(`python3 -m unittest -q test_calc`). Fix the bug in calc.py without changing the "
        "tests, then answer with the test summary line."
    )
    # The grader runs in this rollout's sandbox, on this rollout's files.
    yield await BashGrader.grade(1.0, command="python3 -m unittest -q test_calc", workspace=ws)


# -- write_file ----------------------------------------------------------------------------
async def _write(run: Any) -> str:
    """Reference solution: create the file through the shell client's file helper."""
    shell = await run.client.open("shell")
    path = f"{shell.cwd or '.'}/{run.args['name']}"
    await shell.write_file(path, run.args["content"] + "\n", parents=True)
    return f"wrote {run.args['name']}"


@env.template(solution=_write)
async def write_file(name: str, content: str):
    """Create a file with the given content."""
    yield f"Create the file `{name}` in the workspace containing exactly the line: {content}"
    # Read this rollout's files through the workspace: the path stays beneath the rollout's
    # root, so a symlink the agent planted (name -> a host file) raises instead of scoring.
    ok = ws.exists(name) and ws.read_text(name).strip() == content
    yield 1.0 if ok else 0.0


# -- count_log -----------------------------------------------------------------------------
async def _count(run: Any) -> str:
    """Reference solution: grep the log in the workspace."""
    shell = await run.client.open("shell")
    level = run.args["level"]
    out = await shell.run(f"grep -c ' {level} ' data/service.log")
    return out.stdout.strip()


@env.template(solution=_count)
async def count_log(level: str):
    """Count log lines of one level."""
    answer = yield (
        f"How many lines of data/service.log in your workspace have the level {level}? "
        "Answer with the number only."
    )
    expected = sum(1 for line in LOG_LINES if f" {level} " in line)
    yield 1.0 if str(answer).strip() == str(expected) else 0.0


if __name__ == "__main__":
    import asyncio

    asyncio.run(env.serve())
