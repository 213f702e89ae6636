"""`hud models`: the platform's model catalog, forks, checkpoint trees and heads (§10)."""

from __future__ import annotations

import json
from typing import Any

import typer

from hud.cli.errors import CLIError

models_app = typer.Typer(
    help="List, fork and inspect models served through the HUD gateway.",
    invoke_without_command=True,
)

AS_JSON = typer.Option(False, "--json", help="Print JSON.")
YES = typer.Option(False, "--yes", "-y", help="Accepted for compatibility; never prompts.")


def _api() -> Any:
    from hud.platform.client.api import PlatformAPI
    from hud.settings import settings

    current = settings()
    if not current.api_key:
        raise CLIError(
            "HUD_API_KEY is not set", hint="run `hud login` or `hud set HUD_API_KEY=...`"
        )
    return PlatformAPI(current.api_url, current.api_key)


def _call(action: Any) -> Any:
    from hud.platform.client.api import PlatformAPIError
    from hud.platform.client.models import ModelNotFound

    try:
        with _api() as api:
            return action(api)
    except ModelNotFound as exc:
        raise CLIError(str(exc), hint="run `hud models` to list them") from None
    except PlatformAPIError as exc:
        hint = "check the model or checkpoint id" if exc.status == 404 else None
        raise CLIError(exc.message, hint=hint) from None


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@models_app.callback()
def models_main(ctx: typer.Context) -> None:
    """Without a subcommand: the catalog (as `hud models list`)."""
    if ctx.invoked_subcommand is None:
        list_command(as_json=False)


@models_app.command("list")
def list_command(as_json: bool = AS_JSON) -> None:
    """The models you can use (and fork) through the gateway."""
    from hud.platform.client.models import catalog
    from hud.settings import settings

    rows = _call(catalog)
    if as_json:
        _echo_json(rows)
        return
    from rich.table import Table

    from hud.cli.output import console

    table = Table("Name", "Model", "ID", "Provider", "Agent", "Trainable", title="Models")
    for row in rows:
        table.add_row(
            str(row.get("name") or ""),
            str(row.get("model_name") or ""),
            str(row.get("id") or ""),
            str((row.get("provider") or {}).get("name") or ""),
            str(row.get("sdk_agent_type") or ""),
            "yes" if row.get("is_trainable") else "",
        )
    out = console()
    out.print(table)
    out.print(f"Gateway: {settings().gateway_url}", markup=False, highlight=False)


@models_app.command("fork")
def fork_command(
    source: str = typer.Argument(..., help="The model to fork (name, slug or id)."),
    name: str = typer.Option(..., "--name", "-n", help="The fork's name."),
    if_not_exists: bool = typer.Option(
        False, "--if-not-exists", help="Print the existing fork instead of failing."
    ),
    yes: bool = YES,
    as_json: bool = AS_JSON,
) -> None:
    """Fork a model: a trainable copy with its own checkpoint tree, routed by the gateway."""
    from hud.platform.client import models

    def action(api: Any) -> Any:
        return models.fork(api, models.find(models.catalog(api), source), name,
                           if_not_exists=if_not_exists)  # fmt: skip

    model, created = _call(action)
    if as_json:
        _echo_json(model)
        return
    verb = "Forked" if created else "Exists:"
    typer.echo(f"{verb} {model.get('name') or name} -> {model['model_name']} (id {model['id']})")


@models_app.command("checkpoints")
def checkpoints_command(
    model: str = typer.Argument(..., help="The model (name, slug or id)."),
    as_json: bool = AS_JSON,
) -> None:
    """A model's checkpoints as a tree (parent links); the head is marked."""
    from hud.platform.client import models

    def action(api: Any) -> Any:
        found = models.find(models.catalog(api), model)
        return found, models.checkpoints(api, found)

    found, rows = _call(action)
    if as_json:
        _echo_json(rows)
        return
    from rich.tree import Tree

    from hud.cli.output import console

    out = console()
    if not rows:
        out.print(f"{found['model_name']} has no checkpoints.", markup=False)
        return
    root = Tree(f"{found['model_name']}", highlight=False)

    def add(branch: Any, node: models.Node) -> None:
        child = branch.add(_label(node.row), highlight=False)
        for sub in node.children:
            add(child, sub)

    for node in models.tree(rows):
        add(root, node)
    out.print(root)


def _label(row: dict[str, Any]) -> str:
    from rich.markup import escape

    parts = [escape(str(row.get("name") or row.get("id")))]
    if row.get("is_active"):
        parts.append("[bold green]HEAD[/]")
    for key, title in (("mean_reward", "reward"), ("num_traces", "traces"), ("loss_fn", "loss")):
        value = row.get(key)
        if value is not None:
            parts.append(f"{title}={value:g}" if isinstance(value, float) else f"{title}={value}")
    parts.append(f"[dim]{escape(str(row.get('id')))}[/]")
    return "  ".join(parts)


@models_app.command("head")
def head_command(
    model: str = typer.Argument(..., help="The model (name, slug or id)."),
    set_to: str = typer.Option(None, "--set", help="Make this checkpoint (name or id) the head."),
    yes: bool = YES,
    as_json: bool = AS_JSON,
) -> None:
    """Show a model's head checkpoint, or move it (the gateway then serves that checkpoint)."""
    from hud.platform.client import models

    def action(api: Any) -> Any:
        found = models.find(models.catalog(api), model)
        if set_to:
            models.set_head(api, found, set_to)
        return found, models.head(models.checkpoints(api, found))

    found, current = _call(action)
    if as_json:
        _echo_json(current)
        return
    if current is None:
        typer.echo(f"{found['model_name']} has no head checkpoint.")
        return
    prefix = "Head set to" if set_to else "HEAD"
    typer.echo(f"{prefix} {current.get('name') or current['id']} ({current['id']})")
