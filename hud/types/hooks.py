"""Hooks a higher layer provides to a lower one, found through package entry points.

A lower package never imports a higher one (the layering in ``tests/test_architecture.py``), yet
two conveniences cross the line the other way: ``Task.run`` (a row, in `hud.types`, run by the
job runner in `hud.eval`) and task sources other packages know how to read (Harbor task
directories, read by `hud.integrations.harbor`, loaded through `hud.eval.sources`). Both are
declared in ``pyproject.toml``::

    [project.entry-points."hud.hooks"]
    run_task = "hud.eval.runner:run_task"

    [project.entry-points."hud.task_sources"]
    harbor = "hud.integrations.harbor.source:load"

so the dependency is stated in the package metadata, not made by an import and not filled in by
an import side effect. An installation without its metadata (a source tree on ``sys.path``
without ``pip install -e .``) has no hooks: `hook` then raises `LookupError` saying so.
"""

from __future__ import annotations

import functools
from typing import Any

HOOKS_GROUP = "hud.hooks"
SOURCES_GROUP = "hud.task_sources"


@functools.cache
def _entry_points(group: str) -> tuple[Any, ...]:
    from importlib.metadata import entry_points

    seen: dict[str, Any] = {}
    for ep in entry_points(group=group):
        seen.setdefault(ep.name, ep)  # the first distribution on sys.path wins
    return tuple(seen.values())


def hook(name: str) -> Any:
    """The object the ``hud.hooks`` entry point ``name`` names (`LookupError` if none)."""
    for ep in _entry_points(HOOKS_GROUP):
        if ep.name == name:
            return ep.load()
    raise LookupError(
        f"no {HOOKS_GROUP!r} entry point named {name!r}: hud's package metadata is missing "
        "(install it: pip install -e . from the source tree)"
    )


def task_source_loaders() -> list[Any]:
    """The ``hud.task_sources`` loaders: ``load(path) -> Source | None`` each."""
    return [ep.load() for ep in _entry_points(SOURCES_GROUP)]
