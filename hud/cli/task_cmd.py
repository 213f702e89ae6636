"""`hud task list|start|grade`: poke tasks by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

task_app = typer.Typer(help="List, start and grade tasks by hand.", no_args_is_help=True)

SOURCE_HELP = "Task source: .py file, directory, .json or .jsonl (default: current directory)."
URL_HELP = "Attach to a running server (tcp://host:port or host:port)."


def _run(coro: Any, *, task: str | None = None, url: str | None = None) -> Any:
    """Run a library call; its errors become one-line CLI errors. ``task``/``url`` name what
    the call asked for, so a server's "unknown task" lists the nearest ids it does have."""
    import asyncio

    from hud.cli.errors import CLIError
    from hud.eval.manual import ManualError
    from hud.protocol import INVALID_PARAMS, HudProtocolError

    try:
        return asyncio.run(coro)
    except ManualError as exc:
        raise CLIError(str(exc), hint=exc.hint) from exc
    except HudProtocolError as exc:
        if (
            task is not None
            and exc.code == INVALID_PARAMS
            and exc.message.startswith("unknown task")
        ):
            raise _unknown_task(task, url) from exc
        raise CLIError(str(exc)) from exc
    except (OSError, TimeoutError) as exc:
        raise CLIError(
            f"cannot reach the environment server: {exc}",
            hint="start one with `hud serve`, or pass --url",
        ) from exc


def _unknown_task(task: str, url: str | None) -> Exception:
    """The server does not know ``task``: name the server and its nearest task ids."""
    import asyncio
    import difflib

    from hud.cli.errors import CLIError
    from hud.eval.manual import DEFAULT_URL, normalize_url

    server = normalize_url(url) if url else DEFAULT_URL
    try:
        ids = [str(t.get("id")) for t in asyncio.run(_list_templates(server))]
    except Exception:
        ids = []
    listing = f"`hud task list --url {server}`"
    if not ids:
        return CLIError(f"no task {task!r} on the server at {server}", hint=f"see {listing}")
    nearest = difflib.get_close_matches(task, ids, n=3, cutoff=0.4)
    if not nearest:
        nearest = ids[:5]
        what = "available"
    else:
        what = "nearest"
    more = ", ..." if what == "available" and len(ids) > len(nearest) else ""
    return CLIError(
        f"no task {task!r} on the server at {server}; {what}: {', '.join(nearest)}{more}",
        hint=f"see {listing}",
    )


def _write_out(path: Path, frame: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(frame, indent=2) + "\n")


@task_app.command("list")
def list_command(
    source: str = typer.Option(None, "--source", "-s", help=SOURCE_HELP),
    url: str = typer.Option(None, "--url", "-u", help=URL_HELP + " Lists its templates."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print slugs only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show effective arguments."),
) -> None:
    """List the tasks of a source (or the templates of a running server)."""
    import json

    if url:
        templates = _run(_list_templates(url))
        if as_json:
            typer.echo(json.dumps(templates, indent=2))
            return
        for t in templates:
            typer.echo(f"{t.get('id')}\t{t.get('description') or ''}".rstrip())
        return
    from hud.eval.manual import ManualError, list_rows

    try:
        rows = list_rows(source or ".")
    except ManualError as exc:
        from hud.cli.errors import CLIError

        raise CLIError(str(exc), hint="pass --source PATH or run in a project directory") from exc
    if as_json:
        # As the official CLI writes it: indented, ASCII-escaped.
        rows_json = [{"slug": t.slug, "id": t.id, "args": t.args} for t in rows]
        typer.echo(json.dumps(rows_json, indent=2))
        return
    for task in rows:
        if quiet:
            typer.echo(task.slug)
            continue
        args = _effective_args(task) if verbose else task.args
        suffix = f" {json.dumps(args)}" if args else ""
        typer.echo(f"{task.slug}\t{task.id}{suffix}")


def _effective_args(task: Any) -> dict[str, Any]:
    """Row args plus template defaults (G14), when the row links a live template."""
    import inspect

    env = task.environment
    template = env.tasks.get(task.id) if env is not None else None
    if template is None:
        return dict(task.args)
    out = dict(task.args)
    for name, param in template.sig.parameters.items():
        if name not in out and param.default is not inspect.Parameter.empty:
            out[name] = param.default
    return out


async def _list_templates(url: str) -> list[dict[str, Any]]:
    from hud.clients import connect

    async with connect(url, ready_timeout=5, heartbeat=None) as client:
        return await client.list_tasks()


@task_app.command("start")
def start_command(
    task: str = typer.Argument(..., help="Task slug, template id, or 0-based index."),
    source: str = typer.Option(None, "--source", "-s", help=SOURCE_HELP),
    args: str = typer.Option(None, "--args", "-a", help="Arguments as a JSON object."),
    url: str = typer.Option(None, "--url", "-u", help=URL_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Write the start frame (JSON) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the start frame as JSON."),
) -> None:
    """Start a task and print its prompt; grade it later with `hud task grade`."""
    import json

    from hud.cli.output import notice
    from hud.eval import manual

    result = _run(manual.start(task, source=source, url=url, args=args), task=task, url=url)
    if out is not None:
        _write_out(out, result.frame)
    elif as_json:
        typer.echo(json.dumps(result.frame, indent=2))
    else:
        # A non-string prompt (a list of messages, an object) on one line, as the official CLI
        # prints it: compact JSON, ASCII-escaped.
        prompt = result.frame.get("prompt")
        typer.echo(prompt if isinstance(prompt, str) else json.dumps(prompt))
    if not result.spawned and url is None:
        notice(
            f"attached to the server already running at {result.url} (not started from "
            "a source here); pass --source or --url to choose"
        )
    if result.spawned:
        notice(
            f"started on a background server ({result.url}); "
            f"grade it with: hud task grade {task} --answer ..."
        )


@task_app.command("grade")
def grade_command(
    task: str = typer.Argument(..., help="Task slug, template id, or 0-based index."),
    answer: str = typer.Option(None, "--answer", help="The answer to grade."),
    answer_file: str = typer.Option(
        None, "--answer-file", help="Read the answer from a file ('-' for stdin)."
    ),
    source: str = typer.Option(None, "--source", "-s", help=SOURCE_HELP),
    args: str = typer.Option(None, "--args", "-a", help="Arguments as a JSON object."),
    url: str = typer.Option(None, "--url", "-u", help=URL_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Write the grade frame (JSON) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the grade frame as JSON."),
) -> None:
    """Grade a task (the one `hud task start` left running, or a fresh start)."""
    import json
    import sys

    from hud.cli.errors import CLIError
    from hud.eval import manual

    if answer is not None and answer_file is not None:
        raise CLIError("pass --answer or --answer-file, not both")
    if answer_file is not None:
        try:
            text = sys.stdin.read() if answer_file == "-" else Path(answer_file).read_text()
        except OSError as exc:
            raise CLIError(f"cannot read --answer-file: {exc.strerror}: {answer_file}") from None
        answer = text.rstrip("\n")
    if answer is None:
        answer = ""
    frame = _run(manual.grade(task, answer, source=source, url=url, args=args), task=task, url=url)
    if out is not None:
        _write_out(out, frame)
    elif as_json:
        typer.echo(json.dumps(frame, indent=2))
    else:
        typer.echo(str(float(frame["score"])))
