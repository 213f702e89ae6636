"""Agents: the `Agent` contract, offline agents, provider agents and the factory.

Provider agents and their configs load on first use (``hud.agents.ClaudeAgent``), so importing
this package stays light for CLI start-up; provider SDKs load only when a model is called.
"""

from typing import Any

from hud.agents.base import Agent, AgentConfig
from hud.agents.factory import (
    AgentSpec,
    ProviderAgentUnavailableError,
    UnknownAgentError,
    agent_names,
    create_agent,
    resolve_agent,
)
from hud.agents.offline import NopAgent, OracleAgent
from hud.agents.replay import ReplayAgent

#: Lazily imported names -> module.
_LAZY = {
    "ClaudeAgent": "hud.agents.claude",
    "ClaudeConfig": "hud.agents.claude",
    "OpenAIAgent": "hud.agents.openai_agent",
    "OpenAIConfig": "hud.agents.openai_agent",
    "GeminiAgent": "hud.agents.gemini",
    "GeminiConfig": "hud.agents.gemini",
    "OpenAIChatAgent": "hud.agents.openai_chat",
    "OpenAIChatConfig": "hud.agents.openai_chat",
    "ToolAgent": "hud.agents.tool_agent",
    "ToolAgentConfig": "hud.agents.tool_agent",
    "MissingKeyError": "hud.agents.tool_agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hud.agents' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "ClaudeAgent",
    "ClaudeConfig",
    "GeminiAgent",
    "GeminiConfig",
    "MissingKeyError",
    "NopAgent",
    "OpenAIAgent",
    "OpenAIChatAgent",
    "OpenAIChatConfig",
    "OpenAIConfig",
    "OracleAgent",
    "ProviderAgentUnavailableError",
    "ReplayAgent",
    "ToolAgent",
    "ToolAgentConfig",
    "UnknownAgentError",
    "agent_names",
    "create_agent",
    "resolve_agent",
]
