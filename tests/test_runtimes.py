"""Placements: LocalRuntime, SubprocessRuntime (warm fork and plain spawn), Shared, Runtime."""

from __future__ import annotations

import asyncio
import signal
import textwrap
from pathlib import Path

import pytest

from hud.agents import Agent
from hud.clients import connect
from hud.eval.run import Run
from hud.eval.runtime import Runtime
from hud.eval.runtimes import LocalRuntime, Shared, SubprocessRuntime
from hud.eval.task import Task
from hud.eval.taskset import Taskset

ENV_SOURCE = textwrap.dedent(
    """
    import os
    from hud import Environment

    env = Environment("iso")
    SEEN = []  # module state a rollout mutates

    @env.template()
    async def touch(tag: str):
        SEEN.append(tag)
        answer = yield f"seen={len(SEEN)} pid={os.getpid()}"
        yield 1.0 if len(SEEN) == 1 else 0.0

    @env.template()
    async def boom():
        raise RuntimeError("setup exploded")
        yield
    """
)


class EchoPrompt(Agent):
    """Answers with the prompt, so the test can read what the env saw."""

    async def __call__(self, run: Run) -> None:
        run.trace.content = run.prompt_text


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "iso_env.py"
    path.write_text(ENV_SOURCE)
    return path


def _rows(n: int) -> Taskset:
    return Taskset("iso", [Task(env="iso", id="touch", args={"tag": str(i)}) for i in range(n)])


@pytest.mark.parametrize("fork", [True, False])
async def test_subprocess_rollouts_share_no_module_state(env_file: Path, fork: bool) -> None:
    async with SubprocessRuntime(env_file, fork=fork) as runtime:
        job = await _rows(12 if fork else 4).run(EchoPrompt(), runtime=runtime, max_concurrent=4)
    prompts = [run.trace.content for run in job.runs]
    assert all(p.startswith("seen=1 ") for p in prompts), prompts
    assert [run.reward for run in job.runs] == [1.0] * len(job.runs)
    pids = {p.split("pid=")[1] for p in prompts}
    assert len(pids) == len(prompts)  # a fresh process per rollout


async def test_local_runtime_from_path_reimports_per_rollout(env_file: Path) -> None:
    job = await _rows(3).run(EchoPrompt(), runtime=LocalRuntime(env_file))
    assert [run.reward for run in job.runs] == [1.0, 1.0, 1.0]


async def test_live_environment_is_shared_and_serialized(env_file: Path) -> None:
    from hud.environment import load_environment

    env = load_environment(env_file)
    job = await _rows(3).run(EchoPrompt(), runtime=LocalRuntime(env), max_concurrent=3)
    assert sorted(run.trace.content.split()[0] for run in job.runs) == [
        "seen=1",
        "seen=2",
        "seen=3",
    ]


async def test_setup_failure_becomes_a_failed_run_and_batch_goes_on(env_file: Path) -> None:
    rows = Taskset(
        "mix",
        [Task(env="iso", id="boom"), Task(env="iso", id="touch", args={"tag": "x"})],
    )
    async with SubprocessRuntime(env_file) as runtime:
        job = await rows.run(EchoPrompt(), runtime=runtime)
    failed, ok = job.runs
    assert failed.status == "error"
    assert "[starting task]" in failed.trace.error
    assert "setup exploded" in failed.trace.error
    assert ok.reward == 1.0
    assert job.errors == [failed]


async def test_unloadable_source_fails_fast_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad_env.py"
    bad.write_text("raise ValueError('no good')\n")
    async with SubprocessRuntime(bad) as runtime:
        job = await _rows(3).run(EchoPrompt(), runtime=runtime)
    for run in job.runs:
        assert run.status == "error"
        assert "[provisioning]" in run.trace.error
        assert "no good" in run.trace.error


async def test_missing_source_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SubprocessRuntime(tmp_path / "nope.py")


async def test_shared_leases_one_substrate_to_width_rollouts(env_file: Path) -> None:
    shared = Shared(LocalRuntime(env_file), width=2)
    job = await _rows(4).run(EchoPrompt(), runtime=shared, max_concurrent=4)
    seen = sorted(int(run.trace.content.split()[0].split("=")[1]) for run in job.runs)
    assert seen == [1, 2, 3, 4]  # one process, one module: state accumulates
    with pytest.raises(RuntimeError):
        async with shared(Task(env="iso", id="touch", args={"tag": "z"})):
            pass


async def test_runtime_is_immutable_and_its_own_provider(env_file: Path) -> None:
    runtime = Runtime("127.0.0.1:1234", params={"ready_timeout": 3})
    assert runtime.url == "tcp://127.0.0.1:1234"
    with pytest.raises(AttributeError):
        runtime.url = "x"  # type: ignore[misc]
    async with runtime(None) as same:
        assert same is runtime
    provider = LocalRuntime(env_file)
    async with provider(Task(env="iso", id="touch")) as live, connect(live) as client:
        assert client.env_info["name"] == "iso"


async def test_rollout_timeout_names_the_phase(tmp_path: Path) -> None:
    path = tmp_path / "slow_env.py"
    path.write_text(
        textwrap.dedent(
            """
            import asyncio
            from hud import Environment
            env = Environment("slow")

            @env.template()
            async def slow():
                await asyncio.sleep(30)
                yield "never"
            """
        )
    )
    rows = Taskset("slow", [Task(env="slow", id="slow")])
    async with SubprocessRuntime(path) as runtime:
        job = await rows.run(EchoPrompt(), runtime=runtime, rollout_timeout=5)
    (run,) = job.runs
    assert run.status == "error"
    assert run.trace.stop_reason == "timeout"
    assert "during starting task" in run.trace.error
    await asyncio.sleep(0)


async def test_warm_process_dying_before_a_rollout_reports_its_stderr(tmp_path: Path) -> None:
    path = tmp_path / "dies_env.py"
    path.write_text(
        ENV_SOURCE
        + textwrap.dedent(
            """
            import signal, sys

            def _die(*_):
                print("fatal: the licence server went away (marker-7731)", file=sys.stderr)
                sys.stderr.flush()
                os._exit(3)

            signal.signal(signal.SIGUSR1, _die)
            """
        )
    )
    async with SubprocessRuntime(path) as runtime:
        async with runtime(Task(env="iso", id="touch", args={"tag": "a"})):
            pass  # the warm process is up (and a spare child is being prepared)
        zygote = runtime._zygote
        assert zygote is not None
        zygote.send_signal(signal.SIGUSR1)
        with pytest.raises(RuntimeError) as info:
            for _ in range(5):  # the spare child may have been started before the signal
                async with runtime(Task(env="iso", id="touch", args={"tag": "b"})):
                    pass
        message = str(info.value)
        assert "exited with code 3" in message, message
        assert "marker-7731" in message, message
