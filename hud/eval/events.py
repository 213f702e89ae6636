"""What `run_job` tells its subscriber (``on_event``), in order.

- `JobStarted` once, before anything runs: the job's id and name, how many rollouts this call
  runs (``total``) and how many a resumed job had already finished (``previous``).
- `RolloutStarted` as each rollout begins (before its environment is provisioned).
- `StepRecorded` for every step a rollout records (the task's setup, the prompt, agent turns,
  tool calls, system notes, the grade), as it is recorded.
- `RolloutFinished` as each rollout ends, with its `RunRow` (the job record's ``runs.jsonl``
  line) and its `Trace`. When the job has a record, both are on disk before the event.
- `JobFinished` once at the end, whatever happened: ``status`` (``completed``,
  ``interrupted`` or ``failed``) and the `JobSummary` over every rollout of the job (a resumed
  job's earlier ones included).

Rollouts cut off by a stop or a cancellation get no `RolloutFinished`: they are not finished,
and a resumed job runs them again.

``on_event`` is called in the event loop's thread, synchronously: it must not block (queue the
event when reporting it takes I/O). An exception it raises is logged and does not stop the job.
Every event is a pydantic model with a ``type`` tag, so ``JobEvent`` validates any of them from
JSON: ``TypeAdapter(JobEvent).validate_python(data)``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from hud.types.job import JobOutcome, JobSummary, RunRow
from hud.types.trace import Step, Trace, parse_step


class _Event(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    job_id: str


class JobStarted(_Event):
    type: Literal["job_started"] = "job_started"
    name: str
    #: Rollouts this call runs.
    total: int
    #: Rollouts a resumed job had already finished (0 for a new job).
    previous: int = 0
    group: int = 1
    #: The job record's directory, when the job is recorded.
    record: str | None = None


class RolloutStarted(_Event):
    type: Literal["rollout_started"] = "rollout_started"
    trace_id: str
    slug: str
    task_id: str
    args: dict[str, Any] = Field(default_factory=dict)
    group_index: int = 0
    #: The rollouts of one row in one job share it (hex).
    group_id: str | None = None


class StepRecorded(_Event):
    type: Literal["step"] = "step"
    trace_id: str
    step: SerializeAsAny[Step]

    @field_validator("step", mode="before")
    @classmethod
    def _typed_step(cls, value: Any) -> Any:
        return parse_step(value) if isinstance(value, dict) else value


class RolloutFinished(_Event):
    type: Literal["rollout_finished"] = "rollout_finished"
    row: RunRow
    trace: Trace


class JobFinished(_Event):
    type: Literal["job_finished"] = "job_finished"
    status: JobOutcome
    summary: JobSummary
    #: Why a ``failed`` job failed (one line).
    error: str | None = None


JobEvent = Annotated[
    JobStarted | RolloutStarted | StepRecorded | RolloutFinished | JobFinished,
    Field(discriminator="type"),
]

__all__ = [
    "JobEvent",
    "JobFinished",
    "JobStarted",
    "RolloutFinished",
    "RolloutStarted",
    "StepRecorded",
]
