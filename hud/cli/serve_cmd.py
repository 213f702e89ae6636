"""`hud serve`: serve an environment's control channel."""

from __future__ import annotations

import typer


def serve_command(
    target: str = typer.Argument(
        None, help="env file, directory, or module:attribute (default: ./env.py)"
    ),
    port: int = typer.Option(8765, "--port", "-p", help="TCP port (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    env_name: str = typer.Option(None, "--env", help="Environment name when several exist."),
    arg: list[str] = typer.Option(
        None, "--arg", help="key=value passed to a factory target (repeatable)."
    ),
    token: str = typer.Option(
        None, "--token", envvar="HUD_CONTROL_TOKEN", help="Require this control token."
    ),
    max_connections: int = typer.Option(
        None,
        "--max-connections",
        help="Most open connections (default 1024, lowered to fit the descriptor limit).",
    ),
    max_frame_mib: float = typer.Option(
        None, "--max-frame-mib", help="Longest frame accepted, in MiB (default 16)."
    ),
    max_buffered_mib: float = typer.Option(
        None,
        "--max-buffered-mib",
        help="MiB of incomplete frames buffered over all connections (default 64).",
    ),
    max_parked: int = typer.Option(
        None, "--max-parked", help="Parked sessions kept; beyond, the oldest is cancelled."
    ),
    max_parked_mib: float = typer.Option(
        None,
        "--max-parked-mib",
        help="MiB held by parked sessions (default 64); beyond, the oldest is cancelled.",
    ),
    idle_timeout: float = typer.Option(
        None,
        "--idle-timeout",
        help="Seconds a connection may take to complete a frame (default 30; 0 = forever).",
    ),
    session_ttl: float = typer.Option(
        None, "--session-ttl", help="Seconds a parked task is kept (default 24 h; 0 = forever)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests."),
) -> None:
    """Serve an environment on one TCP port (tasks and capability tunnels)."""
    import asyncio
    import logging

    from hud.cli.errors import CLIError
    from hud.cli.output import console, warn
    from hud.environment import LoadError, load_environment
    from hud.environment.server import (
        LIMIT_FLAGS,
        ServeError,
        Server,
        is_loopback,
        limits_from_flags,
        serve_until_signal,
    )

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args: dict[str, str] = {}
    for item in arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"malformed --arg {item!r}", hint="use --arg key=value")
        args[key] = value
    given = dict(
        zip(
            LIMIT_FLAGS,
            (
                max_connections,
                max_frame_mib,
                max_buffered_mib,
                max_parked,
                max_parked_mib,
                idle_timeout,
                session_ttl,
            ),
            strict=True,
        )
    )
    try:
        limits = limits_from_flags(given)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    source = target or "env"
    try:
        env = load_environment(source, name=env_name, args=args or None)
    except LoadError as exc:
        hint = None
        if target is None:
            hint = "run inside a project with env.py, or pass a file, directory or module:attr"
        raise CLIError(str(exc), hint=hint) from exc
    out = console()

    def ready(server: Server) -> None:
        out.print("[bold]Environment[/]")
        out.print(f"  • {env.name}")
        out.print(f"  • serving on tcp://{host}:{server.port}")
        out.print(f"  • {len(env.tasks)} task template(s), {len(env.capabilities)} capability(ies)")
        if not is_loopback(host) and not token:
            warn(
                f"listening on {host} without a control token: "
                "anyone who can reach it can run tasks"
            )
        out.print("[dim]  try: hud task list   (Ctrl-C to stop)[/]")
        print(f"HUD_SERVE_PORT={server.port}", flush=True)

    try:
        asyncio.run(serve_until_signal(env, host, port, token=token, limits=limits, on_ready=ready))
    except ServeError as exc:
        raise CLIError(exc.message, hint=exc.hint) from None
    out.print("Stopped.")
