"""Attacks on the workspace sandbox (ssh capability, bubblewrap) by a hostile agent.

Each test runs the attack against a live control server and a live sandbox and checks that it
stays inside its rollout: a fork bomb (only ever inside the limits under test, under
`timeout`), a setuid shell left for a host user, a symlink planted for the grader, a disk
filled and memory exhausted, and a root that cannot be restored. Run as root on Linux (limits
need cgroups and tmpfs mounts); elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hud import Environment
from hud.clients import connect
from hud.environment.server import bind
from hud.environment.workspace import Limits, Workspace, WorkspacePathError
from hud.environment.workspace.limits import detect_cgroups
from hud.environment.workspace.sandbox import bwrap_problem
from hud.eval.rollout import rollout
from hud.types import RuntimeConfig, RuntimeLimits

REPO = Path(__file__).resolve().parents[2]
BWRAP_PROBLEM = bwrap_problem()
CGROUPS = detect_cgroups()
needs_sandbox = pytest.mark.skipif(
    BWRAP_PROBLEM is not None, reason=f"bubblewrap unusable here: {BWRAP_PROBLEM}"
)
needs_limits = pytest.mark.skipif(
    isinstance(CGROUPS, str) or os.geteuid() != 0,
    reason=f"limits need root and cgroups: {CGROUPS if isinstance(CGROUPS, str) else 'not root'}",
)


@pytest.fixture
def root() -> Iterator[Path]:
    """A prepared workspace root any local user can reach (as the setuid attack needs)."""
    base = Path(tempfile.mkdtemp(prefix="hud-sec-"))
    os.chmod(base, 0o755)
    path = base / "root"
    path.mkdir(mode=0o755)
    (path / "seed.txt").write_text("seed\n")
    (path / "src").mkdir()
    (path / "src" / "main.py").write_text("print('hi')\n")
    try:
        yield path
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(root: Path, **kw: Any) -> tuple[Environment, Workspace]:
    env = Environment("secenv")
    ws = env.workspace(root, track_files=False, **kw)

    @env.template()
    async def work():
        yield "do your worst"
        # The grade checks the rollout got a complete workspace.
        complete = ws.read_text("seed.txt") == "seed\n" and ws.exists("src/main.py")
        yield 1.0 if complete else 0.0

    @env.template()
    async def answer():
        yield "write answer.txt"
        yield 1.0 if ws.read_text("answer.txt").strip() == "42" else 0.0

    return env, ws


def _at(url: str) -> Any:
    from hud.eval.runtime import Runtime

    @contextlib.asynccontextmanager
    async def place(task: Any) -> AsyncIterator[Runtime]:
        yield Runtime(url)

    return place


@contextlib.asynccontextmanager
async def _served(env: Environment) -> AsyncIterator[str]:
    server = await bind(env)
    try:
        yield server.url
    finally:
        await server.close()


def _agent(command: str, timeout: float = 60, during: Any = None) -> Any:
    async def agent(run: Any) -> None:
        sh = await run.client.open("shell")
        job = asyncio.ensure_future(sh.run(command, timeout=timeout))
        if during is not None:
            await during(run)
        result = await job
        run.trace.content = result.stdout  # the "answer": what the command printed

    return agent


def _sleeps(n: int) -> str:
    """A command starting ``n`` sleeps (stopping at the first fork that fails) that prints
    how many started."""
    code = (
        "import subprocess\n"
        "ps = []\n"
        f"for _ in range({n}):\n"
        "    try:\n"
        "        ps.append(subprocess.Popen(['sleep', '30']))\n"
        "    except OSError:\n"
        "        break\n"
        "print(len(ps))\n"
    )
    return f"python3 -c {shlex.quote(code)}"


# -- defaults -------------------------------------------------------------------------------------


def test_limits_are_on_by_default() -> None:
    ws = Workspace(tempfile.gettempdir())
    assert ws.limits == Limits(pids=512, memory_mb=1024, cpus=1.0, disk_mb=1024)
    assert Workspace(tempfile.gettempdir(), limits={"pids": 64}).limits == Limits(pids=64)
    assert Workspace(tempfile.gettempdir(), limits=False).limits is None
    with pytest.raises(ValueError, match="unknown workspace limit"):
        Workspace(tempfile.gettempdir(), limits={"procs": 1})
    with pytest.raises(ValueError, match="positive"):
        Limits(pids=0)


@needs_sandbox
@needs_limits
async def test_default_limits_stop_600_processes(root: Path) -> None:
    """Harmless check of the default process limit (512): 600 sleeps cannot all start, the
    rollout ends as an error, and the host never saw them."""
    env, ws = _env(root)
    async with _served(env) as url:
        command = _sleeps(600)
        run = await rollout(env.tasks["work"](), _agent(command), runtime=_at(url))
        assert ws.enforcement is not None and ws.enforcement.startswith("cgroup-v")
    started = int(run.trace.content.strip() or 0)
    assert 0 < started < 512
    assert run.trace.status == "error"
    assert "process limit (512)" in str(run.trace.error or run.grade)


@needs_sandbox
@needs_limits
async def test_row_limits_override_the_envs(root: Path) -> None:
    """A row's ``runtime_config.limits`` reaches the workspace with ``tasks.start``."""
    env, _ws = _env(root)
    task = env.tasks["work"]()
    task.runtime_config = RuntimeConfig(limits=RuntimeLimits(pids=64, disk_mb=32))
    command = f"{_sleeps(100)}; head -c 64M /dev/zero > big 2>/dev/null; echo $?"
    async with _served(env) as url:
        run = await rollout(task, _agent(command), runtime=_at(url))
    started, code = run.trace.content.split()
    assert 0 < int(started) < 64 and code != "0", run.trace.content
    assert "process limit (64)" in str(run.trace.error or run.grade)


# -- fork bomb ------------------------------------------------------------------------------------


@needs_sandbox
@needs_limits
async def test_fork_bomb_stays_inside_its_rollout(root: Path) -> None:
    """A fork bomb (under the rollout's 128-process limit and `timeout`): the host can still
    fork meanwhile, the rollout ends as an error, and the next rollout on the same server gets
    a complete workspace."""
    env, _ws = _env(root, limits={"pids": 128, "memory_mb": 512, "cpus": 0.5})
    host_forks: list[int] = []

    async def fork_on_host(run: Any) -> None:
        await asyncio.sleep(2)  # the bomb is at its limit by now
        for _ in range(20):
            proc = await asyncio.create_subprocess_exec("/bin/true")
            host_forks.append(await proc.wait())

    async with _served(env) as url:
        # The limit is in place before any bomb: a harmless probe first.
        probe = await rollout(
            env.tasks["work"](),
            _agent(_sleeps(200)),
            runtime=_at(url),
        )
        assert int(probe.trace.content.strip()) < 128, probe.trace.content
        bomb = "timeout 6 bash -c 'f(){ f | f & }; f' 2>/dev/null; echo done"
        run = await rollout(
            env.tasks["work"](), _agent(bomb, during=fork_on_host), runtime=_at(url)
        )
        assert host_forks == [0] * 20
        assert run.trace.status == "error"
        assert "process limit (128)" in str(run.trace.error or run.grade)
        # Every process of the bomb died with its rollout, and its cgroups are gone.
        assert not isinstance(CGROUPS, str)
        for base in CGROUPS.bases.values():
            assert not list(base.glob(f"hud-ws-{os.getpid()}-task-*"))
        after = await rollout(env.tasks["work"](), _agent("ls"), runtime=_at(url))
    assert after.trace.status == "completed" and after.reward == 1.0
    assert sorted(os.listdir(root)) == ["seed.txt", "src"]


# -- setuid ---------------------------------------------------------------------------------------


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="the setuid attack needs a server running as root")
@pytest.mark.parametrize("isolate", [True, False], ids=["per-rollout", "shared-root"])
async def test_setuid_shell_gives_a_host_user_nothing(root: Path, isolate: bool) -> None:
    """The agent leaves a setuid copy of bash in the workspace; a host user runs it while the
    rollout runs and must not get root (nor read /etc/shadow)."""
    env, ws = _env(root, isolate_sessions=isolate)
    seen: dict[str, Any] = {}

    async def host_user_runs_it(run: Any) -> None:
        await asyncio.sleep(0)  # the agent's command is under way; wait for the file
        for _ in range(200):
            if (ws.root / "sb").exists() and (ws.root / "sb").stat().st_mode & 0o4000:
                break
            await asyncio.sleep(0.05)
        seen["mode"] = oct((ws.root / "sb").stat().st_mode)
        done = await asyncio.to_thread(
            subprocess.run,
            [
                str(ws.root / "sb"),
                "-p",
                "-c",
                "id -u; head -c1 /etc/shadow >/dev/null && echo READ",
            ],
            capture_output=True,
            text=True,
            user=65534,
            group=65534,
            extra_groups=[],
            timeout=30,
        )
        seen["out"], seen["err"] = done.stdout, done.stderr

    async with _served(env) as url:
        command = "cp /bin/bash /workspace/sb && chmod 4755 /workspace/sb && sleep 3"
        await rollout(
            env.tasks["work"](), _agent(command, during=host_user_runs_it), runtime=_at(url)
        )
    assert "4755" in seen["mode"]  # the attack itself went through
    lines = seen["out"].split()
    assert lines and lines[0] != "0", seen
    assert "READ" not in seen["out"], seen


# -- grader file access ---------------------------------------------------------------------------


@needs_sandbox
async def test_grader_does_not_follow_a_planted_symlink(root: Path, tmp_path: Path) -> None:
    """The agent links answer.txt to a host file outside the workspace holding "42": the
    grader's `ws.read_text` refuses it instead of scoring 1.0 (and the secret never shows)."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("42\n")
    env, _ws = _env(root)
    async with _served(env) as url:
        planted = await rollout(
            env.tasks["answer"](), _agent(f"ln -s {secret} answer.txt"), runtime=_at(url)
        )
        honest = await rollout(
            env.tasks["answer"](), _agent("echo 42 > answer.txt"), runtime=_at(url)
        )
    assert planted.reward != 1.0
    assert planted.trace.status == "error"
    assert "leads out of the workspace" in str(planted.trace.error or planted.grade)
    assert honest.reward == 1.0


def test_safe_reads_resolve_beneath_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_text("inside\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (root / "in-link").symlink_to("d/f.txt")
    (root / "out-link").symlink_to(outside)
    (root / "abs-link").symlink_to(root / "d" / "f.txt")
    (root / "up-link").symlink_to("../outside.txt")
    (root / "dir-out").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")
    ws = Workspace(root)
    assert ws.read_text("d/f.txt") == "inside\n"
    assert ws.read_text("/workspace/d/f.txt") == "inside\n"
    assert ws.read_bytes("in-link") == b"inside\n"  # a link that stays inside is fine
    with ws.open("d/f.txt") as fh:
        assert fh.read() == "inside\n"
    assert ws.exists("d/f.txt") and not ws.exists("nope.txt")
    for bad in ("out-link", "abs-link", "up-link", "dir-out/outside.txt", "../outside.txt"):
        with pytest.raises(WorkspacePathError):
            ws.read_text(bad)
    for bad in ("/etc/passwd", "d/../../outside.txt"):
        with pytest.raises(WorkspacePathError):
            ws.exists(bad)
    with pytest.raises(WorkspacePathError):
        ws.exists("out-link")
    with pytest.raises(OSError, match="not a regular file"):
        ws.read_text("fifo")  # refused at once, not a hang
    with pytest.raises(ValueError, match="reads only"):
        ws.open("d/f.txt", "w")


# -- disk and memory ------------------------------------------------------------------------------


@needs_sandbox
@needs_limits
async def test_disk_writes_stop_at_the_quota(root: Path) -> None:
    """Writing 200 MiB into a workspace limited to 64 MiB fails with ENOSPC; /tmp too."""
    env, _ws = _env(root, limits={"disk_mb": 64, "memory_mb": 512})
    command = (
        "head -c 200M /dev/zero > big 2>/dev/null; echo $?; du -sm big | cut -f1; "
        "head -c 200M /dev/zero > /tmp/big 2>/dev/null; echo $?; rm -f big /tmp/big"
    )
    async with _served(env) as url:
        run = await rollout(env.tasks["work"](), _agent(command), runtime=_at(url))
    code, size, tmp_code = run.trace.content.split()
    assert code != "0" and int(size) <= 64 and tmp_code != "0", run.trace.content
    assert run.reward == 1.0  # the rollout itself may go on


@needs_sandbox
@needs_limits
async def test_memory_allocation_stops_at_the_limit(root: Path) -> None:
    """Touching 512 MiB under a 128 MiB limit kills the allocating process; the rollout ends
    as an error."""
    env, _ws = _env(root, limits={"memory_mb": 128, "disk_mb": 64})
    command = "python3 -c \"b = b'x' * (512 << 20)\"; echo $?"
    async with _served(env) as url:
        run = await rollout(env.tasks["work"](), _agent(command), runtime=_at(url))
    assert run.trace.content.strip() in ("137", "1"), run.trace.content
    assert run.trace.status == "error"
    assert "memory limit (128 MiB)" in str(run.trace.error or run.grade)


@needs_sandbox
@needs_limits
async def test_default_limits_bound_1gib_written_and_2gib_allocated(root: Path) -> None:
    """With no options: writing 1.1 GiB stops at the 1 GiB workspace, allocating 2 GiB is
    killed at the 1 GiB memory limit, and the rollout ends as an error."""
    env, _ws = _env(root)
    command = (
        "head -c 1100M /dev/zero > big 2>/dev/null; echo $?; du -sm big | cut -f1; rm -f big; "
        "python3 -c \"b = b'x' * (2 << 30)\" 2>/dev/null; echo $?"
    )
    async with _served(env) as url:
        run = await rollout(env.tasks["work"](), _agent(command), runtime=_at(url))
    write_code, size, alloc_code = run.trace.content.split()
    assert write_code != "0" and int(size) <= 1024, run.trace.content
    assert alloc_code in ("137", "1"), run.trace.content
    assert run.trace.status == "error"
    assert "memory limit (1024 MiB)" in str(run.trace.error or run.grade)


# -- restore --------------------------------------------------------------------------------------


@needs_sandbox
async def test_failed_restore_refuses_new_rollouts(root: Path, caplog: Any) -> None:
    """When restoring the root after a rollout fails, the root is marked broken: the next
    rollout is refused with a clear error instead of getting an empty workspace."""
    env, ws = _env(root, limits=False)  # the copy-back restore (no tmpfs over the root)

    async def lose_the_snapshot(run: Any) -> None:
        assert ws._coordinator is not None
        shutil.rmtree(ws._coordinator.pristine)

    async with _served(env) as url:
        first = await rollout(
            env.tasks["work"](), _agent("rm -rf src", during=lose_the_snapshot), runtime=_at(url)
        )
        assert first.trace.status == "completed"
        with caplog.at_level(logging.ERROR, logger="hud.workspace"):
            async with connect(url) as client:
                with pytest.raises(Exception, match="is broken"):
                    await client.start("work", {})
    assert "could not be restored" in caplog.text


@needs_sandbox
@needs_limits
async def test_a_killed_server_leaves_nothing_behind_the_next_start(root: Path) -> None:
    """A server SIGKILLed mid-rollout leaves its tmpfs mounts and cgroups; the next workspace
    started on the machine cleans them and gets the root as prepared."""
    script = (
        "import asyncio, os, signal, sys\n"
        "from hud.environment.workspace import Workspace\n"
        "from hud.environment.environment import current_session_id\n"
        "async def main():\n"
        "    ws = Workspace(sys.argv[1])\n"
        "    await ws.start()\n"
        "    await ws.begin_session('s')\n"
        "    current_session_id.set('s')\n"
        "    await ws.exec('echo agent > mine.txt; sleep 60 & true')\n"
        "    print('READY', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(root), stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert b"READY" in out and child.returncode == -9

    def leftovers() -> list[str]:
        text = Path("/proc/self/mountinfo").read_text()
        mounts = [
            ln for ln in text.splitlines() if "hud-workspace" in ln and f"-{child.pid}-" in ln
        ]
        roots = [ln for ln in text.splitlines() if "hud-workspace" in ln and f" {root} " in ln]
        assert not isinstance(CGROUPS, str)
        groups = [p for b in CGROUPS.bases.values() for p in b.glob(f"hud-ws-{child.pid}-*")]
        return mounts + roots + [str(g) for g in groups]

    assert leftovers()  # the crash left them
    ws = Workspace(root)
    await ws.start()
    try:
        assert not leftovers()
        assert sorted(os.listdir(root)) == ["seed.txt", "src"]
    finally:
        await ws.stop()


@pytest.mark.skipif(
    not (shutil.which("setpriv") and shutil.which("unshare")), reason="needs util-linux tools"
)
@pytest.mark.skipif(os.geteuid() != 0, reason="builds the unprivileged child as root")
def test_without_cgroups_or_mounts_it_warns_or_refuses(tmp_path: Path) -> None:
    """Where limits cannot be enforced (here: a child that sees no cgroup hierarchy, in its own
    mount namespace, and may not mount) the workspace warns loudly and runs unlimited; with
    require_limits=True it refuses to start, saying how to opt out."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import asyncio, sys, tempfile\n"
        "from hud.environment.workspace import Workspace\n"
        "async def main(require):\n"
        "    ws = Workspace(tempfile.mkdtemp(), require_limits=require)\n"
        "    try:\n"
        "        await ws.start()\n"
        "    except RuntimeError as exc:\n"
        "        print('REFUSED', exc)\n"
        "        return\n"
        "    print('STARTED', ws.enforcement)\n"
        "    await ws.stop()\n"
        "asyncio.run(main(sys.argv[1] == 'require'))\n"
    )
    # Only the child's private mount namespace gets the empty /sys/fs/cgroup.
    jail = 'mount -t tmpfs none /sys/fs/cgroup && exec setpriv --bounding-set -sys_admin "$0" "$@"'
    outs = {}
    for mode in ("warn", "require"):
        outs[mode] = subprocess.run(
            ["unshare", "-m", "sh", "-c", jail, sys.executable, str(script), mode],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    warned = outs["warn"]
    assert "STARTED none" in warned.stdout, warned.stderr
    assert "resource limits cannot be enforced" in warned.stderr
    assert "no cgroups" in warned.stderr and "no tmpfs mounts" in warned.stderr
    refused = outs["require"]
    assert "REFUSED" in refused.stdout and "limits=False" in refused.stdout, refused.stderr
