"""Console helpers: Rich consoles for stdout/stderr, created on first use."""

from __future__ import annotations

from functools import cache
from typing import Any

#: -1 with ``-q``, 0 by default, 1 with ``-v``, 2 with ``-vv`` (global flags of `hud`).
_verbosity = 0


def set_verbosity(level: int) -> None:
    """Apply the global ``-q``/``-v``/``-vv``: stderr notices off with ``-q``; ``hud`` loggers
    at INFO with ``-v``, DEBUG (and tracebacks for errors) with ``-vv``."""
    global _verbosity
    _verbosity = level
    if level > 0:
        import logging

        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("hud").setLevel(logging.DEBUG if level >= 2 else logging.INFO)


def verbosity() -> int:
    return _verbosity


@cache
def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@cache
def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str, hint: str | None = None) -> None:
    from rich.markup import escape

    err_console().print(f"[bold red]Error:[/] {escape(message)}")
    if hint:
        err_console().print(f"[dim]Hint:[/] {escape(hint)}")


def notice(markup: str) -> None:
    """A dim informational line on stderr (Rich markup); silent with ``-q``."""
    if _verbosity >= 0:
        err_console().print(f"[dim]{markup}[/]")


def warn(message: str) -> None:
    from rich.markup import escape

    err_console().print(f"[yellow]Warning:[/] {escape(message)}")
