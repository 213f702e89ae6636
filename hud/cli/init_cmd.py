"""`hud init`: write a runnable environment scaffold (offline)."""

from __future__ import annotations

import typer

#: Bundled presets: id -> (default directory, {output file: template under scaffold/}).
PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "blank": (
        "hud-blank",
        {
            "env.py": "env.py.tmpl",
            "tasks.py": "tasks.py.tmpl",
            "pyproject.toml": "pyproject.toml.tmpl",
            "Dockerfile.hud": "Dockerfile.hud.tmpl",
            "README.md": "README.md.tmpl",
            ".dockerignore": "dockerignore.tmpl",
        },
    ),
}

#: Presets the official CLI downloads from GitHub; not bundled here.
ONLINE_PRESETS = (
    "browser",
    "cua",
    "deepresearch",
    "coding",
    "ml",
    "ml-triage",
    "verilog",
    "autonomous-businesses",
    "gdpval",
    "worldsim",
    "robot",
    "videogamebench",
    "arc-agi-3",
    "argument-hints",
)


def env_name_for(dirname: str) -> str:
    """Environment name: every character but ASCII letters, digits and ``_`` becomes ``_``."""
    return "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in dirname)


def project_name_for(dirname: str) -> str:
    """A PEP 508 project name: runs of other characters become ``-``, lower-cased."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", dirname.lower()).strip("-") or "hud-env"


def render(preset: str, env_name: str, project_name: str, hud_wheel: str) -> dict[str, str]:
    """The preset's files, ``{{env_name}}``, ``{{project_name}}`` and ``{{hud_wheel}}`` (the
    file name of the running hud's wheel, which the project installs) filled in."""
    from importlib.resources import files

    scaffold = files("hud.cli").joinpath("scaffold")
    fields = {"env_name": env_name, "project_name": project_name, "hud_wheel": hud_wheel}
    out: dict[str, str] = {}
    for target, template in PRESETS[preset][1].items():
        text = scaffold.joinpath(template).read_text(encoding="utf-8")
        for key, value in fields.items():
            text = text.replace("{{" + key + "}}", value)
        out[target] = text
    return out


def _is_tty() -> bool:
    import sys

    return sys.stdin.isatty() and sys.stdout.isatty()


def init_command(
    name: str = typer.Argument(None, help="Project name (directory to create)."),
    dir: str = typer.Option(".", "--dir", "-d", help="Parent directory of the project."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Write into a non-empty directory, overwriting files."
    ),
    preset: str = typer.Option(None, "--preset", "-p", help="Scaffold to use (offline: blank)."),
) -> None:
    """Create a new environment project."""
    import shutil
    from pathlib import Path

    from rich.markup import escape

    from hud.cli.errors import CLIError
    from hud.cli.output import console

    available = ", ".join(sorted(PRESETS))
    if preset is not None and preset not in PRESETS:
        why = "is not bundled with this hud" if preset in ONLINE_PRESETS else "is unknown"
        raise CLIError(
            f"preset '{preset}' {why}; available: {available}", hint="use --preset blank"
        )
    if name is None and preset is None and not _is_tty():
        raise CLIError(
            "Nothing to create: no project name or preset given",
            hint="run 'hud init my-env' (or 'hud init --preset blank' for ./hud-blank)",
        )
    preset = preset or "blank"
    if name is None:
        default = PRESETS[preset][0]
        name = typer.prompt("Project name", default=default) if _is_tty() else default
    if not name or not name.strip():
        raise CLIError("project name is empty", hint="run 'hud init my-env'")

    target = Path(dir).expanduser() / name
    if target.exists() and not target.is_dir():
        raise CLIError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise CLIError(
            f"{target} is not empty",
            hint="choose another name or --dir, or pass --force to overwrite the scaffold files",
        )

    from hud.eval.runtimes.wheel import wheel_bytes

    dirname = target.resolve().name
    env_name = env_name_for(dirname)
    wheel_name, wheel_data = wheel_bytes()  # the project installs the hud that created it
    files = render(preset, env_name, project_name_for(dirname), wheel_name)

    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            (target / rel).write_text(text, encoding="utf-8")
        (target / wheel_name).write_bytes(wheel_data)
    except OSError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise CLIError(f"cannot write {target}: {exc.strerror or exc}") from exc

    out = console()
    out.print(f"Created environment [bold]{escape(env_name)}[/] in {escape(str(target))}")
    for rel in [*files, wheel_name]:
        out.print(f"  {escape(rel)}")
    out.print()
    out.print("[bold]Next steps[/]")
    steps = [
        f"cd {_quote(str(target))}",
        "hud serve                          # serve env.py on 127.0.0.1:8765",
        "hud task list                      # the tasks in tasks.py",
        "hud eval tasks.py oracle --all     # run them with the reference solutions",
    ]
    for i, step in enumerate(steps, 1):
        out.print(f"  {i}. {escape(step)}")


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
