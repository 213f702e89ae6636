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
    session_ttl: float = typer.Option(
        24 * 3600.0, "--session-ttl", help="Seconds a parked task is kept (0 = forever)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests."),
) -> None:
    """Serve an environment on one TCP port (tasks and capability tunnels)."""
    import asyncio
    import logging

    from hud.cli.errors import CLIError
    from hud.cli.output import console, warn
    from hud.environment import LoadError, load_environment
    from hud.environment.server import Server, is_loopback

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
    source = target or "env"
    try:
        env = load_environment(source, name=env_name, args=args or None)
    except LoadError as exc:
        hint = None
        if target is None:
            hint = "run inside a project with env.py, or pass a file, directory or module:attr"
        raise CLIError(str(exc), hint=hint) from exc

    async def run() -> None:
        server = Server(env, host, port, token=token, session_ttl=session_ttl)
        try:
            # Initialize hooks first, so their failures are not reported as listen errors.
            await env.start()
        except Exception as exc:
            await env.stop()
            raise CLIError(
                f"environment {env.name!r} failed to start: {type(exc).__name__}: {exc}"
            ) from None
        try:
            await server.start()
        except OSError as exc:
            await env.stop()
            reason = exc.strerror or str(exc)
            raise CLIError(
                f"cannot listen on {host}:{port}: {reason}",
                hint="pick another port with -p, or -p 0 for a free one",
            ) from None
        out = console()
        out.print("[bold]Environment[/]")
        out.print(f"  • {env.name}")
        out.print(f"  • serving on tcp://{host}:{server.port}")
        out.print(f"  • {len(env.tasks)} task(s), {len(env.capabilities)} capability(ies)")
        if not is_loopback(host) and not token:
            warn(
                f"listening on {host} without a control token: "
                "anyone who can reach it can run tasks"
            )
        out.print("[dim]  try: hud task list   (Ctrl-C to stop)[/]")
        from hud.environment.server import run_until_signal

        await run_until_signal(
            server, ready=lambda: print(f"HUD_SERVE_PORT={server.port}", flush=True)
        )
        out.print("Stopped.")

    asyncio.run(run())
