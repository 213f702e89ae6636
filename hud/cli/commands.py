"""Wires the subcommands into the Typer app (command modules import heavy code lazily).

A run of one command imports only that command's module: start-up pays for one module, and
Typer converts one command's parameters. ``hud --help`` (or no known command) registers all.
"""

from __future__ import annotations

import importlib

import typer

#: name -> (module, attribute, is a sub-app), in the order ``hud --help`` lists them.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "eval": ("hud.cli.eval_cmd", "eval_command", False),
    "init": ("hud.cli.init_cmd", "init_command", False),
    "serve": ("hud.cli.serve_cmd", "serve_command", False),
    "set": ("hud.cli.set_cmd", "set_command", False),
    "view": ("hud.cli.view_cmd", "view_command", False),
    "task": ("hud.cli.task_cmd", "task_app", True),
    "jobs": ("hud.cli.jobs_cmd", "jobs_app", True),
    "trace": ("hud.cli.trace_cmd", "trace_app", True),
    "models": ("hud.cli.models_cmd", "models_app", True),
    # 0.6.21 keeps `hud cancel` as a hidden, deprecated alias of `hud jobs cancel`.
    "cancel": ("hud.cli.jobs_cmd", "cancel_command", False),
    "platform": ("hud.cli.platform_cmd", "platform_app", True),
    "login": ("hud.cli.login_cmd", "login_command", False),
    "deploy": ("hud.cli.deploy_cmd", "deploy_command", False),
    "sync": ("hud.cli.sync_cmd", "sync_app", True),
}
HIDDEN = {"cancel"}


def invoked(argv: list[str] | None) -> str | None:
    """The command ``argv`` runs (the first word that is not an option: the root's options
    take no value), when it is one of `COMMANDS`."""
    for word in argv or ():
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def register(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Add the command ``argv`` runs to ``app``; every command when ``argv`` is None or names
    none (help, a typo). Commands already added are not added again."""
    done = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    only = invoked(argv) if argv is not None else None
    for name, (module, attr, is_app) in COMMANDS.items():
        if name in done or (only is not None and name != only):
            continue
        target = getattr(importlib.import_module(module), attr)
        if is_app:
            app.add_typer(target, name=name)
        else:
            app.command(name=name, hidden=name in HIDDEN)(target)
        done.add(name)
