"""`hud task list|start|grade`: poke tasks by hand."""

from __future__ import annotations

import typer

task_app = typer.Typer(help="List, start and grade tasks by hand.", no_args_is_help=True)
