"""Wires every subcommand into the Typer app (command modules import heavy code lazily)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from hud.cli.eval_cmd import eval_command
    from hud.cli.init_cmd import init_command
    from hud.cli.jobs_cmd import jobs_command
    from hud.cli.login_cmd import login_command
    from hud.cli.platform_cmd import platform_app
    from hud.cli.serve_cmd import serve_command
    from hud.cli.set_cmd import set_command
    from hud.cli.task_cmd import task_app
    from hud.cli.trace_cmd import trace_command

    app.command(name="eval")(eval_command)
    app.command(name="init")(init_command)
    app.command(name="serve")(serve_command)
    app.command(name="set")(set_command)
    app.add_typer(task_app, name="task")
    app.command(name="jobs")(jobs_command)
    app.command(name="trace")(trace_command)
    app.add_typer(platform_app, name="platform")
    app.command(name="login")(login_command)
