"""Agents: the `Agent` contract, offline agents and the factory."""

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

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "NopAgent",
    "OracleAgent",
    "ProviderAgentUnavailableError",
    "ReplayAgent",
    "UnknownAgentError",
    "agent_names",
    "create_agent",
    "resolve_agent",
]
