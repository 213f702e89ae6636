"""What `hud eval` shows: streamed steps, a progress bar, the results table and summary.

Rows are plain dicts (the job record's ``runs.jsonl`` shape plus ``index`` and ``prompt``), so
runs of this invocation and runs loaded from a resumed record render alike.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from hud.types.job import SUCCESS_THRESHOLD, JobSummary

#: At most this many runs are listed in the results table.
MAX_TABLE_ROWS = 50
#: A reward spread above this earns a note.
HIGH_VARIANCE = 0.3


def clip(value: Any, width: int) -> str:
    """One line of at most ``width`` characters (``...`` marks a cut)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def effective_reward(row: dict[str, Any]) -> float:
    """The row's reward, errors counted as 0."""
    return 0.0 if row.get("is_error") else float(row.get("reward") or 0.0)


def summarize(
    rows: list[dict[str, Any]], *, elapsed: float, new_runs: int | None = None
) -> dict[str, Any]:
    """Figures over ``rows`` (`hud.types.job.JobSummary`, its one definition) as a dict."""
    return JobSummary.of(rows, elapsed=elapsed, new_runs=new_runs).model_dump()


def status_mark(row: dict[str, Any]) -> str:
    """``✗`` error, ``✓`` success, ``○`` otherwise."""
    if row.get("is_error") or row.get("status") == "error":
        return "✗"
    return "✓" if float(row.get("reward") or 0.0) > SUCCESS_THRESHOLD else "○"


def finished_line(row: dict[str, Any], done: int, total: int) -> str:
    """The one line ``-v`` prints per finished rollout."""
    mark = status_mark(row)
    group = row.get("group_index")
    label = f"{row.get('slug')}" + (f" #{group}" if group else "")
    text = f"[{done}/{total}] {mark} {label}  reward {float(row.get('reward') or 0.0):.3f}"
    if row.get("duration_s") is not None:
        text += f"  {float(row['duration_s']):.1f}s"
    if row.get("error"):
        text += f"  {clip(row['error'], 100)}"
    return text


# -- single rollout: stream the steps ------------------------------------------------------
class StepStream:
    """Prints the steps of a rollout as they are recorded (one task, one rollout)."""

    def __init__(self, console: Any, *, width: int = 160) -> None:
        self.console = console
        self.width = width
        self._agent_steps = 0

    def on_start(self, task: Any, trace: Any) -> None:
        """Announce ``task`` and follow the steps ``trace`` records."""
        self.begin(task.slug, task.args)
        trace.listen(self.on_step)

    def begin(self, slug: str, args: Any) -> None:
        from rich.markup import escape

        shown = f" {clip(args, self.width - 20)}" if args else ""
        self.console.print(f"[bold]▶ {escape(slug)}[/][dim]{escape(shown)}[/]")

    def _say(self, text: str, style: str = "") -> None:
        from rich.markup import escape

        body = escape(text)
        self.console.print(f"[{style}]{body}[/]" if style else body)

    def on_step(self, trace: Any, step: Any) -> None:
        from hud.types.trace import AgentStep, ToolStep

        w = self.width
        if isinstance(step, AgentStep):
            self._agent_steps += 1
            text = clip(step.content, w - 20) if step.content else ""
            head = f"  step {self._agent_steps} · agent"
            self._say(f"{head}: {text}" if text else head, "cyan")
            for call in step.tool_calls:
                self._say(f"    → {call.name}({clip(call.arguments, w - 20)})", "magenta")
            if step.error:
                self._say(f"    ✗ {clip(step.error, w - 10)}", "red")
            return
        if isinstance(step, ToolStep):
            result = step.result
            if result is None:
                self._say(f"    ← {step.call.name}: (no result)", "dim")
            else:
                body = result.text or clip(result.structuredContent, w - 30)
                style = "red" if result.isError else "dim"
                self._say(f"    ← {step.call.name}: {clip(body, w - 30)}", style)
            return
        call = step.task_call
        if call is not None and call.phase == "evaluate":
            frame = call.result if isinstance(call.result, dict) else {}
            score = frame.get("score", 0.0)
            try:
                score_text = f"{float(score):.3f}"
            except (TypeError, ValueError):
                score_text = str(score)
            content = frame.get("content")
            extra = f" ({clip(content, w - 40)})" if content else ""
            self._say(f"  grade: reward {score_text}{extra}", "bold")
            return
        if step.source == "user" and step.messages:
            from hud.eval.run import messages_text

            self._say(f"  prompt: {clip(messages_text(step.messages), w - 12)}", "dim")
            return
        if step.error:
            self._say(f"  ✗ {clip(step.error, w - 6)}", "red")


# -- batches: a live progress bar -----------------------------------------------------------
class BatchProgress:
    """A progress bar on the console (when it is a terminal) and ``-v`` lines per rollout."""

    def __init__(self, console: Any, total: int, *, verbose: bool = False) -> None:
        self.console = console
        self.total = total
        self.verbose = verbose
        self.done = 0
        self.errors = 0
        self.rewards: list[float] = []
        self._progress: Any = None
        self._task: Any = None
        self._live = bool(getattr(console, "is_terminal", False)) and total > 0

    def __enter__(self) -> BatchProgress:
        if self._live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]eval[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("mean {task.fields[mean]}"),
                TextColumn("errors {task.fields[errors]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("eval", total=self.total, mean="-", errors=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def add(self, row: dict[str, Any]) -> None:
        """Count a finished rollout."""
        self.done += 1
        self.rewards.append(effective_reward(row))
        if row.get("is_error"):
            self.errors += 1
        if self._progress is not None:
            self._progress.update(
                self._task,
                advance=1,
                mean=f"{statistics.fmean(self.rewards):.3f}",
                errors=self.errors,
            )
        if self.verbose:
            from rich.markup import escape

            self.console.print(escape(finished_line(row, self.done, self.total)))


# -- following a job: run_job's events ---------------------------------------------------------
class EvalView:
    """``on_event`` of `hud.eval.run_job` for ``hud eval``: a lone rollout streams its steps,
    a batch shows a progress bar (and ``-v`` lines); finished rows are kept for the table."""

    def __init__(self, console: Any, *, order: dict[str, int], verbose: bool = False) -> None:
        self.console = console
        self.order = order
        self.verbose = verbose
        self.rows: list[dict[str, Any]] = []
        self.prompts: dict[str, str | None] = {}
        self.resumed: tuple[str, int, int] | None = None
        self._stream: StepStream | None = None
        self._progress: BatchProgress | None = None

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "job_started":
            if event.previous:
                self.console.print(
                    f"Resuming job {event.job_id}: {event.previous} rollout(s) done, "
                    f"{event.total} to run"
                )
            if event.total == 1:
                self._stream = StepStream(self.console)
            else:
                self._progress = BatchProgress(self.console, event.total, verbose=self.verbose)
                self._progress.__enter__()
        elif kind == "rollout_started":
            if self._stream is not None:
                self._stream.begin(event.slug, event.args)
        elif kind == "step":
            if self._stream is not None:
                self._stream.on_step(None, event.step)
        elif kind == "rollout_finished":
            row = self.display_row(event.row.model_dump(), prompt=prompt_of(event.trace))
            self.rows.append(row)
            if self._progress is not None:
                self._progress.add(row)
        elif kind == "job_finished":
            self.close()

    def display_row(self, row: dict[str, Any], *, prompt: str | None) -> dict[str, Any]:
        """A run row plus what the table shows: ``index`` (taskset order) and ``prompt``."""
        return {**row, "index": self.order.get(str(row.get("slug"))), "prompt": prompt}

    def close(self) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None


def prompt_of(trace: Any) -> str | None:
    """The text of a trace's prompt (its first ``user`` step), None without one."""
    from hud.eval.run import messages_text

    for step in trace.steps:
        if step.source == "user":
            return messages_text(step.messages) or None
    return None


# -- the end: table and summary -------------------------------------------------------------
def results_table(rows: list[dict[str, Any]], title: str, *, width: int = 160) -> Any:
    """The "Details" table: up to `MAX_TABLE_ROWS` runs, fitted to ``width`` columns.

    The task, reward and status columns always show; the prompt and answer columns share what
    is left (and are left out when nothing is).
    """
    from rich.table import Table

    shown = rows[:MAX_TABLE_ROWS]
    labels = []
    for row in shown:
        index = row.get("index")
        group = row.get("group_index") or 0
        label = f"{index}" if index is not None else "-"
        labels.append(label + (f".{group}" if group else ""))
    index_w = max([1, *map(len, labels)])
    task_w = max([4, *(len(clip(r.get("slug"), 40)) for r in shown)])
    reward_w, mark_w = 6, 1
    # 6 columns: 7 rules and 2 cells of padding each
    left = width - (7 + 2 * 6) - index_w - reward_w - mark_w
    task_w = min(task_w, max(4, left - 12))
    rest = left - task_w
    prompts = [clip(r.get("prompt"), 40) or "—" for r in shown]
    answers = [
        "—" if r.get("answer") is None else (clip(r.get("answer"), 28) or '""') for r in shown
    ]
    prompt_need = max([6, *map(len, prompts)])
    answer_need = max([6, *map(len, answers)])
    prompt_w = min(prompt_need, max(0, rest * 4 // 7))
    answer_w = min(answer_need, max(0, rest - prompt_w))
    prompt_w = min(prompt_need, max(prompt_w, rest - answer_w))  # what the answer leaves
    with_text = prompt_w >= 6 and answer_w >= 6

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, width=index_w)
    table.add_column("Task", width=task_w, overflow="fold")
    if with_text:
        table.add_column("Prompt", width=prompt_w, overflow="ellipsis", no_wrap=True)
        table.add_column("Answer", width=answer_w, overflow="ellipsis", no_wrap=True)
    table.add_column("Reward", justify="right", width=reward_w, no_wrap=True)
    table.add_column("", justify="center", width=mark_w, no_wrap=True)
    for label, row, prompt, answer in zip(labels, shown, prompts, answers, strict=True):
        texts = [prompt, answer] if with_text else []
        table.add_row(
            label,
            clip(row.get("slug"), 40),
            *texts,
            f"{float(row.get('reward') or 0.0):.3f}",
            status_mark(row),
        )
    return table


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary_lines(summary: dict[str, Any], *, job_id: str | None) -> list[str]:
    """The plain-text summary under the table (markup-free)."""
    lines = [f"Runs: {summary['run_count']}"]
    mean = f"Mean reward: {summary['mean_reward']:.3f} ± {summary['reward_std']:.3f}"
    excl = summary.get("mean_reward_excluding_errors")
    if summary["error_count"]:
        mean += " (errors as 0)"
        mean += f" · excluding errors: {excl:.3f}" if excl is not None else " · no error-free run"
    lines.append(mean)
    lines.append(
        f"Success rate: {summary['success_rate'] * 100:.1f}% (reward > {SUCCESS_THRESHOLD})"
    )
    if summary["error_count"]:
        lines.append(f"Errors: {summary['error_count']}")
    if summary.get("failed_mid_run"):
        lines.append(f"Failed mid-run, graded: {summary['failed_mid_run']}")
    rate = summary.get("rollouts_per_second") or 0.0
    lines.append(f"Time: {format_seconds(summary['elapsed_seconds'])} ({rate:.2f} rollouts/s)")
    if summary["reward_std"] > HIGH_VARIANCE and summary["run_count"] > 1:
        lines.append("High variance: reward std above 0.3; consider a larger --group")
    for slug in summary.get("suspicious") or ():
        lines.append(f"⚠ {slug}: suspicious: rewards an empty answer")
    if job_id:
        lines.append(f"Job: {job_id}  (details: hud jobs {job_id})")
    return lines


def print_results(
    console: Any,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    *,
    title: str,
    job_id: str | None,
) -> None:
    """Table (when there is anything to list) and summary."""
    from rich.markup import escape

    if rows:
        console.print(results_table(rows, title, width=getattr(console, "width", 160) or 160))
        if len(rows) > MAX_TABLE_ROWS:
            console.print(f"[dim]... {len(rows) - MAX_TABLE_ROWS} more runs in the job record[/]")
    else:
        console.print(f"[bold]{escape(title)}[/]")
    for line in summary_lines(summary, job_id=job_id):
        style = "yellow" if line.startswith(("⚠", "High variance")) else ""
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))


def now() -> float:
    """Monotonic seconds (for elapsed times)."""
    return time.monotonic()


# -- what hud eval reports -----------------------------------------------------------------
def display_rows(result: Any, view: Any) -> list[dict[str, Any]]:
    """Every row of the job for the table: this run's with their prompts, a resumed job's
    earlier ones with the prompts of their saved traces (the first `MAX_TABLE_ROWS`)."""
    mine = {row["trace_id"]: row for row in view.rows}
    rows = []
    for i, row in enumerate(result.rows):
        shown = mine.get(row.trace_id)
        if shown is None:
            prompt = saved_prompt(result.record, row.trace_id) if i < MAX_TABLE_ROWS else None
            shown = view.display_row(row.model_dump(), prompt=prompt)
        rows.append(shown)
    return rows


def saved_prompt(record: Any, trace_id: Any) -> str | None:
    """The prompt text of a recorded trace (None when unreadable)."""
    if not trace_id or record is None:
        return None
    try:
        return prompt_of(record.read_trace(str(trace_id)))
    except (OSError, ValueError):
        return None


def json_doc(
    plan: Any, record: Any, rows: list[dict[str, Any]], summary: dict[str, Any], status: str
) -> dict[str, Any]:
    """0.6.21's ``--json`` shape plus our extra keys."""
    return {
        "job_id": record.job_id,
        "source": plan.source_label,
        "run_count": summary["run_count"],
        "mean_reward": summary["mean_reward"],
        "error_count": summary["error_count"],
        "elapsed_seconds": summary["elapsed_seconds"],
        "runs": [
            {
                "task_id": r.get("task_id"),
                "slug": r.get("slug"),
                "reward": r.get("reward"),
                "is_error": bool(r.get("is_error")),
                "trace_error": r.get("error"),
                "trace_id": r.get("trace_id"),
                "group_index": r.get("group_index"),
                "status": r.get("status"),
                "stop_reason": r.get("stop_reason"),
                "answer": r.get("answer"),
                "duration_s": r.get("duration_s"),
            }
            for r in rows
        ],
        "mean_reward_excluding_errors": summary["mean_reward_excluding_errors"],
        "reward_std": summary["reward_std"],
        "success_rate": summary["success_rate"],
        "failed_mid_run": summary["failed_mid_run"],
        "suspicious": summary["suspicious"],
        "rollouts_per_second": summary["rollouts_per_second"],
        "status": status,
        "agent": plan.agent,
        "model": plan.model,
        "group": plan.group,
        "task_count": len(plan.slugs),
        "record": str(record.root),
    }
