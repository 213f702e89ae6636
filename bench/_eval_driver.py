"""Run N trivial rollouts with a fixed-answer agent; print one JSON line of figures.

Runs unchanged under our package and the official one (only the shared public API is used).
Usage: ``python _eval_driver.py ENV_FILE subprocess|local N CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from hud import LocalRuntime, SubprocessRuntime, Task, Taskset
from hud.agents.base import Agent


class FixedAnswer(Agent):
    """Always answers ``hello`` (what the bench env's ``echo`` template expects)."""

    async def __call__(self, run):  # type: ignore[no-untyped-def]
        run.trace.content = "hello"


async def main(env_file: str, kind: str, n: int, concurrency: int) -> None:
    rows = [
        Task(env="bench", id="echo", args={"word": "hello"}, slug=f"echo-{i}") for i in range(n)
    ]
    taskset = Taskset("bench", rows)
    runtime = SubprocessRuntime(env_file) if kind == "subprocess" else LocalRuntime(env_file)
    started = time.perf_counter()
    job = await taskset.run(FixedAnswer(), runtime=runtime, max_concurrent=concurrency)
    elapsed = time.perf_counter() - started
    rewards = [run.reward for run in job.runs]
    print(
        json.dumps(
            {
                "n": len(rewards),
                "elapsed_s": elapsed,
                "rollouts_per_s": len(rewards) / elapsed,
                "overhead_ms": 1000 * elapsed * concurrency / max(1, len(rewards)),
                "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
            }
        ),
        flush=True,
    )
    aclose = getattr(runtime, "aclose", None)
    if aclose is not None:
        await aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
