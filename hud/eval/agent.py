"""`AgentProtocol`: what the eval engine needs of an agent.

An agent is anything that, awaited with a `Run`, works on it and leaves its answer in
``run.trace.content``: a `hud.agents.Agent` subclass or a plain ``async def agent(run)``. The
engine reads ``agent.config.timeout_seconds`` too, where it exists (`hud.eval.rollout`). The
agents package sits above this one, so the engine names the contract rather than the base class.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hud.eval.run import Run

__all__ = ["AgentProtocol"]


class AgentProtocol(Protocol):
    """``await agent(run)``: work on ``run`` and set ``run.trace.content`` to the answer."""

    def __call__(self, run: Run, /) -> Awaitable[None]: ...
