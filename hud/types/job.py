"""The records of a job: one row per finished rollout, the trace record, the job's summary.

These are the shapes `hud.eval.run_job` emits in its events and writes to a job record
(`hud.eval.records`), and that ``hud eval --json``, ``hud jobs`` and the platform read back.

**Errors and the reward figures (one definition, used everywhere).** A rollout is *errored*
(``is_error``) when it does not count toward the reward: it has no grade, its grade is an error
(``isError``), or its trace errored without producing a grade frame. A rollout whose trace
errored mid-run but which was still graded is *not* errored; it is counted in
``failed_mid_run``. Over the rollouts of a job:

- ``mean_reward``: the mean reward of all rollouts, errored ones counted as 0 (the official
  ``hud eval`` "Mean reward"); 0.0 for no rollouts.
- ``mean_reward_excluding_errors``: the mean reward of the rollouts that are not errored
  (``Job.reward``; None when every rollout errored or there are none).
- ``reward_std``: the population standard deviation of the rewards counted in ``mean_reward``.
- ``success_rate``: the share of all rollouts whose reward (errors as 0) is above
  `SUCCESS_THRESHOLD`.
- ``error_count``: errored rollouts; ``failed_mid_run``: rollouts graded after a trace error.
- ``suspicious``: slugs of rollouts (not errored) rewarded for an empty answer.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from hud.types.trace import Step, Trace, parse_step

#: A rollout whose reward (errors as 0) is above this counts as a success.
SUCCESS_THRESHOLD = 0.7

JobStatus = Literal["running", "completed", "interrupted", "failed"]
#: How a job ended.
JobOutcome = Literal["completed", "interrupted", "failed"]


def is_empty_answer(answer: Any) -> bool:
    return answer is None or (isinstance(answer, str) and not answer.strip())


class RunRow(BaseModel):
    """One finished rollout: a line of a job record's ``runs.jsonl``."""

    model_config = ConfigDict(extra="allow")

    trace_id: str | None = None
    slug: str | None = None
    task_id: str | None = None
    args: dict[str, Any] | None = None
    group_index: int | None = None
    reward: float = 0.0
    status: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    is_error: bool = False
    answer: Any = None
    duration_s: float | None = None
    finished_at: str | None = None

    @property
    def effective_reward(self) -> float:
        """The reward with errors counted as 0."""
        return 0.0 if self.is_error else float(self.reward or 0.0)


class TraceHeader(BaseModel):
    """The first line of a trace file: who ran, with what outcome (``status`` None while the
    rollout is in flight)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["trace"] = "trace"
    trace_id: str | None = None
    job_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    slug: str | None = None
    task_id: str | None = None
    args: dict[str, Any] | None = None
    reward: float | None = None
    grade: dict[str, Any] | None = None
    status: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    is_error: bool | None = None
    content: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def row(self) -> RunRow:
        """The ``runs.jsonl`` row of a finished rollout."""
        return RunRow(
            trace_id=self.trace_id,
            slug=self.slug,
            task_id=self.task_id,
            args=self.args,
            group_index=self.group_index,
            reward=float(self.reward or 0.0),
            status=self.status,
            stop_reason=self.stop_reason,
            error=self.error,
            is_error=bool(self.is_error),
            answer=self.content,
            duration_s=self.duration_s,
            finished_at=self.finished_at,
        )


class TraceRecord(BaseModel):
    """A trace file: the header and the steps, readable back as a `Trace`."""

    header: TraceHeader
    steps: list[SerializeAsAny[Step]] = Field(default_factory=list)

    @classmethod
    def from_lines(cls, lines: Iterable[dict[str, Any]]) -> TraceRecord:
        """From the parsed lines of a trace file (``{"type": "trace"}`` then steps)."""
        rows = list(lines)
        if not rows or rows[0].get("type") != "trace":
            raise ValueError("a trace record starts with a {'type': 'trace'} header line")
        steps = [
            parse_step({k: v for k, v in row.items() if k != "type"})
            for row in rows[1:]
            if row.get("type") == "step"
        ]
        return cls(header=TraceHeader.model_validate(rows[0]), steps=steps)

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines of the file (steps in JSON mode, None fields dropped)."""
        out = [self.header.model_dump(mode="json")]
        out.extend(
            {"type": "step", **step.model_dump(mode="json", exclude_none=True)}
            for step in self.steps
        )
        return out

    def to_trace(self) -> Trace:
        """The recorded rollout as a `Trace` (steps of their own classes)."""
        header = self.header
        status = header.status if header.status in ("completed", "error", "cancelled") else None
        trace = Trace(
            trace_id=header.trace_id,
            status=status,  # type: ignore[arg-type]
            stop_reason=header.stop_reason,  # type: ignore[arg-type]
            content=header.content,
            extra=dict(header.extra),
        )
        trace.steps.extend(self.steps)
        return trace


class JobSummary(BaseModel):
    """The figures of a job (see the module docstring for their one definition)."""

    run_count: int = 0
    mean_reward: float = 0.0
    reward_std: float = 0.0
    mean_reward_excluding_errors: float | None = None
    success_rate: float = 0.0
    error_count: int = 0
    failed_mid_run: int = 0
    suspicious: list[str] = Field(default_factory=list)
    elapsed_seconds: float = 0.0
    rollouts_per_second: float = 0.0

    @classmethod
    def of(
        cls,
        rows: Iterable[RunRow | dict[str, Any]],
        *,
        elapsed: float = 0.0,
        new_runs: int | None = None,
    ) -> JobSummary:
        """Figures over ``rows``; ``new_runs`` (default: all) are the rollouts this invocation
        ran in ``elapsed`` seconds (a resumed job counts only its new ones in the rate)."""
        runs = [r if isinstance(r, RunRow) else RunRow.model_validate(r) for r in rows]
        rewards = [r.effective_reward for r in runs]
        good = [float(r.reward or 0.0) for r in runs if not r.is_error]
        count = len(runs)
        ran = count if new_runs is None else new_runs
        return cls(
            run_count=count,
            mean_reward=statistics.fmean(rewards) if rewards else 0.0,
            reward_std=statistics.pstdev(rewards) if rewards else 0.0,
            mean_reward_excluding_errors=statistics.fmean(good) if good else None,
            success_rate=(
                sum(1 for x in rewards if x > SUCCESS_THRESHOLD) / count if count else 0.0
            ),
            error_count=sum(1 for r in runs if r.is_error),
            failed_mid_run=sum(1 for r in runs if not r.is_error and r.status == "error"),
            suspicious=sorted(
                {
                    str(r.slug)
                    for r in runs
                    if not r.is_error and is_empty_answer(r.answer) and float(r.reward or 0.0)
                }
            ),
            elapsed_seconds=elapsed,
            rollouts_per_second=(ran / elapsed) if elapsed > 0 else 0.0,
        )

    @property
    def all_errored(self) -> bool:
        """Every rollout errored (and there was at least one)."""
        return self.run_count > 0 and self.error_count == self.run_count
