"""Hooking a `Reporter` to an eval: reporting is on when ``HUD_TELEMETRY_ENABLED`` (default
true) and ``HUD_API_KEY`` are set, as with the official client (spec platform.md §5)."""

from __future__ import annotations

from typing import Any

from hud.platform.client.reporter import Reporter


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


def subscribe(job: Any, reporter: Reporter, *, model: str | None = None) -> None:
    """Report ``job`` (a `hud.eval.Job`): its enter now, each rollout's enter as it starts,
    its steps as spans as they are recorded, and its exit as it finishes."""
    reporter.job_enter(
        job.id, name=job.name, group=job.group, taskset_id=getattr(job, "taskset_id", None)
    )

    def on_start(task: Any, trace: Any) -> None:
        trace_id = trace.trace_id
        if not trace_id:
            return
        reporter.trace_enter(
            trace_id, job_id=job.id, task_slug=getattr(task, "slug", None), model=model
        )
        trace.listen(on_step)

    def on_step(trace: Any, step: Any) -> None:
        try:
            from hud.telemetry import step_span

            if trace.trace_id:
                reporter.span(trace.trace_id, step_span(str(trace.trace_id), step))
        except Exception:  # a step that cannot become a span is skipped
            pass

    def on_run(run: Any) -> None:
        trace = run.trace
        if not trace.trace_id:
            return
        grade = run.grade
        status = trace.status or ("completed" if grade is not None else "error")
        reporter.trace_exit(
            trace.trace_id,
            status=status,
            reward=float(run.reward),
            error=trace.error if status == "error" else None,
            evaluation_result=dict(grade.raw) if grade is not None and grade.raw else None,
            stop_reason=trace.stop_reason,
        )

    job.on_start(on_start)
    job.on_run(on_run)
