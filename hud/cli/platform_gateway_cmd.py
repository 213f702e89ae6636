"""`hud platform upstream …` and `hud platform limits`: the inference gateway's admin side.

Upstreams are where the gateway sends a model's calls: a provider (Anthropic, OpenAI, Gemini)
or any OpenAI-compatible server (vLLM, SGLang, Ollama). Keys are stored encrypted with the
data directory's key; listings show only whether one is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from hud.cli.errors import CLIError

upstream_app = typer.Typer(
    help="Where the inference gateway sends each model's calls.", no_args_is_help=True
)

DATA_DIR = typer.Option(None, "--data-dir", help="Platform data directory (~/.hud/platform).")
DB = typer.Option(None, "--db", help="Database URL: sqlite:///PATH or postgresql://…")


def _gateway(data_dir: Path | None, db: str | None, action: Any) -> Any:
    """Run ``action(GatewayService)`` on the platform's database."""
    import asyncio

    from hud.cli.platform_cmd import _require_extra

    _require_extra()
    from hud.platform.server import DataDir, open_database
    from hud.platform.services import PlatformError
    from hud.platform.services.gateway import GatewayService

    where = DataDir.at(data_dir)

    async def main() -> Any:
        database = await open_database(where, db)
        try:
            return await action(GatewayService(database, where.path))
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except PlatformError as exc:
        raise CLIError(exc.message) from None
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot open the platform database: {exc}") from None


@upstream_app.command("add")
def upstream_add(
    name: str = typer.Argument(..., help="A name for the upstream."),
    provider: str = typer.Option(
        ..., "--provider", help="anthropic, openai, gemini or openai_compatible."
    ),
    base_url: str = typer.Option(
        ...,
        "--base-url",
        help="The provider's base URL as its SDK takes it (OpenAI-style ones end in /v1).",
    ),
    api_key: str = typer.Option(
        None, "--api-key", help="The provider key (stored encrypted; else none is sent)."
    ),
    api_key_env: str = typer.Option(
        None, "--api-key-env", help="Read the provider key from this environment variable."
    ),
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="A model it serves (repeatable); NAME=UPSTREAM_NAME exposes it under another name.",
    ),
    price_in: float = typer.Option(
        None, "--price-in", min=0, help="USD per million input tokens (cost accounting)."
    ),
    price_out: float = typer.Option(
        None, "--price-out", min=0, help="USD per million output tokens."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Route MODEL names to a provider endpoint; they appear in GET /v2/models."""
    import os

    key: str | None = api_key
    if api_key_env:
        key = key or os.environ.get(api_key_env) or None
        if not key:
            raise CLIError(f"{api_key_env} is not set", hint="export it, or pass --api-key")

    async def action(gateway: Any) -> Any:
        return await gateway.add_upstream(
            name,
            provider=provider.strip().lower().replace("-", "_"),
            base_url=base_url.strip(),
            api_key=key,
            models_=model,
            price_in=price_in,
            price_out=price_out,
        )

    info = _gateway(data_dir, db, action)
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(
        f"Upstream {info['name']} ({info['provider']}, {info['base_url']}) routes: "
        + ", ".join(info["models"])
    )


@upstream_app.command("list")
def upstream_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """The configured upstreams and the models each routes (keys are never shown)."""
    rows = _gateway(data_dir, db, lambda gateway: gateway.list_upstreams())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No upstreams: add one with `hud platform upstream add`.")
        return
    from rich.table import Table

    from hud.cli.output import console

    table = Table("Name", "Provider", "Base URL", "Key", "Models", "Price in/out")
    for row in rows:
        price = (
            f"{row['price_in'] or 0:g}/{row['price_out'] or 0:g}"
            if row["price_in"] is not None or row["price_out"] is not None
            else "-"
        )
        table.add_row(
            row["name"],
            row["provider"],
            row["base_url"],
            "set" if row["has_api_key"] else "-",
            ", ".join(row["models"]),
            price,
        )
    console().print(table)


@upstream_app.command("remove")
def upstream_remove(
    name: str = typer.Argument(..., help="The upstream's name."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Stop routing an upstream's models (its catalog entries go too)."""
    _gateway(data_dir, db, lambda gateway: gateway.remove_upstream(name))
    typer.echo(f"Removed upstream {name}.")


def limits_command(
    team: str = typer.Argument("default", help="The team."),
    rpm: int = typer.Option(
        None, "--rpm", min=1, help="Gateway requests per minute (omit: unlimited)."
    ),
    budget: float = typer.Option(
        None, "--budget", min=0, help="USD the team may spend through the gateway (omit: no cap)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Set a team's gateway rate limit and budget (both omitted: remove its limits)."""

    async def action(gateway: Any) -> Any:
        return await gateway.set_limits(team, requests_per_minute=rpm, budget_usd=budget)

    info = _gateway(data_dir, db, action)
    if as_json:
        typer.echo(json.dumps(info))
        return
    rate = f"{info['requests_per_minute']}/min" if info["requests_per_minute"] else "unlimited"
    cap = f"${info['budget_usd']:g}" if info["budget_usd"] is not None else "no budget"
    typer.echo(f"Team {team}: {rate}, {cap} (spent ${info['spent_usd']:.4f}).")
