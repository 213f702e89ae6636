"""`Job`: a batch of runs (one eval), with its summary figures."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from hud.eval.run import Run
from hud.types.job import JobSummary, RunRow

RunListener = Callable[[Run], Any]


class Job:
    """Runs of one evaluation, in expansion order (task-major, ``group`` each)."""

    def __init__(
        self,
        id: str | None = None,
        name: str = "job",
        runs: list[Run] | None = None,
        group: int = 1,
        taskset_id: str | None = None,
    ) -> None:
        self.id = id or uuid.uuid4().hex
        self.name = name
        self.runs: list[Run] = list(runs or [])
        self.group = group
        self.taskset_id = taskset_id
        self._listeners: list[RunListener] = []
        self._start_listeners: list[Callable[[Any, Any], Any]] = []

    @classmethod
    async def start(cls, name: str, *, group: int = 1, taskset_id: str | None = None) -> Job:
        return cls(name=name, group=group, taskset_id=taskset_id)

    def __repr__(self) -> str:
        return f"<Job {self.name!r} runs={len(self.runs)} reward={self.reward:.3f}>"

    def on_run(self, listener: RunListener) -> None:
        """Call ``listener(run)`` as each run finishes (job records, progress)."""
        self._listeners.append(listener)

    def on_start(self, listener: Callable[[Any, Any], Any]) -> None:
        """Call ``listener(task, trace)`` as each rollout begins (before provisioning)."""
        self._start_listeners.append(listener)

    def started(self, task: Any, trace: Any) -> None:
        for listener in self._start_listeners:
            listener(task, trace)

    def finished(self, run: Run) -> None:
        for listener in self._listeners:
            listener(run)

    # -- figures ---------------------------------------------------------------------
    @staticmethod
    def counts(run: Run) -> bool:
        """Whether a run counts toward `reward` (not a grading or rollout error): the one
        definition of an errored rollout (``is_error``, `hud.types.job`)."""
        grade = run.grade
        if grade is None or grade.is_error:
            return False
        return not run.trace.is_error or bool(grade.raw)

    @property
    def errors(self) -> list[Run]:
        return [r for r in self.runs if not self.counts(r)]

    @property
    def summary(self) -> JobSummary:
        """The job's figures (`JobSummary`, without timing)."""
        return JobSummary.of(
            RunRow(
                slug=r.slug,
                reward=r.reward,
                status=r.status,
                is_error=not self.counts(r),
                answer=r.trace.content,
            )
            for r in self.runs
        )

    @property
    def reward(self) -> float:
        """Mean reward over runs that did not error (0.0 if none):
        ``summary.mean_reward_excluding_errors``."""
        value = self.summary.mean_reward_excluding_errors
        return value if value is not None else 0.0

    @property
    def mean_reward(self) -> float:
        """Mean reward over all runs, errors counted as 0: ``summary.mean_reward``."""
        return self.summary.mean_reward

    @property
    def results(self) -> dict[str, list[Run]]:
        out: dict[str, list[Run]] = {}
        for run in self.runs:
            out.setdefault(run.slug or run.task_id, []).append(run)
        return out
