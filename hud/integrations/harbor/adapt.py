"""`adapt(path)`: Harbor task directories -> a `Taskset` runnable as is (no conversion step).

Synchronous (G37). Rows follow the official mapping: ``env`` = ``<dataset>-<sha12>`` (tasks with
the same environment tree and settings share it), ``id="run"``, ``slug`` = the task directory
name, ``args = {"instruction", "task": {id, description, verifier_timeout, separate_verifier,
collect, artifacts}}``, ``agent_config = {"timeout_seconds"}``, ``columns`` = ``[metadata]``
(+ ``keywords``), ``runtime_config`` = resources + ``startup_timeout_s`` (the build timeout).
Timeout multipliers apply as in Harbor: effective = base x multiplier (a phase multiplier
replaces the general one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud.eval.runtime_config import RuntimeConfig, RuntimeGPU, RuntimeLimits, RuntimeResources
from hud.eval.task import Task
from hud.eval.taskset import Taskset
from hud.integrations.harbor.runtime import TEMPLATE_ID, HarborRuntime
from hud.integrations.harbor.taskdir import (
    CODES,
    HarborTask,
    TaskDirError,
    is_dataset_dir,
    is_task_dir,
    load_task,
)
from hud.version import DIST_NAME


@dataclass(frozen=True)
class AdaptFailure:
    """A task left out: ``code`` is stable (see `CODES`), ``reason`` readable."""

    path: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{Path(self.path).name}: {self.reason} [{self.code}]"


@dataclass
class AdaptResult:
    """The runnable rows, the tasks that could not be adapted, and their placement."""

    taskset: Taskset
    failures: list[AdaptFailure] = field(default_factory=list)
    runtime: HarborRuntime = field(default_factory=HarborRuntime)
    tasks: dict[str, HarborTask] = field(default_factory=dict)


def task_dirs(path: Path) -> list[Path]:
    if is_task_dir(path):
        return [path]
    if is_dataset_dir(path):
        return sorted(p for p in path.iterdir() if p.is_dir() and is_task_dir(p))
    raise ValueError(
        f"{path} is neither a Harbor task directory (task.toml or task.yaml) nor a dataset "
        "directory of them"
    )


def _scaled(value: float | None, multiplier: float) -> float | None:
    return None if value is None else value * multiplier


def adapt(
    path: str | Path,
    *,
    hud_requirement: str = DIST_NAME,
    timeout_multiplier: float = 1.0,
    agent_timeout_multiplier: float | None = None,
    verifier_timeout_multiplier: float | None = None,
    build_timeout_multiplier: float | None = None,
    runtime: HarborRuntime | None = None,
) -> AdaptResult:
    """Load a Harbor task directory or a dataset directory as a `Taskset`.

    ``hud_requirement`` is accepted for compatibility (no image gets ``hud`` installed here:
    the server runs alongside the container). Tasks that cannot run are listed in
    ``failures``; the others are packaged.
    """
    del hud_requirement
    root = Path(path).resolve()
    if not root.is_dir():
        raise ValueError(f"{path} is not a directory")
    dirs = task_dirs(root)
    dataset = root.parent.name if is_task_dir(root) else root.name
    runtime = runtime or HarborRuntime()
    agent_mult = agent_timeout_multiplier or timeout_multiplier
    verifier_mult = verifier_timeout_multiplier or timeout_multiplier
    build_mult = build_timeout_multiplier or timeout_multiplier
    rows: list[Task] = []
    failures: list[AdaptFailure] = []
    loaded: dict[str, HarborTask] = {}
    for task_dir in dirs:
        try:
            task = load_task(task_dir)
        except TaskDirError as exc:
            failures.append(AdaptFailure(str(task_dir), exc.code, exc.reason))
            continue
        group = f"{_name(dataset)}-{task.environment_hash()[:12]}"
        row = _row(task, group, agent_mult, verifier_mult, build_mult)
        runtime.register(row, task)
        rows.append(row)
        loaded[row.slug] = task
    return AdaptResult(Taskset(_name(root.name), rows), failures, runtime, loaded)


def _name(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return out.strip("-.") or "harbor"


def _row(
    task: HarborTask, group: str, agent_mult: float, verifier_mult: float, build_mult: float
) -> Task:
    args: dict[str, Any] = {
        "instruction": task.instruction,
        "task": {
            "id": task.name,
            "description": task.description,
            "verifier_timeout": _scaled(task.verifier_timeout, verifier_mult),
            "separate_verifier": False,
            "collect": [],
            "artifacts": [a.to_json() for a in task.artifacts],
        },
    }
    columns: dict[str, Any] = dict(task.metadata)
    if task.keywords:
        columns["keywords"] = list(task.keywords)
    resources = RuntimeResources(
        cpu=task.cpus,
        memory_mb=task.memory_mb,
        storage_mb=task.storage_mb,
        gpu=RuntimeGPU(count=task.gpus) if task.gpus else None,
        os="linux",
    )
    build_timeout = _scaled(task.build_timeout, build_mult) or 600.0
    config = RuntimeConfig(
        resources=resources,
        limits=RuntimeLimits(startup_timeout_s=max(1, round(build_timeout))),
    )
    agent_timeout = _scaled(task.agent_timeout, agent_mult)
    return Task(
        env=group,
        id=TEMPLATE_ID,
        slug=task.name,
        args=args,
        agent_config={"timeout_seconds": agent_timeout} if agent_timeout else None,
        columns=columns or None,
        runtime_config=config,
    )


__all__ = ["CODES", "AdaptFailure", "AdaptResult", "adapt", "task_dirs"]
