"""Harbor task and dataset directories as `hud eval` / `hud task` sources (the ``harbor``
``hud.task_sources`` entry point, see `hud.types.hooks`)."""

from __future__ import annotations

from pathlib import Path

from hud.environment.loader import LoadError
from hud.eval.sources import Source
from hud.integrations.harbor.taskdir import is_harbor_path


def load(path: Path) -> Source | None:
    """The Harbor tasks under ``path`` (None when it is no Harbor task or dataset directory)."""
    if not is_harbor_path(path):
        return None
    from hud.integrations.harbor import adapt

    result = adapt(path)
    if len(result.taskset) == 0:
        listed = "; ".join(str(f) for f in result.failures) or "no tasks"
        raise LoadError(f"{path}: no runnable Harbor tasks ({listed})")
    return Source(
        path=path.resolve(),
        taskset=result.taskset,
        env_target=path.resolve(),
        placement=result.runtime,
        failures=list(result.failures),
    )
