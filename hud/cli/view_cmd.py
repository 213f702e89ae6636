"""`hud view`: the web viewer over local job records (no platform, no account)."""

from __future__ import annotations

from pathlib import Path

import typer


def view_command(
    jobs_dir: Path = typer.Argument(
        None, help="Directory of job records (default: ./.hud/jobs).", show_default=False
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(0, "--port", "-p", help="TCP port (0 picks a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    jobs_dir_option: Path = typer.Option(
        None, "--jobs-dir", help="Directory of job records (same as JOBS_DIR)."
    ),
) -> None:
    """Browse local jobs and traces in a web browser."""
    import asyncio

    from hud.cli.errors import CLIError
    from hud.cli.output import console, warn
    from hud.eval.records import DEFAULT_JOBS_DIR, JOB_FILE
    from hud.platform.web.server import ViewServer

    root = Path(jobs_dir or jobs_dir_option or DEFAULT_JOBS_DIR)
    if not root.is_dir():
        raise CLIError(
            f"{root} is not a directory of job records",
            hint="Run `hud eval` first, or pass the directory holding the job records.",
        )
    if (root / JOB_FILE).is_file():
        root = root.parent  # one job's directory: serve its parent
    server = ViewServer(root, host=host, port=port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"hud view has no sign-in: anyone who can reach {host} can read these records")

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        console().print(
            f"hud view: serving {root} at {server.url}", highlight=False, soft_wrap=True
        )
        console().print("Press Ctrl+C to stop.", highlight=False)
        if not no_browser:
            import webbrowser

            webbrowser.open(server.url)
        await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
