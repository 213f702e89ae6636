"""Agents: the `Agent` contract, offline agents and the factory."""

from hud.agents.base import Agent, AgentConfig
from hud.agents.offline import NopAgent, OracleAgent

__all__ = ["Agent", "AgentConfig", "NopAgent", "OracleAgent"]
