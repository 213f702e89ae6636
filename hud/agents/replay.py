"""`ReplayAgent`: play a recorded rollout back against the task, to re-check its grade.

The recorded agent turns (and later user turns) are recorded again (``extra={"replayed":
True}``), recorded tool calls are re-executed where the run offers a client for them, and the
recorded final answer is submitted. A grading change can so be checked against an old rollout
without a model.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hud.agents.base import Agent, AgentConfig
from hud.protocol.errors import HudError
from hud.types.trace import AgentStep, MCPToolCall, MCPToolResult, Step, ToolStep

if TYPE_CHECKING:
    from hud.eval.run import Run

SHELL_TOOLS = {"bash", "shell", "run_shell_command", "execute_command", "terminal"}
_STOP_REASONS = {"done", "max_steps", "length", "timeout", "malformed_tool_call"}


class ReplayError(HudError, LookupError, ValueError):
    """The recording cannot be found, read, or does not fit the task."""


def load_recording(
    trace: str | Path | dict[str, Any],
    *,
    jobs_dir: Path | None = None,
    local_dir: Path | None = None,
) -> dict[str, Any]:
    """A recorded rollout as `load_trace_file` returns it, from an id, id prefix, path or an
    already loaded dict. Span files are looked up in ``local_dir`` (default
    ``HUD_TELEMETRY_LOCAL_DIR``)."""
    from hud.eval.records import DEFAULT_JOBS_DIR, find_trace, load_trace_file

    if isinstance(trace, dict):
        return trace
    if local_dir is None:
        from hud.telemetry import local_dir as configured

        local_dir = configured()
    try:
        path = find_trace(str(trace), jobs_dir or DEFAULT_JOBS_DIR, local_dir=local_dir)
        return load_trace_file(path)
    except (LookupError, ValueError, OSError) as exc:
        raise ReplayError(f"cannot replay {str(trace)!r}: {exc}") from exc


def recorded_answer(data: dict[str, Any]) -> Any:
    """The answer the recording submitted: its ``content``, else the evaluate step's answer,
    else the last agent text."""
    if data.get("content") is not None:
        return data["content"]
    steps = data.get("steps") or []
    for step in reversed(steps):
        call = step.get("task_call") or {}
        if step.get("source") == "task" and call.get("phase") == "evaluate":
            args = call.get("arguments") or {}
            if "answer" in args:
                return args["answer"]
    for step in reversed(steps):
        if step.get("source") == "agent" and step.get("content") is not None:
            return step["content"]
    return None


class ReplayAgent(Agent):
    """Replays a recorded rollout (``trace``: id, id prefix, trace file or span ``.jsonl``).

    ``execute_tools=False`` never re-runs tools (every tool step keeps its original result).
    """

    name = "replay"

    def __init__(
        self,
        trace: str | Path | dict[str, Any],
        *,
        jobs_dir: Path | None = None,
        local_dir: Path | None = None,
        execute_tools: bool = True,
        check_task: bool = True,
        config: AgentConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        self.recording = load_recording(trace, jobs_dir=jobs_dir, local_dir=local_dir)
        self.execute_tools = execute_tools
        self.check_task = check_task

    @property
    def answer(self) -> Any:
        return recorded_answer(self.recording)

    async def __call__(self, run: Run) -> None:
        data = self.recording
        recorded_task = data.get("task_id")
        if self.check_task and recorded_task and recorded_task != run.task_id:
            raise ReplayError(
                f"trace {data.get('trace_id')} is a rollout of task {recorded_task!r}, "
                f"not {run.task_id!r}"
            )
        seen_agent = False
        for step in data.get("steps") or []:
            source = step.get("source")
            if source == "agent":
                seen_agent = True
                run.record(_agent_step(step))
            elif source == "tool":
                run.record(await self._tool_step(run, step))
            elif source == "user" and seen_agent:  # mid-rollout user turns (auto-respond)
                messages = step.get("messages") or []
                run.record(Step(source="user", messages=messages, extra={"replayed": True}))
        stop = data.get("stop_reason")
        if stop in _STOP_REASONS:
            run.trace.stop_reason = stop
        run.trace.content = recorded_answer(data)

    async def _tool_step(self, run: Run, step: dict[str, Any]) -> ToolStep:
        call = MCPToolCall.model_validate(step.get("call") or {"name": "?"})
        original = step.get("result")
        old = MCPToolResult.model_validate(original) if isinstance(original, dict) else None
        extra = dict(step.get("extra") or {})
        if not self.execute_tools:
            reason = "tool execution disabled"
        else:
            try:
                result, reason = await execute_call(run, call, extra.get("capability"))
            except Exception as exc:
                detail = f"tool error: {exc}"
                return ToolStep(
                    call=call,
                    result=MCPToolResult(content=[{"type": "text", "text": detail}], isError=True),
                    error=detail,
                    extra={**extra, "replayed": True, "original_result": original},
                )
            if result is not None:
                changed = old is None or (old.text, old.isError) != (result.text, result.isError)
                return ToolStep(
                    call=call,
                    result=result,
                    error=step.get("error") if not changed else None,
                    extra={**extra, "replayed": True, "changed": changed},
                )
        return ToolStep(
            call=call,
            result=old,
            error=step.get("error"),
            extra={**extra, "replayed": False, "reason": reason},
        )


def _agent_step(step: dict[str, Any]) -> AgentStep:
    skip = {"step_id", "started_at", "ended_at", "source"}
    data = {k: v for k, v in step.items() if k in AgentStep.model_fields and k not in skip}
    data["extra"] = {**(data.get("extra") or {}), "replayed": True}
    return AgentStep.model_validate(data)


# -- re-executing tool calls -----------------------------------------------------------------
async def execute_call(
    run: Run, call: MCPToolCall, capability: str | None = None
) -> tuple[MCPToolResult | None, str]:
    """Run ``call`` through a capability client of ``run``: ``(result, "")``, or
    ``(None, reason)`` when no client can take it."""
    try:
        client = run.client
    except RuntimeError:
        return None, "run has no client"
    bindings = list(getattr(client, "bindings", None) or [])
    if not bindings:
        return None, "environment publishes no capabilities"
    plan = _plan(call, bindings, capability)
    if plan is None:
        return None, f"no capability for tool {call.name!r}"
    binding, method, args = plan
    try:
        opened = await client.open(binding.name)
    except Exception as exc:
        return None, f"cannot open capability {binding.name!r}: {exc}"
    fn = getattr(opened, method, None)
    if fn is None:
        return None, f"capability {binding.name!r} client has no {method}()"
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return to_tool_result(result, args[0] if method == "run" else None), ""


def _plan(
    call: MCPToolCall, bindings: list[Any], capability: str | None
) -> tuple[Any, str, tuple[Any, ...]] | None:
    from hud.capabilities import family

    by_name = {b.name: b for b in bindings}
    command = call.arguments.get("command", call.arguments.get("cmd"))
    if capability and capability in by_name:
        binding = by_name[capability]
        if family(binding.protocol) == "ssh" and isinstance(command, str):
            return binding, "run", (command,)
        return binding, "call_tool", (call.name, call.arguments)
    if "__" in call.name:
        prefix, _, tool = call.name.partition("__")
        if prefix in by_name:
            return by_name[prefix], "call_tool", (tool, call.arguments)
    if call.name in SHELL_TOOLS and isinstance(command, str):
        ssh = [b for b in bindings if family(b.protocol) == "ssh"]
        if ssh:
            return ssh[0], "run", (command,)
    mcp = [b for b in bindings if family(b.protocol) == "mcp"]
    if len(mcp) == 1:
        return mcp[0], "call_tool", (call.name, call.arguments)
    return None


def to_tool_result(value: Any, command: str | None = None) -> MCPToolResult:
    """Normalize what a capability client returned into an `MCPToolResult`."""
    if isinstance(value, MCPToolResult):
        return value
    if isinstance(value, dict) and ("content" in value or "isError" in value):
        return MCPToolResult.model_validate(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(value, "content"):
        return MCPToolResult.model_validate(dump(mode="json", exclude_none=True))
    code = _first(value, "exit_code", "returncode", "exit_status")
    if code is not None or hasattr(value, "stdout"):
        stdout = _text(_first(value, "stdout"))
        stderr = _text(_first(value, "stderr"))
        text = f"$ {command}\n{stdout}" if command is not None else stdout
        if stderr:
            text += f"\nstderr:\n{stderr}"
        text += f"\n(exit {code})"
        return MCPToolResult(
            content=[{"type": "text", "text": text}], isError=bool(code not in (0, None))
        )
    if isinstance(value, str):
        return MCPToolResult(content=[{"type": "text", "text": value}])
    return MCPToolResult(content=[{"type": "text", "text": json.dumps(value, default=str)}])


def _first(value: Any, *names: str) -> Any:
    for name in names:
        if isinstance(value, dict) and name in value:
            return value[name]
        if hasattr(value, name):
            return getattr(value, name)
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value).rstrip("\n")
