"""Placements: where a rollout's environment runs."""

from hud.eval.runtime import Runtime
from hud.eval.runtimes.local import LocalRuntime
from hud.eval.runtimes.shared import Shared
from hud.eval.runtimes.subprocess import SubprocessRuntime

__all__ = ["LocalRuntime", "Runtime", "Shared", "SubprocessRuntime"]
