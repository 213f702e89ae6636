"""Wires every subcommand into the Typer app (command modules import heavy code lazily)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from hud.cli.deploy_cmd import deploy_command
    from hud.cli.eval_cmd import eval_command
    from hud.cli.init_cmd import init_command
    from hud.cli.jobs_cmd import cancel_command, jobs_app
    from hud.cli.login_cmd import login_command
    from hud.cli.models_cmd import models_app
    from hud.cli.platform_cmd import platform_app
    from hud.cli.serve_cmd import serve_command
    from hud.cli.set_cmd import set_command
    from hud.cli.sync_cmd import sync_app
    from hud.cli.task_cmd import task_app
    from hud.cli.trace_cmd import trace_app
    from hud.cli.view_cmd import view_command

    app.command(name="eval")(eval_command)
    app.command(name="init")(init_command)
    app.command(name="serve")(serve_command)
    app.command(name="set")(set_command)
    app.command(name="view")(view_command)
    app.add_typer(task_app, name="task")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(trace_app, name="trace")
    app.add_typer(models_app, name="models")
    # 0.6.21 keeps `hud cancel` as a hidden, deprecated alias of `hud jobs cancel`.
    app.command(name="cancel", hidden=True)(cancel_command)
    app.add_typer(platform_app, name="platform")
    app.command(name="login")(login_command)
    app.command(name="deploy")(deploy_command)
    app.add_typer(sync_app, name="sync")
