"""Console helpers: Rich consoles for stdout/stderr, created on first use."""

from __future__ import annotations

from functools import cache
from typing import Any


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


def warn(message: str) -> None:
    from rich.markup import escape

    err_console().print(f"[yellow]Warning:[/] {escape(message)}")
