"""`hud trace get TRACE_ID` (and today's `hud trace TRACE_ID`): render one recorded rollout
(job records or telemetry span files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hud.cli.jobs_cmd import JOBS_DIR_HELP, DefaultCommandGroup

MAX_RESULT_LINES = 60
MAX_ARG_CHARS = 200


class _TraceGroup(DefaultCommandGroup):
    item_command = "get"
    value_options = frozenset({"--local-dir", "--jobs-dir", "--dir"})


trace_app = typer.Typer(cls=_TraceGroup, help="Inspect a rollout trace.", no_args_is_help=True)


@trace_app.command("get")
def get_command(
    trace_id: str = typer.Argument(..., help="Trace id (unique prefix ok) or a trace file path."),
    as_json: bool = typer.Option(False, "--json", help="Print the events as JSON."),
    local_dir: Path = typer.Option(
        None,
        "--local-dir",
        help="Span directory to read (default: HUD_TELEMETRY_LOCAL_DIR).",
    ),
    jobs_dir: Path = typer.Option(None, "--jobs-dir", help=JOBS_DIR_HELP),
    legacy_dir: Path = typer.Option(None, "--dir", hidden=True),
    platform: bool = typer.Option(
        None, "--platform/--local", help="Read the platform (default when HUD_API_KEY is set)."
    ),
) -> None:
    """Show the turns, tool calls and grade of one rollout."""
    import json

    from hud.cli.errors import CLIError
    from hud.cli.jobs_backend import JobsError, backend_for
    from hud.eval.records import trace_events
    from hud.telemetry import local_dir as configured_local_dir

    spans = local_dir if local_dir is not None else configured_local_dir()
    try:
        if platform is None and (Path(trace_id).exists() or local_dir is not None):
            platform = False  # a trace file, or a span directory: local
        backend = backend_for(jobs_dir or legacy_dir, span_dir=spans, platform=platform)
        data, where = backend.get_trace(trace_id)
    except JobsError as exc:
        raise CLIError(str(exc)) from None
    events = [_header_event(data, where), *trace_events(data)]
    if as_json:
        typer.echo(json.dumps(events, indent=2, default=str))
        return
    _render(events)


def _header_event(data: dict[str, Any], path: str) -> dict[str, Any]:
    keys = (
        "trace_id",
        "job_id",
        "slug",
        "task_id",
        "args",
        "group_index",
        "status",
        "stop_reason",
        "reward",
        "error",
        "content",
        "duration_s",
        "finished_at",
    )
    return {
        "kind": "trace",
        **{k: data.get(k) for k in keys},
        "source": {"spans": "local", "platform": "platform"}.get(str(data.get("format")), "record"),
        "path": str(path),
    }


def _call_text(call: dict[str, Any]) -> str:
    args = call.get("arguments") or {}
    parts = []
    for key, value in args.items() if isinstance(args, dict) else []:
        text = repr(value)
        if len(text) > MAX_ARG_CHARS:
            text = text[: MAX_ARG_CHARS - 1] + "…"
        parts.append(f"{key}={text}")
    return f"{call.get('name') or call.get('tool_name') or '?'}({', '.join(parts)})"


def _indented(text: str, indent: str = "    ") -> str:
    lines = str(text).splitlines() or [""]
    extra = len(lines) - MAX_RESULT_LINES
    if extra > 0:
        lines = [*lines[:MAX_RESULT_LINES], f"… ({extra} more lines)"]
    return "\n".join(indent + line for line in lines)


def _reward(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _render(events: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from hud.cli.output import console

    out = console()
    head = events[0]
    out.print(Panel.fit(f"Trace {escape(str(head.get('trace_id')))}"))
    if head["source"] == "local":
        out.print(f"Source: local ({escape(head['path'])})")
    else:
        job = f"job {head['job_id']} " if head.get("job_id") else ""
        out.print(f"Source: {escape(job)}({escape(head['path'])})")
    slug, task_id, args = head.get("slug"), head.get("task_id"), head.get("args")
    line = f"Task: [bold]{escape(str(slug or task_id or '?'))}[/]"
    if slug and task_id:
        detail = f"{task_id} {args}" if args else str(task_id)
        line += f" [dim]({escape(detail)})[/]"
    elif args:
        line += f" [dim]{escape(str(args))}[/]"
    out.print(line)
    status = head.get("status") or "unfinished"
    color = {"completed": "green", "error": "red", "cancelled": "yellow"}.get(status, "yellow")
    bits = [f"[{color}]{escape(status)}[/]", f"reward {_reward(head.get('reward'))}"]
    if head.get("stop_reason"):
        bits.append(f"stop: {escape(str(head['stop_reason']))}")
    if head.get("duration_s") is not None:
        bits.append(f"{float(head['duration_s']):.1f}s")
    out.print("Status: " + " · ".join(bits))
    if head.get("error"):
        out.print(f"[red]Error: {escape(str(head['error']))}[/]")
    turn = 0
    for event in events[1:]:
        kind = event.get("kind")
        if kind == "prompt":
            out.rule("prompt", style="dim")
            out.print(escape(str(event.get("text") or "")))
        elif kind == "user_message":
            out.rule("user", style="dim")
            out.print(escape(str(event.get("text") or "")))
        elif kind == "agent_message":
            turn += 1
            replayed = " (replayed)" if (event.get("extra") or {}).get("replayed") else ""
            out.rule(f"Turn {turn} — agent{replayed}")
            if event.get("reasoning"):
                out.print(f"[dim italic]{escape(str(event['reasoning']))}[/]")
            if event.get("text"):
                out.print(escape(str(event["text"])))
            for call in event.get("tool_calls") or []:
                out.print(f"  → {escape(_call_text(call))}")
            if event.get("error"):
                out.print(f"[red]  ✗ {escape(str(event['error']))}[/]")
        elif kind == "tool_call":
            _render_tool(out, event)
        elif kind == "system":
            text = str(event.get("text") or "")
            out.print(
                f"[red]{escape(text)}[/]" if event.get("error") else f"[dim]{escape(text)}[/]"
            )
        elif kind == "subagent":
            out.print(
                f"[dim]subagent {escape(str(event.get('trace_id')))}: {event.get('steps')} steps[/]"
            )
        elif kind == "grade":
            _render_grade(out, event)


def _render_tool(out: Any, event: dict[str, Any]) -> None:
    from rich.markup import escape

    name = escape(str(event.get("tool_name") or "?"))
    extra = event.get("extra") or {}
    note = ""
    if extra.get("replayed") is False:
        note = f" [dim](recorded result: {escape(str(extra.get('reason') or 'not re-run'))})[/]"
    elif extra.get("replayed") and extra.get("changed"):
        note = " [yellow](changed on replay)[/]"
    if event.get("error"):
        out.print(f"[red]  ✗ {name}: {escape(str(event['error']))}[/]{note}")
        return
    text = str(event.get("result_text") or "")
    out.print(f"  {name} →{note}")
    if text:
        body = escape(_indented(text))
        out.print(f"[red]{body}[/]" if event.get("is_error") else body)


def _render_grade(out: Any, event: dict[str, Any]) -> None:
    from rich.markup import escape

    out.rule("grade")
    color = "red" if event.get("is_error") else "bold"
    line = f"[{color}]reward {_reward(event.get('reward'))}[/]"
    answer = event.get("answer")
    if answer is not None:
        shown = repr(answer)
        if len(shown) > MAX_ARG_CHARS:
            shown = shown[: MAX_ARG_CHARS - 1] + "…"
        line += f" · answer {escape(shown)}"
    out.print(line)
    for row in _subscore_lines(event.get("subscores") or []):
        out.print(escape(row))
    if event.get("content"):
        out.print(escape(str(event["content"])))


def _subscore_lines(subscores: list[Any], depth: int = 1) -> list[str]:
    lines = []
    for sub in subscores:
        if not isinstance(sub, dict):
            continue
        weight = sub.get("weight")
        w = f" (weight {weight:g})" if isinstance(weight, (int, float)) and weight != 1 else ""
        value = sub.get("value")
        shown = f"{value:.3f}" if isinstance(value, (int, float)) else str(value)
        lines.append(f"{'  ' * depth}- {sub.get('name')}: {shown}{w}")
        lines.extend(_subscore_lines(sub.get("children") or [], depth + 1))
    return lines
