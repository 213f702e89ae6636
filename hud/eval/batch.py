"""Running a taskset: expansion into rollouts, placement, concurrency, the `Job`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hud.eval.job import Job
from hud.eval.rollout import rollout, validate_timeouts
from hud.eval.run import Run
from hud.eval.task import Task
from hud.eval.trace import Trace

if TYPE_CHECKING:
    from hud.eval.taskset import Taskset


def default_placement(tasks: list[Task]) -> Callable[[Task], Any]:
    """Live envs -> one serialized `LocalRuntime` each; file-backed rows -> fresh imports."""
    from hud.eval.runtimes.local import LocalRuntime

    by_env: dict[int, LocalRuntime] = {}
    by_source: dict[str, LocalRuntime] = {}
    for task in tasks:
        live = task.environment
        if getattr(live, "provider", None) is not None:
            continue
        if live is not None:
            by_env.setdefault(id(live), LocalRuntime(live))
        elif task._source:
            by_source.setdefault(task._source, LocalRuntime(_env_target(task._source)))
        else:
            raise ValueError(
                f"no placement for task {task.slug}: pass runtime= (e.g. LocalRuntime('env.py'), "
                "SubprocessRuntime('env.py') or Runtime('tcp://host:port'))"
            )

    def place(task: Task) -> Any:
        live = task.environment
        provider = getattr(live, "provider", None)
        if provider is not None:  # environments that place their own rows (Harbor tasks)
            return provider(task)
        if live is not None:
            return by_env[id(live)](task)
        return by_source[task._source or ""](task)

    return place


def _env_target(source: str) -> Any:
    from pathlib import Path

    from hud.eval.sources import env_target_for

    return env_target_for(Path(source))


def job_name(taskset: Taskset, tasks: list[Task], group: int) -> str:
    name = tasks[0].id if len(tasks) == 1 else f"{taskset.name} ({len(tasks)} tasks)"
    return f"{name} ({group} times)" if group > 1 else name


async def run_batch(
    taskset: Taskset,
    agent: Any,
    *,
    runtime: Any = None,
    group: int | None = None,
    max_concurrent: int | None = None,
    job: Job | None = None,
    rollout_timeout: float | None = None,
    skip: Callable[[Task, int], bool] | None = None,
) -> Job:
    tasks = list(taskset)
    group = group or (job.group if job is not None else 1)
    for task in tasks:
        validate_timeouts(task, agent, rollout_timeout)
    placement = runtime if runtime is not None else default_placement(tasks)
    if job is None:
        job = Job(name=job_name(taskset, tasks, group), group=group, taskset_id=taskset.taskset_id)
    plan: list[tuple[Task, int, str]] = []
    for task in tasks:
        group_id = uuid.uuid4().hex
        for index in range(group):
            if skip is None or not skip(task, index):
                plan.append((task, index, group_id))
    sem = asyncio.Semaphore(max_concurrent) if max_concurrent else None
    results: list[Run | None] = [None] * len(plan)

    async def one(i: int, task: Task, index: int, group_id: str) -> None:
        async with sem or contextlib.nullcontext():
            trace = Trace(trace_id=uuid.uuid4().hex)
            trace.extra["group_index"] = index
            job.started(task, trace)
            run = await rollout(
                task,
                agent,
                runtime=placement,
                job_id=job.id,
                group_id=group_id,
                trace=trace,
                rollout_timeout=rollout_timeout,
            )
            results[i] = run
            job.finished(run)

    scope = placement if hasattr(placement, "__aenter__") else contextlib.nullcontext()
    async with scope:
        tasks_ = [asyncio.ensure_future(one(i, *item)) for i, item in enumerate(plan)]
        try:
            await asyncio.gather(*tasks_)
        except BaseException:
            for t in tasks_:
                t.cancel()
            await asyncio.gather(*tasks_, return_exceptions=True)
            raise
        finally:
            job.runs.extend(r for r in results if r is not None)
    return job
