"""The worker zygote (`hud.platform.workers.zygote`) under a real `LocalExecutor`: workers are
forked from it, its environment carries no key, their exit statuses come through it (a killed
worker is seen killed), a killed zygote is started again and a zygote that cannot start leaves
the executor spawning processes. Rollouts through forked workers are in
test_runtime_sessions.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from hud.platform.workers.local import LocalExecutor, Worker
from hud.platform.workers.zygote import ForkedProcess
from tests.procfs import cmdline, ppid


async def _end(worker: Worker) -> int:
    """Close a fresh worker's stdin: it exits 0."""
    assert worker.proc.stdin is not None
    worker.proc.stdin.close()
    return await asyncio.wait_for(worker.proc.wait(), 30)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    secret = f"sk-zygote-test-{os.getpid()}"
    monkeypatch.setenv("HUD_API_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    return secret


def test_workers_are_forked_and_their_statuses_come_through(secret_env: str) -> None:
    async def main() -> None:
        executor = LocalExecutor(warm=2)
        try:
            workers = [await executor._spawn() for _ in range(3)]
            zygote = executor._zygote
            assert zygote is not None and zygote.proc is not None
            assert all(isinstance(w.proc, ForkedProcess) for w in workers)
            assert {ppid(w.proc.pid) for w in workers} == {zygote.proc.pid}
            assert ppid(zygote.proc.pid) == os.getpid()
            for pid in (zygote.proc.pid, workers[0].proc.pid):
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert b"HUD_API_KEY" not in environ and secret_env.encode() not in environ
            # one container watchdog for all of them, started by the zygote
            assert "reaper --many" in " ".join(
                cmdline(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()
            )
            assert await _end(workers[0]) == 0
            workers[1].proc.kill()
            assert await asyncio.wait_for(workers[1].proc.wait(), 30) == -signal.SIGKILL
            assert await workers[1].proc.stdout.read() == b""  # type: ignore[union-attr]
            with pytest.raises(ProcessLookupError):  # gone: no signal reaches another pid
                workers[1].proc.send_signal(signal.SIGTERM)
            workers[2].proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(workers[2].proc.wait(), 30) == -signal.SIGTERM
        finally:
            await executor.aclose()
        assert zygote.proc.returncode == 0  # it exited once its workers had

    asyncio.run(main())


def test_a_killed_zygote_takes_its_workers_and_is_started_again() -> None:
    async def main() -> None:
        executor = LocalExecutor(warm=2)
        try:
            worker = await executor._spawn()
            zygote = executor._zygote
            assert zygote is not None and zygote.proc is not None
            os.kill(zygote.proc.pid, signal.SIGKILL)
            # its worker dies with it (PR_SET_PDEATHSIG) and is reported killed
            assert await asyncio.wait_for(worker.proc.wait(), 30) == -signal.SIGKILL
            deadline = time.monotonic() + 10
            while "workers.zygote" in cmdline(worker.proc.pid):
                assert time.monotonic() < deadline, "a worker outlived its zygote"
                await asyncio.sleep(0.05)
            again = await executor._spawn()
            assert executor._zygote is not None and executor._zygote is not zygote
            assert executor._zygote.proc is not None
            assert ppid(again.proc.pid) == executor._zygote.proc.pid
            assert await _end(again) == 0
        finally:
            await executor.aclose()

    asyncio.run(main())


def test_a_zygote_that_cannot_start_leaves_spawned_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a `hud` package shadowing ours whose zygote module fails at once; the spawned workers
    # (plain ``--serve`` processes) find the real one through the original path
    broken = tmp_path / "hud" / "platform" / "workers"
    broken.mkdir(parents=True)
    for pkg in (tmp_path / "hud", tmp_path / "hud" / "platform", broken):
        (pkg / "__init__.py").write_text("")
    (broken / "zygote.py").write_text("raise SystemExit(3)\n")
    real = os.environ.get("PYTHONPATH")

    async def main() -> None:
        executor = LocalExecutor(warm=2)
        try:
            monkeypatch.setenv("PYTHONPATH", str(tmp_path))
            starting = asyncio.ensure_future(executor._start_zygote())
            await asyncio.sleep(0)  # its environment is taken: the broken path
            if real is None:
                monkeypatch.delenv("PYTHONPATH")
            else:
                monkeypatch.setenv("PYTHONPATH", real)
            assert await starting is None
            worker = await executor._spawn()  # no retry yet: a process of its own
            assert not isinstance(worker.proc, ForkedProcess)
            assert ppid(worker.proc.pid) == os.getpid()
            assert "rollout --serve" in cmdline(worker.proc.pid)
            assert await _end(worker) == 0
        finally:
            await executor.aclose()

    asyncio.run(main())
