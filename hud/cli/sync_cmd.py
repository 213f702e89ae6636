"""`hud sync env [NAME] [DIR]` and `hud sync tasks [TASKSET] [SOURCE]`: link a directory to a
platform environment, and sync local task rows to a platform taskset (spec platform.md §4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from hud.cli.errors import CLIError

sync_app = typer.Typer(
    help="Sync tasks and environments to the HUD platform.", no_args_is_help=True
)


def _fail(exc: Any) -> CLIError:
    from rich.markup import escape

    from hud.cli.output import err_console

    for line in getattr(exc, "lines", []) or []:
        err_console().print(f"  {escape(line)}")
    return CLIError(str(exc))


@sync_app.command("env")
def sync_env(
    name: str = typer.Argument(None, help="Environment name or registry ID (default: env.py's)."),
    directory: Path = typer.Argument(Path("."), help="Directory to link."),
    as_json: bool = typer.Option(False, "--json", help="Write JSON to stdout."),
) -> None:
    """Link DIRECTORY to a platform environment (saved in .hud/config.json)."""
    from hud.cli.deploy_cmd import platform_credentials
    from hud.platform.client.deploy import DeployError, find_env_name
    from hud.platform.client.sync import Syncer, SyncError

    if not directory.is_dir():
        raise CLIError(f"{directory} is not a directory")
    if not name:
        try:
            _, name = find_env_name(directory)
        except DeployError as exc:
            raise CLIError(
                str(exc), hint="pass the environment's name: hud sync env NAME"
            ) from None
    api_url, api_key, web_url = platform_credentials()
    try:
        with Syncer(api_url, api_key, directory) as syncer:
            syncer.begin()
            env = syncer.link_environment(name)
    except SyncError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps({"registry_id": env["id"], "name": env.get("name")}))
        return
    print(f"Linked {directory.resolve()} to environment {env.get('name')} ({env['id']})")
    print(f"{web_url}/environments/{env['id']}")


@sync_app.command("tasks")
def sync_tasks(
    taskset: str = typer.Argument(None, help="Taskset name or ID (default: the linked one)."),
    source: Path = typer.Argument(None, help="Task source: tasks.py, a directory, .json/.jsonl."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan without uploading."),
    export: Path = typer.Option(
        None, "--export", help="Write the platform taskset to FILE (.json, .jsonl or .csv)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Skip the confirmation prompt."),
    as_json: bool = typer.Option(False, "--json", help="Write JSON to stdout."),
) -> None:
    """Create or update a platform taskset from local task rows."""
    from hud.cli.deploy_cmd import platform_credentials
    from hud.platform.client.sync import Syncer, SyncError

    directory = Path(".")
    if source is None:
        source = Path("tasks.py") if Path("tasks.py").exists() else Path(".")
    elif source.is_dir():
        directory = source
    api_url, api_key, web_url = platform_credentials()
    try:
        with Syncer(api_url, api_key, directory) as syncer:
            syncer.begin()
            if export is not None:
                count = syncer.export(taskset, export)
                if as_json:
                    print(json.dumps({"exported": count, "file": str(export)}))
                else:
                    print(f"Exported {count} task(s) to {export}")
                return
            plan, warnings = syncer.plan(taskset, source)
            for warning in warnings:
                from hud.cli.output import warn

                warn(warning)
            summary = plan.summary()
            changes = len(plan.create) + len(plan.update)
            if not as_json:
                _print_plan(summary)
            if dry_run or changes == 0:
                if as_json:
                    print(json.dumps({**summary, "uploaded": False, "dry_run": dry_run}))
                elif changes == 0:
                    print("Everything is up to date.")
                return
            if not yes and sys.stdin.isatty() and not typer.confirm("Upload these changes?"):
                raise CLIError("sync cancelled")
            reply = syncer.apply(plan)
    except SyncError as exc:
        raise _fail(exc) from None
    taskset_id = reply.get("taskset_id")
    if as_json:
        print(json.dumps({**summary, "taskset_id": taskset_id, "uploaded": True, "reply": reply}))
        return
    print(
        f"Uploaded to taskset {plan.taskset} ({taskset_id}): "
        f"{reply.get('tasks_created', 0)} created, {reply.get('tasks_updated', 0)} updated"
    )
    print(f"{web_url}/tasksets/{taskset_id}")


def _print_plan(summary: dict[str, Any]) -> None:
    name = summary["taskset"]
    state = "new taskset" if not summary["taskset_id"] else summary["taskset_id"]
    print(f"Taskset {name} ({state})")
    for kind, label in (("create", "Create"), ("update", "Update"), ("remote_only", "Remote-only")):
        for slug in summary[kind]:
            print(f"  {label}: {slug}")
    print(
        f"Plan: {len(summary['create'])} create, {len(summary['update'])} update, "
        f"{len(summary['unchanged'])} unchanged, {len(summary['remote_only'])} remote-only"
    )
