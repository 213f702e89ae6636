"""Harbor (the Terminal-Bench harness) in both directions.

* ``adapt(path) -> AdaptResult(taskset, failures)`` (synchronous, G37): a Harbor task directory
  (``task.toml``; legacy Terminal-Bench ``task.yaml``) or a dataset directory of them, as rows
  that run directly: ``hud eval <dir> <agent>``. ``failures`` carry stable codes (`CODES`).
* ``await export(source, out_dir)``: HUD tasks -> Harbor task folders Harbor itself can run.
* `HarborRuntime`: places adapted rows (containers + our server alongside, see ``runtime``).
"""

from hud.integrations.harbor.adapt import AdaptFailure, AdaptResult, adapt
from hud.integrations.harbor.export import export
from hud.integrations.harbor.runtime import HarborEnvironment, HarborRuntime, oracle_solution
from hud.integrations.harbor.taskdir import (
    CODES,
    HarborTask,
    TaskDirError,
    is_harbor_path,
    load_task,
)
from hud.integrations.harbor.trial import parse_rewards

__all__ = [
    "CODES",
    "AdaptFailure",
    "AdaptResult",
    "HarborEnvironment",
    "HarborRuntime",
    "HarborTask",
    "TaskDirError",
    "adapt",
    "export",
    "is_harbor_path",
    "load_task",
    "oracle_solution",
    "parse_rewards",
]
