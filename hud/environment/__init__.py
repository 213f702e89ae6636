"""Environments: templates, lifecycle hooks, capabilities, and the control-channel server."""

from hud.capabilities import Capability
from hud.environment.answer import Answer
from hud.environment.environment import Environment, current_session_id
from hud.environment.hints import DataFileArg, DataFileRef, DataFilesArg, GradingArg, PromptArg
from hud.environment.loader import LoadError, load_environment
from hud.environment.template import Template

__all__ = [
    "Answer",
    "Capability",
    "DataFileArg",
    "DataFileRef",
    "DataFilesArg",
    "Environment",
    "GradingArg",
    "LoadError",
    "PromptArg",
    "Template",
    "current_session_id",
    "load_environment",
]
