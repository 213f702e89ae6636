"""The `hud` command line: thin commands that call the library and print."""

from __future__ import annotations

import gc
import os
import sys

import typer

from hud.cli.errors import CLIError

app = typer.Typer(
    name="hud",
    help="Build, serve and evaluate AI-agent environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from hud.version import __version__

        typer.echo(f"HUD CLI version: {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="More output: -v logs, -vv debug logs and tracebacks.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only results and errors."),
) -> None:
    """Build, serve and evaluate AI-agent environments."""
    from hud.cli.errors import CLIError
    from hud.cli.output import set_verbosity

    if quiet and verbose:
        raise CLIError("pass -q or -v, not both")
    set_verbosity(-1 if quiet else verbose)


@app.command()
def version() -> None:
    """Show the version."""
    _version_callback(True)


def _register(argv: list[str] | None = None) -> None:
    """Add the commands (only the one ``argv`` runs, when it names one) to `app`."""
    from hud.cli import commands

    commands.register(app, argv)


def _debug(argv: list[str]) -> bool:
    from hud.cli.output import verbosity

    return (
        verbosity() >= 2
        or "-vv" in argv
        or "--very-verbose" in argv
        or bool(os.environ.get("HUD_DEBUG"))
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # httpx imports its own command line (click, pygments, rich's syntax) when click is
    # installed: ~20 ms of start-up for a module hud never runs.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        _register(args)
        app(args=args, prog_name="hud")
        return 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except CLIError as exc:
        from hud.cli.output import error

        if _debug(args):
            import traceback

            traceback.print_exc()
        error(exc.message, exc.hint)
        return exc.code
    except KeyboardInterrupt:
        from hud.cli.output import err_console

        err_console().print("Interrupted.")
        return 130
    except Exception as exc:
        from hud.cli.output import error

        if _debug(args):
            import traceback

            traceback.print_exc()
        error(f"{type(exc).__name__}: {exc}", "re-run with -vv for the traceback")
        return 1
    finally:
        # The process exits next and the OS frees what is left: frozen, it is not walked again
        # by the interpreter's last collections (~40 ms at exit once a command's imports ran).
        gc.freeze()
