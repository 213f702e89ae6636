"""`Run`: one started task on a client, from `tasks.start` to `tasks.grade`; and its `Grade`."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from hud.types.trace import Step, TaskCall, Trace, now_iso, system_step

if TYPE_CHECKING:
    from hud.clients import HudClient
    from hud.eval.task import Task


class Grade(BaseModel):
    """The normalized grade frame of a run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reward: float = 0.0
    done: bool = True
    content: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    is_error: bool = False
    raw: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Grade:
        content = frame.get("content")
        info = frame.get("info")
        return cls(
            reward=float(frame.get("score", 0.0)),
            done=bool(frame.get("done", True)),
            content=content if isinstance(content, str) else None,
            info=info if isinstance(info, dict) else {},
            is_error=bool(frame.get("isError", False)),
            raw=frame,
        )

    @property
    def subscores(self) -> list[dict[str, Any]] | None:
        subs = self.raw.get("subscores")
        return subs if isinstance(subs, list) else None

    @property
    def evaluation(self) -> Any:
        """The grade as an `EvaluationResult`."""
        from hud.types.scores import EvaluationResult, SubScore

        subscores = self.subscores
        return EvaluationResult(
            reward=self.reward,
            done=self.done,
            content=self.content,
            info=self.info,
            isError=self.is_error,
            subscores=[SubScore.model_validate(s) for s in subscores] if subscores else None,
        )


def prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    """Normalize a prompt into chat turns: assistant kept, every other role becomes user."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    if isinstance(prompt, list):
        turns = []
        for item in prompt:
            if not isinstance(item, dict):
                item = {"role": "user", "content": str(item)}
            role = "assistant" if item.get("role") == "assistant" else "user"
            content = item.get("content")
            if isinstance(content, str):
                blocks = [{"type": "text", "text": content}]
            elif isinstance(content, dict):
                blocks = [content]
            elif isinstance(content, list):
                blocks = [
                    b if isinstance(b, dict) else {"type": "text", "text": str(b)} for b in content
                ]
            else:
                blocks = [{"type": "text", "text": json.dumps(content)}]
            turns.append({"role": role, "content": blocks})
        return turns
    return [{"role": "user", "content": [{"type": "text", "text": json.dumps(prompt)}]}]


def messages_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for turn in messages:
        for block in turn.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
    return "\n\n".join(parts)


class Run:
    """A task started on a connected client (async context manager).

    Enter sends ``tasks.start``; the body (an agent) leaves its answer in ``trace.content``;
    exit sends ``tasks.grade`` (or ``tasks.cancel`` when cancelled).
    """

    def __init__(
        self,
        client: HudClient | None,
        task_id: str,
        args: dict[str, Any] | None = None,
        *,
        best_effort_grade: bool = False,
        trace: Trace | None = None,
        task: Task | None = None,
    ) -> None:
        self._client = client
        self.task_id = task_id
        self.args = dict(args or {})
        self.best_effort_grade = best_effort_grade
        self.trace = trace or Trace()
        self.task = task
        self.prompt: Any = None
        self.start_frame: dict[str, Any] = {}
        self.bindings: dict[str, dict[str, Any]] = {}
        self.grade: Grade | None = None
        self.job_id: str | None = None
        self.group_id: str | None = None
        self.slug: str | None = task.slug if task is not None else None
        self.runtime: str | None = client.url if client is not None else None
        self.agent_config: dict[str, Any] = dict(task.agent_config or {}) if task else {}
        self.started_at: float | None = None
        self.ended_at: float | None = None

    # -- members ---------------------------------------------------------------------
    @property
    def client(self) -> HudClient:
        if self._client is None:
            raise RuntimeError("this run has no client (it failed before connecting)")
        return self._client

    @property
    def trace_id(self) -> str | None:
        return self.trace.trace_id

    @property
    def reward(self) -> float:
        return self.grade.reward if self.grade is not None else 0.0

    @property
    def evaluation(self) -> Any:
        return self.grade.evaluation if self.grade is not None else None

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        return prompt_messages(self.prompt)

    @property
    def prompt_text(self) -> str:
        return messages_text(self.prompt_messages)

    @property
    def status(self) -> str | None:
        return self.trace.status

    @property
    def error(self) -> str | None:
        return self.trace.error if self.trace.status == "error" else None

    def record(self, step: Step) -> Step:
        return self.trace.record(step)

    @classmethod
    def failed(cls, error: str, *, task: Task | None = None, trace: Trace | None = None) -> Run:
        """A run that never started: status ``error`` with ``error`` as a system step."""
        run = cls(None, task.id if task else "", task.args if task else {}, task=task, trace=trace)
        run.trace.status = "error"
        run.trace.record(system_step(error))
        return run

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> Run:
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        config = self.task.runtime_config if self.task is not None else None
        limits = config.limits.workspace_limits() if config and config.limits else None
        if limits:
            frame = await self.client.start(self.task_id, self.args, limits=limits)
        else:
            frame = await self.client.start(self.task_id, self.args)
        bindings = frame.get("bindings")
        if bindings is not None:
            if not isinstance(bindings, dict) or not all(
                isinstance(v, dict) for v in bindings.values()
            ):
                raise TypeError("start frame 'bindings' must map capability names to objects")
            self.bindings = bindings
        self.start_frame = frame
        self.prompt = frame.get("prompt")
        self.trace.record(
            Step(
                source="task",
                task_call=TaskCall(
                    phase="setup", name=self.task_id, arguments=self.args, result=frame
                ),
            )
        )
        if self.prompt is not None:
            self.trace.record(Step(source="user", messages=self.prompt_messages))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.ended_at = asyncio.get_running_loop().time()
        if exc_type is not None and issubclass(
            exc_type, (asyncio.CancelledError, KeyboardInterrupt)
        ):
            try:
                await asyncio.wait_for(self.client.cancel(), 2.0)
            except BaseException:
                pass
            self.trace.status = "error" if self.trace.stop_reason == "timeout" else "cancelled"
            return False
        best_effort = self.best_effort_grade
        if exc is not None:
            self.trace.status = "error"
            self.trace.record(system_step(f"[agent loop] {type(exc).__name__}: {exc}"))
            best_effort = True
        await self.submit(best_effort=best_effort)
        return False

    async def submit(self, *, best_effort: bool = False) -> Grade:
        """Send ``tasks.grade`` with ``trace.content``; record the result."""
        answer = self.trace.content
        started = now_iso()
        try:
            frame = await self.client.grade(answer)
        except Exception as exc:
            if not best_effort:
                raise
            detail = f"{type(exc).__name__}: {exc}"
            self.grade = Grade(
                is_error=True,
                content=detail,
                raw={"score": 0.0, "answer": answer, "content": detail, "isError": True},
            )
            self.trace.record(system_step(f"[grading] {detail}"))
            return self.grade
        self.grade = Grade.from_frame(frame)
        self.trace.record(
            Step(
                source="task",
                started_at=started,
                task_call=TaskCall(
                    phase="evaluate", name=self.task_id, arguments={"answer": answer}, result=frame
                ),
            )
        )
        if self.trace.status is None:
            self.trace.status = "completed"
        return self.grade

    def __repr__(self) -> str:
        return f"<Run {self.slug or self.task_id} status={self.status} reward={self.reward}>"
