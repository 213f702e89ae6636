"""`hud platform …`: serve the self-hosted platform and administer it (keys, users, teams).

Admin commands find the platform through ``--data-dir`` (default ``~/.hud/platform``), where
`serve` records its URL and database. The server extra is imported only inside commands, so
``hud --help`` stays fast and the rest of the CLI works without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from hud.cli.errors import CLIError

platform_app = typer.Typer(
    help="Run and administer a self-hosted HUD platform.", no_args_is_help=True
)
key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
team_app = typer.Typer(help="Manage teams.", no_args_is_help=True)
platform_app.add_typer(key_app, name="key")
platform_app.add_typer(user_app, name="user")
platform_app.add_typer(team_app, name="team")

DATA_DIR = typer.Option(None, "--data-dir", help="Platform data directory (~/.hud/platform).")
DB = typer.Option(None, "--db", help="Database URL: sqlite:///PATH or postgresql://…")


def _require_extra() -> None:
    try:
        import alembic  # noqa: F401
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise CLIError(
            f"the platform needs the 'platform' extra ({exc.name} is missing)",
            hint="pip install 'hud[platform]'",
        ) from None


def _admin(data_dir: Path | None, db: str | None, action: Any) -> Any:
    _require_extra()
    from hud.platform.server import DataDir, admin
    from hud.platform.services import PlatformError

    try:
        return admin(DataDir.at(data_dir), db, action)
    except PlatformError as exc:
        raise CLIError(exc.message) from None
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot open the platform database: {exc}") from None


@platform_app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8700, "--port", "-p", help="Port (0 picks a free one)."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
    login_interval: int = typer.Option(5, "--login-interval", hidden=True, min=1),
    registry: str = typer.Option(
        None,
        "--registry",
        help="Image registry (HOST:PORT) to push each built environment to, so any worker "
        "node can pull it; without one the local Docker daemon keeps the images.",
    ),
    ray: str = typer.Option(
        None,
        "--ray",
        help="Run hosted rollouts as Ray tasks on the cluster at ADDRESS (e.g. 127.0.0.1:6379 "
        "or auto); default: worker processes on this machine.",
        metavar="ADDRESS",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        help="Hosted rollouts running at once (default 8, or HUD_PLATFORM_WORKERS).",
    ),
    per_team: int = typer.Option(
        None,
        "--per-team",
        min=1,
        help="Hosted rollouts of one team running at once (default: --workers, or "
        "HUD_PLATFORM_PER_TEAM).",
    ),
    max_queue: int = typer.Option(
        None,
        "--max-queue",
        min=1,
        help="Hosted rollouts that may wait; a submit past it is refused with 429 (default "
        "10000, or HUD_PLATFORM_MAX_QUEUE).",
    ),
    prime_idle: float = typer.Option(
        None,
        "--prime-idle",
        min=0,
        help="Prime worker processes for an environment once it ran (each boots the next fresh "
        "container ahead of need), closing them after SECONDS unused; default: none (on a "
        "machine short of CPU the early boots cost more than they save).",
        metavar="SECONDS",
    ),
    session_idle: float = typer.Option(
        None,
        "--session-idle",
        min=1,
        help="Seconds a runtime session may stay without an open tunnel before it is reaped "
        "(default 300).",
    ),
) -> None:
    """Serve the REST API, telemetry ingest, login, runtime sessions and hosted rollouts."""
    import asyncio

    _require_extra()
    if ray:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise CLIError(
                "--ray needs the ray package, which is not installed",
                hint="pip install 'openhud[ray]' (on this machine and every node)",
            )
    from hud.cli.output import console
    from hud.platform.server import DataDir, Started, serve
    from hud.platform.urls import client_urls

    out = console()

    def started(info: Started) -> None:
        out.print(f"HUD platform on {info.url} (database {info.db})", markup=False)
        if info.admin_key:
            out.print("Admin API key (shown once, store it now):", markup=False)
            out.print(info.admin_key, markup=False)
        out.print("Point a client at it with:", markup=False)
        for name, value in client_urls(info.url).items():
            out.print(f"  export {name}={value}", markup=False)
        out.file.flush()

    try:
        asyncio.run(
            serve(
                host=host,
                port=port,
                data_dir=DataDir.at(data_dir),
                db=db,
                on_start=started,
                device_interval=login_interval,
                registry=registry,
                rollouts={
                    "ray": ray,
                    "workers": workers,
                    "per_team": per_team,
                    "max_queue": max_queue,
                    "prime_idle": prime_idle,
                    "session_idle": session_idle,
                },
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise CLIError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


@platform_app.command("env")
def env_command(data_dir: Path = DATA_DIR) -> None:
    """Print the export lines that point a client at the running platform."""
    from hud.platform.server import DataDir
    from hud.platform.urls import client_urls

    url = DataDir.at(data_dir).url()
    if not url:
        raise CLIError(
            f"no platform has been served from {DataDir.at(data_dir).path}",
            hint="start it with `hud platform serve` (same --data-dir)",
        )
    for name, value in client_urls(url).items():
        typer.echo(f"export {name}={value}")


@key_app.command("create")
def key_create(
    team: str = typer.Option(None, "--team", help="Team the key acts for (default team)."),
    user: str = typer.Option(None, "--user", help="User email (default: the admin)."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    as_json: bool = typer.Option(False, "--json", help='Print {"key": …}.'),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Create an API key; it is printed once, alone on the last line."""

    async def action(identities: Any) -> Any:
        return await identities.create_key(team=team, user=user, name=name)

    key, info = _admin(data_dir, db, action)
    if as_json:
        typer.echo(json.dumps({"key": key, "id": info["id"], "name": info["name"]}))
        return
    typer.echo(f"Created key {info['id']} ({info['prefix']}…); it is shown only now:", err=True)
    typer.echo(key)


@key_app.command("list")
def key_list(
    team: str = typer.Option(None, "--team", help="Only this team's keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """List API keys (prefixes only; keys are stored hashed)."""

    async def action(identities: Any) -> Any:
        return await identities.list_keys(team=team)

    keys = _admin(data_dir, db, action)
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    from rich.table import Table

    from hud.cli.output import console

    table = Table("ID", "Prefix", "Name", "Team", "User", "Created", "Revoked")
    for k in keys:
        table.add_row(
            k["id"], k["prefix"] + "…", k["name"], k["team"], k["user"], k["created_at"] or "",
            "yes" if k["revoked"] else "",
        )  # fmt: skip
    console().print(table)


@key_app.command("revoke")
def key_revoke(
    key: str = typer.Argument(..., help="Key id (or a unique start of it), or the key itself."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Revoke an API key (requests with it then get 401)."""

    async def action(identities: Any) -> Any:
        return await identities.revoke_key(key)

    info = _admin(data_dir, db, action)
    typer.echo(f"Revoked key {info['id']} ({info['prefix']}…)")


@user_app.command("add")
def user_add(
    email: str = typer.Argument(..., help="The user's email (their login name)."),
    team: str = typer.Option(None, "--team", help="Team to join (default team)."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Add a user to a team."""

    async def action(identities: Any) -> Any:
        return await identities.create_user(email, team=team)

    info = _admin(data_dir, db, action)
    typer.echo(f"Added user {info['email']} ({info['id']}) to team {info['team']}")


@team_app.command("add")
def team_add(
    name: str = typer.Argument(..., help="Team name."),
    member: str = typer.Option(None, "--member", help="First member's email (default: admin)."),
    data_dir: Path = DATA_DIR,
    db: str = DB,
) -> None:
    """Add a team (its first member is the admin unless --member says otherwise)."""

    async def action(identities: Any) -> Any:
        return await identities.create_team(name, member=member)

    info = _admin(data_dir, db, action)
    typer.echo(f"Added team {info['name']} ({info['id']})")


from hud.cli.platform_gateway_cmd import limits_command, upstream_app  # noqa: E402

platform_app.add_typer(upstream_app, name="upstream")
platform_app.command("limits")(limits_command)
