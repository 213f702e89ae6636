"""Run N trivial rollouts in containers through ``DockerRuntime``; print one JSON line.

Runs unchanged under our package and the official one (only the shared public API is used).
Usage: ``python _docker_driver.py IMAGE N CONCURRENCY``; the image serves ``boxenv``
(tests/docker/envs/boxenv) on port 8765.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from hud import DockerRuntime, Task, Taskset
from hud.agents.base import Agent


class FixedAnswer(Agent):
    """Always answers ``HELLO`` (what ``shout(text="hello")`` expects)."""

    async def __call__(self, run):  # type: ignore[no-untyped-def]
        run.trace.content = "HELLO"


async def main(image: str, n: int, concurrency: int) -> None:
    rows = [
        Task(env="boxenv", id="shout", args={"text": "hello"}, slug=f"shout-{i}") for i in range(n)
    ]
    taskset = Taskset("docker-bench", rows)
    runtime = DockerRuntime(image)
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
                "mean_reward": statistics.fmean(rewards) if rewards else 0.0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
