"""`Trace` and its steps: what happened during one rollout, in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

Source = Literal["user", "agent", "tool", "task", "subagent", "system"]
Status = Literal["completed", "error", "cancelled"]
StopReason = Literal["done", "max_steps", "length", "timeout", "malformed_tool_call"]


def now_iso() -> str:
    """Current time as ISO-8601 UTC with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class TaskCall(BaseModel):
    phase: Literal["setup", "evaluate"]
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None


class MCPToolCall(BaseModel):
    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    annotation: str | None = None
    provider_name: str | None = None


class MCPToolResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    content: list[dict[str, Any]] = Field(default_factory=list)
    structuredContent: dict[str, Any] | None = None
    isError: bool = False

    @property
    def text(self) -> str:
        return "\n".join(c.get("text", "") for c in self.content if c.get("type") == "text")


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    llm_call_count: int | None = None


class Step(BaseModel):
    """One recorded event. ``source`` says who produced it."""

    model_config = ConfigDict(extra="forbid")

    step_id: int = 0
    source: Source = "system"
    messages: list[dict[str, Any]] = Field(default_factory=list)
    task_call: TaskCall | None = None
    error: str | None = None
    started_at: str = Field(default_factory=now_iso)
    ended_at: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class AgentStep(Step):
    source: Source = "agent"
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[MCPToolCall] = Field(default_factory=list)
    done: bool = False
    finish_reason: str | None = None
    refusal: str | None = None
    citations: list[Any] | None = None
    raw: Any = None
    model: str | None = None
    usage: Usage | None = None
    sample: dict[str, Any] | None = None


class ToolStep(Step):
    source: Source = "tool"
    call: MCPToolCall
    result: MCPToolResult | None = None


class SubagentStep(Step):
    source: Source = "subagent"
    subagent: Trace


def text_messages(role: str, text: str) -> list[dict[str, Any]]:
    return [{"role": role, "content": [{"type": "text", "text": text}]}]


def system_step(text: str, *, error: bool = True) -> Step:
    """A system note; ``error`` marks it as the rollout's error."""
    return Step(
        source="system", messages=text_messages("system", text), error=text if error else None
    )


StepListener = Callable[["Trace", Step], None]


class Trace(BaseModel):
    """The steps of one rollout plus its outcome."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    trace_id: str | None = None
    steps: list[SerializeAsAny[Step]] = Field(default_factory=list)
    status: Status | None = None
    stop_reason: StopReason | None = None
    content: Any = None
    extra: dict[str, Any] = Field(default_factory=dict)

    _listeners: list[StepListener] = []

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        """Steps given as dicts (read back from JSON) become steps of their own classes."""
        if isinstance(value, list):
            return [parse_step(v) if isinstance(v, dict) else v for v in value]
        return value

    def model_post_init(self, context: Any) -> None:
        object.__setattr__(self, "_listeners", [])

    def listen(self, listener: StepListener) -> None:
        self._listeners.append(listener)

    def record(self, step: Step) -> Step:
        """Append ``step`` (numbered from 1, ``ended_at`` stamped) and notify listeners."""
        step.step_id = len(self.steps) + 1
        if step.ended_at is None:
            step.ended_at = now_iso()
        self.steps.append(step)
        for listener in self._listeners:
            listener(self, step)
        return step

    @property
    def error(self) -> str | None:
        for step in reversed(self.steps):
            if step.error:
                return step.error
        return None

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    @property
    def is_truncated(self) -> bool:
        return self.stop_reason in ("max_steps", "length", "timeout")

    def final(self, get: Callable[[Step], Any]) -> Any:
        """The last non-None ``get(step)``."""
        for step in reversed(self.steps):
            value = get(step)
            if value is not None:
                return value
        return None

    def collect(self, get: Callable[[Step], Any]) -> list[Any]:
        return [v for v in (get(s) for s in self.steps) if v is not None]


SubagentStep.model_rebuild()

_STEP_TYPES: dict[str, type[Step]] = {
    "agent": AgentStep,
    "tool": ToolStep,
    "subagent": SubagentStep,
}


def parse_step(data: dict[str, Any]) -> Step:
    """Rebuild a step of the right class from its JSON dump."""
    cls = _STEP_TYPES.get(str(data.get("source")), Step)
    return cls.model_validate(data)


def parse_trace(data: dict[str, Any]) -> Trace:
    steps = [parse_step(s) for s in data.get("steps") or []]
    return Trace.model_validate({**data, "steps": []}).model_copy(update={"steps": steps})
