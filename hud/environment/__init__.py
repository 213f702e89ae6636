"""Environments: templates, lifecycle hooks, capabilities, and the control-channel server."""

from typing import TYPE_CHECKING, Any

from hud.capabilities import Capability
from hud.environment.answer import Answer
from hud.environment.environment import Environment, current_session_id
from hud.environment.hints import DataFileArg, DataFileRef, DataFilesArg, GradingArg, PromptArg
from hud.environment.loader import LoadError, load_environment
from hud.environment.template import Template

if TYPE_CHECKING:
    from hud.environment.workspace import (
        DEFAULT_SYSTEM_MOUNTS,
        Limits,
        Mount,
        MountKind,
        Peer,
        Workspace,
        WorkspacePathError,
    )

__all__ = [
    "DEFAULT_SYSTEM_MOUNTS",
    "Answer",
    "Capability",
    "DataFileArg",
    "DataFileRef",
    "DataFilesArg",
    "Environment",
    "GradingArg",
    "Limits",
    "LoadError",
    "Mount",
    "MountKind",
    "Peer",
    "PromptArg",
    "Template",
    "Workspace",
    "WorkspacePathError",
    "current_session_id",
    "load_environment",
]

#: Workspace names, imported on first use (they pull in asyncssh).
_LAZY = {
    "Workspace": "hud.environment.workspace",
    "Peer": "hud.environment.workspace",
    "Mount": "hud.environment.workspace",
    "MountKind": "hud.environment.workspace",
    "DEFAULT_SYSTEM_MOUNTS": "hud.environment.workspace",
    "Limits": "hud.environment.workspace",
    "WorkspacePathError": "hud.environment.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.environment' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
