"""Portable data types shared by environments and evaluation: task rows and runtime configs."""

from hud.types.runtime_config import (
    ComposeProject,
    RuntimeConfig,
    RuntimeGPU,
    RuntimeLimits,
    RuntimeResources,
    RuntimeTPU,
)
from hud.types.task import Task, default_slug

__all__ = [
    "ComposeProject",
    "RuntimeConfig",
    "RuntimeGPU",
    "RuntimeLimits",
    "RuntimeResources",
    "RuntimeTPU",
    "Task",
    "default_slug",
]
