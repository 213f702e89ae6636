"""Placements: where a rollout's environment runs."""

from hud.eval.runtime import Runtime
from hud.eval.runtimes.local import LocalRuntime
from hud.eval.runtimes.shared import Shared
from hud.eval.runtimes.subprocess import SubprocessRuntime

__all__ = ["DockerRuntime", "LocalRuntime", "Runtime", "Shared", "SubprocessRuntime"]


def __getattr__(name: str) -> object:
    if name == "DockerRuntime":  # imported on demand (Docker SDK calls are lazy too)
        from hud.eval.runtimes.docker import DockerRuntime

        return DockerRuntime
    raise AttributeError(f"module 'hud.eval.runtimes' has no attribute {name!r}")
