"""Environments: templates, lifecycle hooks, capabilities, and the control-channel server."""

from typing import TYPE_CHECKING, Any

from hud.capabilities import Capability
from hud.environment.answer import Answer
from hud.environment.environment import Environment, current_session_id
from hud.environment.hints import DataFileArg, DataFileRef, DataFilesArg, GradingArg, PromptArg
from hud.environment.loader import LoadError, load_environment
from hud.environment.template import Template

if TYPE_CHECKING:
    from hud.capabilities.sandbox import DEFAULT_SYSTEM_MOUNTS, Mount, MountKind
    from hud.capabilities.workspace import Peer, Workspace

__all__ = [
    "DEFAULT_SYSTEM_MOUNTS",
    "Answer",
    "Capability",
    "DataFileArg",
    "DataFileRef",
    "DataFilesArg",
    "Environment",
    "GradingArg",
    "LoadError",
    "Mount",
    "MountKind",
    "Peer",
    "PromptArg",
    "Template",
    "Workspace",
    "current_session_id",
    "load_environment",
]

#: Workspace names, imported on first use (they pull in asyncssh).
_LAZY = {
    "Workspace": "hud.capabilities.workspace",
    "Peer": "hud.capabilities.workspace",
    "Mount": "hud.capabilities.sandbox",
    "MountKind": "hud.capabilities.sandbox",
    "DEFAULT_SYSTEM_MOUNTS": "hud.capabilities.sandbox",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.environment' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
