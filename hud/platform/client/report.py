"""Reporting an eval to a platform: an ``on_event`` subscriber of `hud.eval.runner.run_job`
feeding a background `Reporter`. On when ``HUD_TELEMETRY_ENABLED`` (default true) and
``HUD_API_KEY`` are set, as with the official client (spec platform.md §5)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from hud.platform.client.reporter import Reporter
from hud.telemetry import step_payload, step_span


def reporter_from_settings() -> Reporter | None:
    """A reporter for the configured platform, or None when reporting is off."""
    try:
        from hud.settings import settings

        current = settings()
        if not current.telemetry_enabled or not current.api_key:
            return None
        return Reporter(current.api_url, current.telemetry_url, current.api_key)
    except Exception:  # unreadable settings: no reporting, never a failed eval
        return None


def event_handler(
    reporter: Reporter, *, model: str | None = None, taskset_id: str | None = None
) -> Callable[[Any], None]:
    """An ``on_event`` handler reporting the job: its enter when it starts, each rollout's
    enter as it starts, every recorded step as a span, each rollout's exit as it finishes.
    It only queues (never blocks the event loop) and never raises."""

    def on_event(event: Any) -> None:
        try:
            _report(reporter, event, model=model, taskset_id=taskset_id)
        except Exception:  # reporting never breaks a job
            pass

    return on_event


def _report(reporter: Reporter, event: Any, *, model: str | None, taskset_id: str | None) -> None:
    kind = getattr(event, "type", None)
    if kind == "job_started":
        reporter.job_enter(event.job_id, name=event.name, group=event.group, taskset_id=taskset_id)
    elif kind == "rollout_started":
        reporter.trace_enter(
            event.trace_id,
            job_id=event.job_id,
            group_id=getattr(event, "group_id", None),
            task_slug=event.slug,
            model=model,
        )
    elif kind == "step":
        # the step's payload as the job record just made it; the span around it is made in
        # the reporter's thread, off the eval's loop
        step = event.step
        span = partial(step_span, str(event.trace_id), step, step_payload(step))
        reporter.span(event.trace_id, span)
    elif kind == "rollout_finished":
        row, trace = event.row, event.trace
        trace_id = row.trace_id or trace.trace_id
        if not trace_id:
            return
        status = row.status or ("error" if row.is_error else "completed")
        reporter.trace_exit(
            trace_id,
            status=status if status in ("completed", "error", "cancelled") else "error",
            reward=float(row.reward or 0.0),
            error=row.error if status == "error" else None,
            evaluation_result=_grade_frame(trace),
            stop_reason=row.stop_reason,
        )


def _grade_frame(trace: Any) -> dict[str, Any] | None:
    """The env's grade frame: the result of the rollout's ``evaluate`` task call."""
    for step in reversed(getattr(trace, "steps", None) or []):
        call = getattr(step, "task_call", None)
        if call is not None and call.phase == "evaluate" and isinstance(call.result, dict):
            return dict(call.result)
    return None


def tee(*handlers: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """One ``on_event`` handler calling each of ``handlers`` (None skipped) in order."""
    active = [h for h in handlers if h is not None]

    def on_event(event: Any) -> None:
        for handler in active:
            handler(event)

    return on_event
