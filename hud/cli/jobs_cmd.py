"""`hud jobs [JOB_ID]`: local job records (``.hud/jobs``) and their rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

DIR_HELP = "Job records directory (default: .hud/jobs)."


def _reward(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]


def _job_row(record: Any) -> dict[str, Any]:
    stats = record.stats()
    return {
        "job_id": record.job_id,
        "name": record.name,
        "status": record.effective_status,
        "runs": stats["runs"],
        "total": stats["total"],
        "errors": stats["errors"],
        "reward": stats["reward"],
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "path": str(record.root),
    }


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


def jobs_command(
    job_id: str = typer.Argument(None, help="Show the rollouts of this job (unique prefix ok)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(20, "--limit", "-n", help="Max jobs to list."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print one id per line."),
    jobs_dir: Path = typer.Option(None, "--dir", help=DIR_HELP),
) -> None:
    """List local eval jobs, or the rollouts of one job."""
    import json

    from hud.cli.errors import CLIError
    from hud.eval.records import DEFAULT_JOBS_DIR, JobRecord, list_jobs

    base = jobs_dir or DEFAULT_JOBS_DIR
    if job_id:
        try:
            record = JobRecord.open(job_id, base_dir=base)
        except (LookupError, ValueError) as exc:
            raise CLIError(str(exc)) from None
        _show_job(record, as_json=as_json, quiet=quiet)
        return
    records = list_jobs(base)[: max(limit, 0)]
    rows = [_job_row(r) for r in records]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if quiet:
        for row in rows:
            typer.echo(row["job_id"])
        return
    from hud.cli.output import console, err_console

    if not rows:
        err_console().print(f"No jobs in {base} (run `hud eval` to make one).")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Jobs in {base}", title_justify="left", show_edge=False)
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


def _unfinished(record: Any) -> list[dict[str, Any]]:
    import json

    out = []
    for path in record.unfinished_traces():
        try:
            with open(path, encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, ValueError):
            header = {}
        out.append(
            {
                "trace_id": path.stem,
                "slug": header.get("slug"),
                "task_id": header.get("task_id"),
                "group_index": header.get("group_index"),
                "reward": None,
                "status": "unfinished",
                "error": None,
                "is_error": True,
            }
        )
    return out


def _show_job(record: Any, *, as_json: bool, quiet: bool) -> None:
    import json

    runs = record.finished_runs()
    pending = _unfinished(record)
    if as_json:
        payload = {
            **record.to_json(),
            "status": record.effective_status,
            "stats": record.stats(),
            "runs": runs,
            "unfinished": pending,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    if quiet:
        for row in runs:
            typer.echo(row.get("trace_id"))
        return
    from rich.markup import escape
    from rich.table import Table

    from hud.cli.output import console

    stats = record.stats()
    status = record.effective_status
    style = _status_style(status)
    out = console()
    out.print(f"[bold]Job {record.job_id}[/]  {escape(record.name)}")
    done = f"{stats['runs']}/{stats['total']}" if stats["total"] else str(stats["runs"])
    out.print(
        f"Status: [{style or 'default'}]{status}[/] · runs {done} · errors {stats['errors']} · "
        f"reward {_reward(stats['reward'])} · created {_short_time(record.created_at)}"
    )
    config = record.config
    bits = [f"{k}={config[k]}" for k in ("source", "agent", "model", "group") if config.get(k)]
    if bits:
        out.print(f"[dim]{escape(' · '.join(bits))}[/]")
    out.print(f"[dim]{escape(str(record.root))}[/]")
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
