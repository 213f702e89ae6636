"""Recording what the agent changed in the env's workspace (``filetracking/1``) as a step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hud.clients.filetracking import summarize, tracks_files, workspace_diff
from hud.types.trace import Step, system_step, text_messages

if TYPE_CHECKING:
    from hud.eval.run import Run


async def diff_workspace(
    run: Run, *, record: bool = True, timeout: float = 60.0
) -> dict[str, Any] | None:
    """Ask the env what changed in the workspace since the task's setup and record it.

    Returns the diff report, or None when the env publishes no ``filetracking/1`` binding.
    The step is a ``system`` step whose text lists the files and patches; the report is in
    ``extra["filetracking"]``. Failures are recorded as a system step, never raised.
    """
    if not tracks_files(run.client):
        return None
    try:
        report = await workspace_diff(run.client, timeout=timeout)
    except Exception as exc:
        if record:
            note = f"[files] could not diff the workspace: {type(exc).__name__}: {exc}"
            run.record(system_step(note, error=False))
        return None
    if report is not None and record:
        step = Step(
            source="system",
            messages=text_messages("system", summarize(report)),
            extra={"filetracking": report},
        )
        run.record(step)
    return report
