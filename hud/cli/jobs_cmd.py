"""`hud jobs list|get|cancel` (and today's `hud jobs [JOB_ID]`): jobs and their rollouts.

The data comes from a `hud.cli.jobs_backend.JobsBackend` (local job records in ``.hud/jobs``
today); this module parses flags and renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

JOBS_DIR_HELP = "Job records directory (default: .hud/jobs)."


class DefaultCommandGroup(TyperGroup):
    """A command group that also takes today's positional form: no subcommand runs
    ``default_command`` (``hud jobs`` = ``hud jobs list``) and a first positional that is not a
    subcommand goes to ``item_command`` (``hud jobs ID`` = ``hud jobs get ID``)."""

    default_command: str | None = None
    item_command: str | None = None
    #: Options that take a value (their value is not a positional).
    value_options: frozenset[str] = frozenset()

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = list(args)
        positional = None
        skip = False
        for token in args:
            if skip:
                skip = False
                continue
            if token == "--":
                break
            if token.startswith("-"):
                skip = token in self.value_options
                continue
            positional = token
            break
        if positional is None:
            if self.default_command and not {"-h", "--help"} & set(args):
                args.insert(0, self.default_command)
        elif positional not in self.commands and self.item_command:
            args.insert(0, self.item_command)
        return super().parse_args(ctx, args)


class _JobsGroup(DefaultCommandGroup):
    default_command = "list"
    item_command = "get"
    value_options = frozenset({"-n", "--limit", "--jobs-dir", "--dir", "-t", "--trace-id"})


jobs_app = typer.Typer(
    cls=_JobsGroup,
    help="List jobs, inspect their rollouts, and cancel running ones.",
    no_args_is_help=False,
)


PLATFORM_HELP = "Read the platform (default when HUD_API_KEY is set) or the local records."


def _backend(jobs_dir: Path | None, legacy_dir: Path | None, platform: bool | None = None) -> Any:
    from hud.cli.errors import CLIError
    from hud.cli.jobs_backend import JobsError, backend_for

    try:
        return backend_for(jobs_dir or legacy_dir, platform=platform)
    except JobsError as exc:
        raise CLIError(str(exc)) from None


def _reward(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]


def _short_id(text: str) -> str:
    """Ids in full on wide terminals, else a 12-character prefix (prefixes are accepted)."""
    from hud.cli.output import console

    return text if console().width >= 120 or len(text) <= 12 else text[:12]


def _status_style(status: str) -> str:
    return {
        "completed": "green",
        "running": "cyan",
        "interrupted": "yellow",
        "failed": "red",
        "error": "red",
        "cancelled": "yellow",
        "unfinished": "yellow",
    }.get(status, "")


@jobs_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(20, "--limit", "-n", help="Max jobs to list."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print one id per line."),
    jobs_dir: Path = typer.Option(None, "--jobs-dir", help=JOBS_DIR_HELP),
    legacy_dir: Path = typer.Option(None, "--dir", hidden=True),
    platform: bool = typer.Option(None, "--platform/--local", help=PLATFORM_HELP),
) -> None:
    """List recent jobs (newest first)."""
    import json

    backend = _backend(jobs_dir, legacy_dir, platform)
    rows = backend.list_jobs(limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if quiet:
        for row in rows:
            typer.echo(row["job_id"])
        return
    from hud.cli.output import console, err_console

    if not rows:
        err_console().print(f"No jobs in {backend.where} (run `hud eval` to make one).")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Jobs in {escape(backend.where)}", title_justify="left", show_edge=False)
    for col, kw in (
        ("Job", {"no_wrap": True}),
        ("Name", {"overflow": "fold"}),
        ("Status", {"no_wrap": True}),
        ("Runs", {"justify": "right", "no_wrap": True}),
        ("Reward", {"justify": "right", "no_wrap": True}),
        ("Created", {"no_wrap": True}),
    ):
        table.add_column(col, **kw)
    for row in rows:
        done = f"{row['runs']}/{row['total']}" if row["total"] else str(row["runs"])
        if row["errors"]:
            done += f" ({row['errors']} err)"
        style = _status_style(row["status"])
        table.add_row(
            _short_id(row["job_id"]),
            escape(row["name"]),
            f"[{style}]{row['status']}[/]" if style else row["status"],
            done,
            _reward(row["reward"]),
            _short_time(row["created_at"]),
        )
    console().print(table)


@jobs_app.command("get")
def get_command(
    job_id: str = typer.Argument(..., help="Job id (a unique prefix is enough)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(None, "--limit", "-n", help="Max rollouts to show."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print one trace id per line."),
    jobs_dir: Path = typer.Option(None, "--jobs-dir", help=JOBS_DIR_HELP),
    legacy_dir: Path = typer.Option(None, "--dir", hidden=True),
    platform: bool = typer.Option(None, "--platform/--local", help=PLATFORM_HELP),
) -> None:
    """Show the rollouts of one job."""
    from hud.cli.errors import CLIError
    from hud.cli.jobs_backend import JobsError

    try:
        job = _backend(jobs_dir, legacy_dir, platform).get_job(job_id)
    except JobsError as exc:
        raise CLIError(str(exc)) from None
    if limit is not None:
        job["runs"] = job["runs"][: max(limit, 0)]
    _show_job(job, as_json=as_json, quiet=quiet)


@jobs_app.command("cancel")
def cancel_command(
    job_id: str = typer.Argument(None, help="Job to cancel (omit with --all)."),
    trace_id: str = typer.Option(None, "--trace-id", "-t", help="One rollout of the job."),
    all_jobs: bool = typer.Option(False, "--all", "-a", help="Cancel every running job."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Skip the confirmation (required without a terminal)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    jobs_dir: Path = typer.Option(None, "--jobs-dir", help=JOBS_DIR_HELP),
    legacy_dir: Path = typer.Option(None, "--dir", hidden=True),
    platform: bool = typer.Option(None, "--platform/--local", help=PLATFORM_HELP),
) -> None:
    """Cancel a running job (local: `hud eval` stops and records it interrupted)."""
    import json
    import sys

    from hud.cli.errors import CLIError
    from hud.cli.jobs_backend import JobsError

    if job_id and all_jobs:
        raise CLIError("pass a job id or --all, not both")
    if not job_id and not all_jobs:
        raise CLIError("name a job to cancel, or pass --all", hint="see `hud jobs list`")
    backend = _backend(jobs_dir, legacy_dir, platform)
    kwargs = {"trace_id": trace_id, "all_jobs": all_jobs}
    try:
        planned = backend.cancel(job_id, dry_run=True, **kwargs)
        if not dry_run and planned:
            if not yes:
                if not sys.stdin.isatty():
                    raise CLIError("cancelling needs confirmation", hint="pass --yes")
                what = ", ".join(a["job_id"] for a in planned)
                if not typer.confirm(f"Cancel {what}?"):
                    raise typer.Exit(1)
            planned = backend.cancel(job_id, dry_run=False, **kwargs)
    except JobsError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "actions": planned}, indent=2))
        return
    if not planned:
        typer.echo("No running jobs to cancel.")
    for action in planned:
        typer.echo(f"{action['action']} {action['job_id']}: {action['detail']}")


def _show_job(job: dict[str, Any], *, as_json: bool, quiet: bool) -> None:
    import json

    runs, pending = job["runs"], job["unfinished"]
    if as_json:
        typer.echo(json.dumps(job, indent=2, default=str))
        return
    if quiet:
        for row in runs:
            typer.echo(row.get("trace_id"))
        return
    from rich.markup import escape
    from rich.table import Table

    from hud.cli.output import console

    stats = job["stats"]
    status = job["status"]
    style = _status_style(status)
    out = console()
    out.print(f"[bold]Job {job['job_id']}[/]  {escape(str(job.get('name') or ''))}")
    done = f"{stats['runs']}/{stats['total']}" if stats["total"] else str(stats["runs"])
    out.print(
        f"Status: [{style or 'default'}]{status}[/] · runs {done} · errors {stats['errors']} · "
        f"reward {_reward(stats['reward'])} · created {_short_time(job.get('created_at'))}"
    )
    config = job.get("config") or {}
    bits = [f"{k}={config[k]}" for k in ("source", "agent", "model", "group") if config.get(k)]
    if bits:
        out.print(f"[dim]{escape(' · '.join(bits))}[/]")
    if job.get("path"):
        out.print(f"[dim]{escape(str(job['path']))}[/]")
    table = Table(show_edge=False)
    for col, kw in (
        ("#", {"justify": "right", "no_wrap": True}),
        ("Slug", {"overflow": "fold"}),
        ("Reward", {"justify": "right", "no_wrap": True}),
        ("Status", {"no_wrap": True}),
        ("Error", {"overflow": "fold"}),
        ("Trace", {"no_wrap": True}),
    ):
        table.add_column(col, **kw)
    rows = runs + pending
    for n, row in enumerate(rows, 1):
        slug = escape(str(row.get("slug") or row.get("task_id") or "?"))
        if isinstance(row.get("group_index"), int) and row["group_index"]:
            slug += f" [dim]#{row['group_index']}[/]"
        rstatus = str(row.get("status") or "-")
        rstyle = _status_style(rstatus)
        error = row.get("error") or ""
        table.add_row(
            str(n),
            slug,
            _reward(row.get("reward")) if rstatus != "unfinished" else "-",
            f"[{rstyle}]{rstatus}[/]" if rstyle else rstatus,
            f"[red]{escape(_one_line(error))}[/]" if error else "",
            _short_id(str(row.get("trace_id") or "")),
        )
    if rows:
        out.print(table)
    else:
        out.print("No finished rollouts yet.")


def _one_line(text: str, width: int = 80) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"
