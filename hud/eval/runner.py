"""`run_job`: the one job runner, used by ``hud eval``, `Taskset.run` and platform workers.

A job runs rows (a `Taskset` or a list of `Task`) with one agent: every row ``group`` times
(task-major), at most ``max_concurrent`` rollouts at once, each on the substrate its placement
gives it. It can be recorded as it runs (`hud.eval.records.JobRecord`: a finished rollout is
on disk before the next event), resumed (only the rollouts a record lacks run again), stopped
(an `asyncio.Event`: no new rollout starts, the ones in flight are cancelled and left out, the
record says ``interrupted``), and watched (``on_event``, `hud.eval.events`).

**Placement "auto"** (the default, and ``hud eval``'s ``--runtime local``), per row:

1. rows of an environment that places its own rows (Harbor tasks): that provider;
2. rows whose ``runtime_config`` asks for an image or a compose project: a container
   (`DockerRuntime`, one shared by the job);
3. rows of an environment source on disk (rows loaded from a file or directory, or any row when
   ``env_target`` is given): a fresh process per rollout (`SubprocessRuntime`, one per
   environment name, kept warm);
4. rows minted from a live `Environment` in this process: that environment, served in-process
   (`LocalRuntime`; rollouts on one environment are serialized);
5. anything else: `ValueError` (pass a runtime).

Other placements: ``"docker"`` (a container per rollout; built from the source's
``Dockerfile.hud`` when rows name no image), ``"tcp://host:port"`` (a running server), or any
provider (``task -> async context manager yielding a Runtime``), entered around the job when it
is an async context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from hud.eval.events import (
    JobFinished,
    JobStarted,
    RolloutFinished,
    RolloutStarted,
    StepRecorded,
)
from hud.eval.job import Job
from hud.eval.records import DEFAULT_JOBS_DIR, JobRecord, run_row
from hud.eval.rollout import rollout, validate_timeouts
from hud.eval.run import Run
from hud.eval.task import Task
from hud.types.job import JobOutcome, JobSummary, RunRow
from hud.types.trace import Trace

if TYPE_CHECKING:
    from hud.eval.agent import AgentProtocol
    from hud.eval.runtime import Provider, Runtime

log = logging.getLogger("hud.eval")

EventHandler = Callable[[Any], Any]


# -- placement -------------------------------------------------------------------------------
def _needs_container(task: Task) -> bool:
    config = task.runtime_config
    return config is not None and config.needs_container


def docker_buildable(env_target: Path) -> bool:
    """Whether ``env_target`` (a file or directory) has a ``Dockerfile.hud``/``Dockerfile``."""
    base = env_target if env_target.is_dir() else env_target.parent
    return any((base / name).is_file() for name in ("Dockerfile.hud", "Dockerfile"))


def _source_target(task: Task) -> Path | None:
    if not task._source:
        return None
    from hud.eval.sources import env_target_for

    return env_target_for(Path(task._source))


class AutoPlacement:
    """The ``"auto"`` policy (module docstring) for a set of rows; an async context manager
    (enter it around the job: it closes the processes and containers it started)."""

    def __init__(self, tasks: Iterable[Task], *, env_target: Path | None = None) -> None:
        from hud.eval.runtimes.docker import DockerRuntime
        from hud.eval.runtimes.local import LocalRuntime
        from hud.eval.runtimes.subprocess import SubprocessRuntime

        self._targets: dict[str, Path] = {}
        self._own: dict[int, Provider] = {}
        self._live: dict[int, Provider] = {}
        containers = False
        for task in tasks:
            live = task.environment
            if getattr(live, "provider", None) is not None:
                self._own.setdefault(id(live), live.provider)
                continue
            target = env_target or _source_target(task)
            for row in (task, task.verifier):
                if row is None:
                    continue
                if _needs_container(row):
                    containers = True
                elif target is not None:
                    self._targets.setdefault(row.env, target)
                elif row.environment is not None:
                    self._live.setdefault(id(row.environment), LocalRuntime(row.environment))
                else:
                    raise ValueError(
                        f"no placement for task {row.slug}: pass runtime= (e.g. "
                        "SubprocessRuntime('env.py'), LocalRuntime(env) or "
                        "Runtime('tcp://host:port'))"
                    )
        self._processes = {
            name: SubprocessRuntime(target, env=name)
            for name, target in sorted(self._targets.items())
        }
        self._docker = DockerRuntime() if containers else None

    @property
    def providers(self) -> list[Provider]:
        """The providers this placement enters around a job."""
        out: list[Provider] = [*self._own.values(), *self._processes.values()]
        if self._docker is not None:
            out.append(self._docker)
        return out

    def __call__(self, task: Task) -> AbstractAsyncContextManager[Runtime]:
        live = task.environment
        provider = getattr(live, "provider", None)
        if provider is not None:
            return provider(task)
        if _needs_container(task):
            assert self._docker is not None
            return self._docker(task)
        process = self._processes.get(task.env)
        if process is not None:
            return process(task)
        if live is not None and id(live) in self._live:
            return self._live[id(live)](task)
        raise ValueError(f"no placement for task {task.slug}")

    async def __aenter__(self) -> AutoPlacement:
        async with contextlib.AsyncExitStack() as stack:
            for provider in self.providers:
                if _scoped(provider):
                    await stack.enter_async_context(provider)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def _scoped(provider: object) -> TypeGuard[AbstractAsyncContextManager[object]]:
    """A provider that is also entered around the whole job (it owns warm pools, containers)."""
    return hasattr(provider, "__aenter__")


def docker_placement(tasks: Iterable[Task], *, env_target: Path | None = None) -> Provider:
    """``"docker"``: a container per rollout; images are built from the environment source's
    ``Dockerfile.hud`` unless every row names its own image or compose project."""
    from hud.eval.runtimes.docker import DockerRuntime

    rows = list(tasks)
    target = env_target or next((t for t in map(_source_target, rows) if t is not None), None)
    if all(_needs_container(t) for t in rows) or target is None or not docker_buildable(target):
        for task in rows:
            if not _needs_container(task) and task.environment is None:
                where = f" beside {target}" if target is not None else ""
                raise ValueError(
                    f"task {task.slug}: DockerRuntime requires runtime_config.image or "
                    f"runtime_config.compose (or a Dockerfile.hud{where})"
                )
        return DockerRuntime()
    return DockerRuntime.from_dockerfile(target)


def resolve_placement(
    placement: str | Provider, tasks: Iterable[Task], *, env_target: Path | None = None
) -> Provider:
    """A provider for ``placement``: ``"auto"``/``"local"``, ``"docker"``, ``"tcp://..."`` or
    a provider (returned as is)."""
    if not isinstance(placement, str):
        return placement
    if placement in ("auto", "local"):
        return AutoPlacement(tasks, env_target=env_target)
    if placement == "docker":
        return docker_placement(tasks, env_target=env_target)
    if placement.startswith("tcp://"):
        from hud.eval.runtime import Runtime

        return Runtime(placement)
    raise ValueError(
        f"unknown placement {placement!r}: use 'auto', 'docker', 'tcp://host:port' or a provider"
    )


# -- the job ---------------------------------------------------------------------------------
def job_name(taskset_name: str, tasks: list[Task], group: int) -> str:
    """``<task id>`` for one task, else ``<taskset name> (<n> tasks)``; ``(<group> times)``."""
    name = tasks[0].id if len(tasks) == 1 else f"{taskset_name} ({len(tasks)} tasks)"
    return f"{name} ({group} times)" if group > 1 else name


@dataclass
class JobResult:
    """What `run_job` returns: the `Job` (runs of this call), every row of the job in
    expansion order (a resumed job's earlier rows included), the summary, the status."""

    job: Job
    rows: list[RunRow]
    summary: JobSummary
    status: JobOutcome
    #: Rows of rollouts this call ran.
    new_rows: list[RunRow] = field(default_factory=list)
    #: Rollouts this call set out to run.
    planned: int = 0
    record: JobRecord | None = None
    #: Failures to write a finished rollout to the record (the job went on).
    write_errors: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


def _as_taskset(tasks: Any) -> Any:
    from hud.eval.taskset import Taskset

    if isinstance(tasks, Taskset):
        return tasks
    if isinstance(tasks, Task):
        return Taskset(tasks.slug, [tasks])
    return Taskset("tasks", list(tasks))


def _open_record(
    record: JobRecord | str | Path | None,
    resume: JobRecord | str | None,
    *,
    job_id: str,
    name: str,
    config: dict[str, Any] | None,
) -> JobRecord | None:
    if resume is not None:
        if isinstance(resume, JobRecord):
            return resume
        base = Path(record) if isinstance(record, (str, Path)) else DEFAULT_JOBS_DIR
        return JobRecord.open(resume, base_dir=base)
    if record is None or isinstance(record, JobRecord):
        return record
    return JobRecord.create(job_id, name, dict(config or {}), base_dir=Path(record))


async def run_job(
    tasks: Any,
    agent: AgentProtocol,
    *,
    placement: str | Provider = "auto",
    group: int | None = None,
    max_concurrent: int | None = None,
    rollout_timeout: float | None = None,
    record: JobRecord | str | Path | None = None,
    resume: JobRecord | str | None = None,
    config: dict[str, Any] | None = None,
    job: Job | None = None,
    name: str | None = None,
    env_target: Path | None = None,
    on_event: EventHandler | None = None,
    stop: asyncio.Event | None = None,
    skip: Callable[[Task, int], bool] | None = None,
) -> JobResult:
    """Run ``tasks`` (a `Taskset`, `Task` rows or one `Task`) with ``agent``.

    - ``placement``: ``"auto"`` (module docstring), ``"docker"``, ``"tcp://host:port"`` or a
      provider; ``env_target``: where the rows' environment source lives (default: each row's
      own source file).
    - ``group``: rollouts per row (default ``job.group``, the resumed job's, or 1);
      ``max_concurrent``: rollouts in flight at once (default: all).
    - ``record``: a `JobRecord`, or a directory to create one in (``<dir>/<job id>/``, its
      ``config`` = ``config``); None: nothing written.
    - ``resume``: a `JobRecord` (or a job id in ``record``'s directory) to finish: rollouts
      its ``runs.jsonl`` holds are skipped, the rest run and are appended.
    - ``on_event``: called with each `hud.eval.events` event. ``stop``: set it to stop the job
      (status ``interrupted``; rollouts in flight are cancelled and not recorded).
    - ``skip(task, group_index)``: True leaves that rollout out.

    Raises `ValueError` before anything runs for bad arguments, contradictory timeouts or rows
    without a placement. Failures inside a rollout never raise: they are errored rows.
    """
    taskset = _as_taskset(tasks)
    rows_in = list(taskset)
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
    if group is not None and group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    resumed = resume if isinstance(resume, JobRecord) else None
    if group is None:
        saved = resumed.config.get("group") if resumed is not None else None
        group = job.group if job is not None else (int(saved) if saved else 1)
    for task in rows_in:
        validate_timeouts(task, agent, rollout_timeout)
    name = name or (job.name if job is not None else job_name(taskset.name, rows_in, group))
    job_id = job.id if job is not None else uuid.uuid4().hex
    provider = resolve_placement(placement, rows_in, env_target=env_target)
    rec = _open_record(record, resume, job_id=job_id, name=name, config=config)
    if rec is not None and job is None:
        job_id, name = rec.job_id, rec.name or name
    if job is None:
        job = Job(id=job_id, name=name, group=group, taskset_id=taskset.taskset_id)

    done = rec.done_indices() if resume is not None and rec is not None else {}
    previous = (
        [r for r in rec.rows() if r.status != "cancelled"]
        if resume is not None and rec is not None
        else []
    )
    order = {slug: i for i, slug in enumerate(taskset.slugs)}
    plan: list[tuple[Task, int, str]] = []
    for task in rows_in:
        group_id = uuid.uuid4().hex
        for index in range(group):
            if index in done.get(task.slug, ()) or (skip is not None and skip(task, index)):
                continue
            plan.append((task, index, group_id))

    runner = _Runner(job, agent, provider, rec, on_event, rollout_timeout)
    if rec is not None:
        rec.mark_running()
    runner.emit(
        JobStarted(
            job_id=job.id,
            name=job.name,
            total=len(plan),
            previous=len(previous),
            group=group,
            record=str(rec.root) if rec is not None else None,
        )
    )
    started = time.monotonic()
    status: JobOutcome = "completed"
    error: str | None = None
    try:
        await runner.run(plan, max_concurrent, stop)
        if runner.stopped:
            status = "interrupted"
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        new_rows = runner.rows
        rows = sorted(
            previous + new_rows,
            key=lambda r: (order.get(str(r.slug), 1 << 30), r.group_index or 0),
        )
        summary = JobSummary.of(rows, elapsed=time.monotonic() - started, new_runs=len(new_rows))
        if rec is not None:
            try:
                rec.finish(status, {**summary.model_dump(mode="json"), "status": status})
            except OSError as exc:
                runner.write_errors.append(f"job.json: {exc}")
        runner.emit(JobFinished(job_id=job.id, status=status, summary=summary, error=error))
        result = JobResult(
            job=job,
            rows=rows,
            summary=summary,
            status=status,
            new_rows=new_rows,
            planned=len(plan),
            record=rec,
            write_errors=list(runner.write_errors),
        )
    return result


class _Runner:
    """The rollouts of one `run_job` call."""

    def __init__(
        self,
        job: Job,
        agent: AgentProtocol,
        provider: Provider,
        record: JobRecord | None,
        on_event: EventHandler | None,
        rollout_timeout: float | None,
    ) -> None:
        self.job = job
        self.agent = agent
        self.provider = provider
        self.record = record
        self.on_event = on_event
        self.rollout_timeout = rollout_timeout
        self.rows: list[RunRow] = []
        self.write_errors: list[str] = []
        self.stopped = False

    def emit(self, event: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("on_event raised for a %s event", event.type)

    async def run(
        self, plan: list[tuple[Task, int, str]], max_concurrent: int | None, stop: Any
    ) -> None:
        sem = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        results: list[Run | None] = [None] * len(plan)

        async def one(i: int, task: Task, index: int, group_id: str) -> None:
            async with sem or contextlib.nullcontext():
                if self.stopped:
                    return
                results[i] = await self.one(task, index, group_id)

        scope = self.provider if _scoped(self.provider) else None
        async with contextlib.AsyncExitStack() as stack:
            if scope is not None:
                await stack.enter_async_context(scope)
            if stop is not None and stop.is_set():
                self.stopped = True
                return
            batch = asyncio.gather(*(one(i, *item) for i, item in enumerate(plan)))
            watcher = asyncio.ensure_future(stop.wait()) if stop is not None else None
            try:
                if watcher is None:
                    await batch
                else:
                    await asyncio.wait({batch, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if not batch.done():
                        self.stopped = True
                        batch.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await batch
                    else:
                        batch.result()
            except BaseException:
                batch.cancel()
                with contextlib.suppress(BaseException):
                    await batch
                raise
            finally:
                if watcher is not None:
                    watcher.cancel()
                self.job.runs.extend(r for r in results if r is not None)

    async def one(self, task: Task, index: int, group_id: str) -> Run | None:
        job = self.job
        trace = Trace(trace_id=uuid.uuid4().hex)
        trace.extra["group_index"] = index
        trace_id = trace.trace_id or ""
        began = time.monotonic()
        self.emit(
            RolloutStarted(
                job_id=job.id,
                trace_id=trace_id,
                slug=task.slug,
                task_id=task.id,
                args=dict(task.args),
                group_index=index,
                group_id=group_id,
            )
        )
        job.started(task, trace)
        if self.record is not None:
            self.record.start_trace(task, trace)
        if self.on_event is not None:
            trace.listen(
                lambda t, step: self.emit(
                    StepRecorded(job_id=job.id, trace_id=t.trace_id or "", step=step)
                )
            )
        hosted = getattr(self.provider, "run_rollout", None)  # whole rollouts run elsewhere
        if callable(hosted):
            run = await hosted(
                task,
                self.agent,
                job_id=job.id,
                group_id=group_id,
                trace=trace,
                rollout_timeout=self.rollout_timeout,
            )
            run.job_id, run.group_id, run.slug = job.id, group_id, task.slug
        else:
            run = await rollout(
                task,
                self.agent,
                runtime=self.provider,
                job_id=job.id,
                group_id=group_id,
                trace=trace,
                rollout_timeout=self.rollout_timeout,
            )
        if self.stopped:  # torn down by a stop: not finished, runs again on resume
            return None
        row: RunRow | None = None
        if self.record is not None:
            try:
                row = self.record.add_run(run)
            except OSError as exc:  # a full disk must not abort the whole job
                self.write_errors.append(f"{trace_id}: {exc}")
        if row is None:
            row = run_row(run, duration=round(time.monotonic() - began, 3))
        self.rows.append(row)
        job.finished(run)
        self.emit(RolloutFinished(job_id=job.id, row=row, trace=run.trace))
        return run


async def run_task(task: Task, agent: AgentProtocol, **kwargs: Any) -> Job:
    """``Task.run``: one task as a job; returns the `Job` (the ``run_task`` hook)."""
    placement = kwargs.pop("runtime", None) or "auto"
    return (await run_job(task, agent, placement=placement, **kwargs)).job
