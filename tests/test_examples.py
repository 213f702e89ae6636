"""The tools, browser and desktop examples: served by `hud serve` / `bind` / `SubprocessRuntime`,
their tasks solved by the oracle through the capability (and failed by an empty answer)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hud.agents import NopAgent, OracleAgent
from hud.clients import CDPClient, MCPClient, RFBClient, SSHClient, connect
from hud.environment import load_environment
from hud.environment.server import bind
from hud.eval.runtime import Runtime
from hud.eval.runtimes.subprocess import SubprocessRuntime
from hud.eval.taskset import Taskset

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: example -> (Debian binaries it runs, capability it publishes, its protocol)
NEEDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "tools": ((), "tools", "mcp/2025-11-25"),
    "browser": (("chromium",), "browser", "cdp/1.3"),
    "desktop": (("Xvfb", "x11vnc", "xsetroot", "xset"), "screen", "rfb/3.8"),
    "coding": ((), "shell", "ssh/2"),
}


def example(name: str) -> Any:
    """A test parameter for ``name``, skipped when its daemons are not installed."""
    binaries, _, _ = NEEDS[name]
    missing = [b for b in binaries if shutil.which(b) is None]
    marks: list[pytest.MarkDecorator] = []
    if missing:
        marks.append(
            pytest.mark.skip(
                reason=f"needs {', '.join(missing)} (apt-get install; see .ci/apt-packages)"
            )
        )
    return pytest.param(name, marks=marks, id=name)


ALL = [example(name) for name in NEEDS]


@pytest.fixture(autouse=True)
def fresh_imports() -> Iterator[None]:
    """Each test imports the examples' ``env``/``tasks`` modules afresh.

    The examples share module names; without this, a directory loaded earlier in the process
    can shadow a later one on ``sys.path`` (see the loader's sibling-import handling).
    """
    saved = list(sys.path)
    yield
    sys.path[:] = saved
    for name in ("env", "tasks"):
        sys.modules.pop(name, None)


def placement(url: str) -> Runtime:
    """A running server as the placement of every rollout (failing fast if it never answers)."""
    return Runtime(url, params={"ready_timeout": 30})


def rewards(job: object) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for run in job.runs:  # type: ignore[attr-defined]
        assert run.error is None, f"{run.task_id}: {run.error}"
        out.setdefault(run.task_id, []).append(run.reward)
    return out


@pytest.mark.parametrize("name", ALL)
async def test_oracle_solves_example_in_subprocesses(name: str) -> None:
    tasks = Taskset.from_file(EXAMPLES / name / "tasks.py")
    assert len(tasks) >= 2
    async with SubprocessRuntime(EXAMPLES / name / "env.py") as runtime:
        job = await tasks.run(OracleAgent(), runtime=runtime, rollout_timeout=120)
    got = rewards(job)
    assert set(got) == {t.id for t in tasks}
    assert all(r == 1.0 for rs in got.values() for r in rs), got


@pytest.mark.parametrize("name", ALL)
async def test_empty_answers_fail_example(name: str) -> None:
    tasks = Taskset.from_file(EXAMPLES / name / "tasks.py")
    env = load_environment(EXAMPLES / name / "env.py")
    server = await bind(env, "127.0.0.1", 0)
    try:
        job = await tasks.run(NopAgent(), runtime=placement(server.url), rollout_timeout=120)
    finally:
        await server.close()
    got = rewards(job)
    assert all(r == 0.0 for rs in got.values() for r in rs), got


@pytest.mark.parametrize("name", ALL)
async def test_oracle_solves_example_served_by_hud_serve(
    name: str, hud_serve: Callable[..., object]
) -> None:
    served = hud_serve(str(EXAMPLES / name / "env.py"), "--port", "0", cwd=REPO)
    url = f"tcp://127.0.0.1:{served.port}"  # type: ignore[attr-defined]
    _, cap_name, protocol = NEEDS[name]
    async with connect(url, ready_timeout=30) as client:
        (binding,) = [b for b in client.bindings if b.name == cap_name]
        assert binding.protocol == protocol
        assert binding.url.split("://", 1)[1].startswith("127.0.0.1:")
        opened = await client.open(cap_name)
        expected = {
            "tools": MCPClient,
            "browser": CDPClient,
            "desktop": RFBClient,
            "coding": SSHClient,
        }[name]
        assert isinstance(opened, expected)
    # One env process serves every rollout here, one at a time: a desktop has one screen and
    # the browser one page tab (`hud eval` gives each rollout its own env process instead).
    tasks = Taskset.from_file(EXAMPLES / name / "tasks.py")
    job = await tasks.run(
        OracleAgent(), runtime=placement(url), group=2, max_concurrent=1, rollout_timeout=120
    )
    got = rewards(job)
    assert sum(len(rs) for rs in got.values()) == 2 * len(tasks)
    assert all(r == 1.0 for rs in got.values() for r in rs), got


def test_apt_packages_cover_the_examples() -> None:
    listed = (REPO / ".ci" / "apt-packages").read_text().split()
    for package in ("chromium", "xvfb", "x11vnc", "x11-xserver-utils"):
        assert package in listed
