"""Evaluation: tasks, tasksets, rollouts, runtimes and jobs."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Task": "hud.eval.task",
    "RuntimeConfig": "hud.eval.runtime_config",
    "ComposeProject": "hud.eval.runtime_config",
    "RuntimeGPU": "hud.eval.runtime_config",
    "RuntimeLimits": "hud.eval.runtime_config",
    "RuntimeResources": "hud.eval.runtime_config",
    "RuntimeTPU": "hud.eval.runtime_config",
    "Taskset": "hud.eval.taskset",
    "Runtime": "hud.eval.runtime",
    "Provider": "hud.eval.runtime",
    "AgentProtocol": "hud.eval.agent",
    "LocalRuntime": "hud.eval.runtimes.local",
    "SubprocessRuntime": "hud.eval.runtimes.subprocess",
    "DockerRuntime": "hud.eval.runtimes.docker",
    "Shared": "hud.eval.runtimes.shared",
    "Job": "hud.eval.job",
    "JobResult": "hud.eval.runner",
    "run_job": "hud.eval.runner",
    "JobSummary": "hud.types.job",
    "RunRow": "hud.types.job",
    "Run": "hud.eval.run",
    "Grade": "hud.eval.run",
    "Trace": "hud.types.trace",
    "rollout": "hud.eval.rollout",
    "ProjectConfig": "hud.eval.project_config",
    "find_project_config": "hud.eval.project_config",
    "load_project_config": "hud.eval.project_config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.eval' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
