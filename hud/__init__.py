"""hud: build, serve and evaluate AI-agent environments (compatible with HUD v6)."""

from __future__ import annotations

from typing import Any

from hud.version import __version__

_EXPORTS = {
    "Environment": "hud.environment",
    "Task": "hud.types.task",
    "Taskset": "hud.eval.taskset",
    "RuntimeConfig": "hud.types.runtime_config",
    "ComposeProject": "hud.types.runtime_config",
    "RuntimeGPU": "hud.types.runtime_config",
    "RuntimeLimits": "hud.types.runtime_config",
    "RuntimeResources": "hud.types.runtime_config",
    "RuntimeTPU": "hud.types.runtime_config",
    "Runtime": "hud.eval.runtime",
    "LocalRuntime": "hud.eval.runtimes.local",
    "SubprocessRuntime": "hud.eval.runtimes.subprocess",
    "DockerRuntime": "hud.eval.runtimes.docker",
    "Shared": "hud.eval.runtimes.shared",
    "Job": "hud.eval.job",
    "Run": "hud.eval.run",
    "Grade": "hud.eval.run",
    "Trace": "hud.types.trace",
    "rollout": "hud.eval.rollout",
    "connect": "hud.clients",
    "HudError": "hud.protocol.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hud' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
