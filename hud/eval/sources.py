"""One resolver for task sources, shared by `hud eval` and `hud task` (G25)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud.environment.loader import LoadError
from hud.eval.taskset import ROW_FILE_SUFFIXES, Taskset

#: The files a task source can be (besides a directory): Python modules and row files.
TASK_FILE_SUFFIXES = (".py", *ROW_FILE_SUFFIXES)


def defines_environment(path: Path) -> bool:
    """True when a .py file's syntax tree calls ``Environment(...)``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "Environment":
                return True
    return False


def env_target_for(path: Path) -> Path:
    """Where the environment for a task source lives (file or directory)."""
    path = path.resolve()
    if path.is_dir():
        return path
    if path.suffix == ".py":
        if defines_environment(path):
            return path
        sibling = path.parent / "env.py"
        return sibling if sibling.exists() else path.parent
    return path.parent


@dataclass
class Source:
    """A loaded task source: its rows and where to find their environment."""

    path: Path
    taskset: Taskset
    env_target: Path
    #: A provider for every row when the source brings its own placement (Harbor tasks).
    placement: Any = None
    #: Tasks of the source that could not be loaded (Harbor adapt failures).
    failures: list[Any] = field(default_factory=list)


def load_source(source: str | Path, *, strict: bool = False) -> Source:
    """Load a .py file, a directory, a .json/.jsonl task file, or a directory another package
    reads (the ``hud.task_sources`` loaders, `hud.types.hooks`: Harbor task and dataset
    directories with ``task.toml``/``task.yaml``, see `hud.integrations.harbor.adapt`)."""
    path = Path(source)
    if not path.exists():
        raise LoadError(f"task source {str(source)!r} does not exist")
    if path.is_dir():
        from hud.types.hooks import task_source_loaders

        for load in task_source_loaders():
            loaded = load(path)
            if loaded is not None:
                return loaded
    if path.is_file() and path.suffix not in TASK_FILE_SUFFIXES:
        raise LoadError(f"{path} is not a .py, .json or .jsonl file or a directory")
    taskset = Taskset.from_file(path, strict=strict)
    return Source(path=path.resolve(), taskset=taskset, env_target=env_target_for(path))
