"""`Agent`: anything with ``async __call__(run)`` leaving its answer in ``run.trace.content``."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from hud.eval.run import Run


class AgentConfig(BaseModel):
    """Settings shared by agents (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    auto_respond: bool = False
    max_steps: int = 10
    timeout_seconds: float | None = None
    tool_timeout_seconds: float | None = None
    system_prompt: str | None = None
    model: str | None = None


class Agent(abc.ABC):
    """Base class of agents. Subclasses implement `__call__`; keep no state across runs."""

    config: AgentConfig = AgentConfig()
    name: str = "agent"

    def __init__(self, config: AgentConfig | None = None, **kwargs: Any) -> None:
        base = config or type(self).config
        self.config = base.model_copy(update=kwargs) if kwargs else base

    @abc.abstractmethod
    async def __call__(self, run: Run) -> None:
        """Work on ``run`` and set ``run.trace.content`` to the answer."""

    def max_steps(self, run: Run) -> int:
        """The step budget: the row's ``agent_config.max_steps`` wins over the agent's (G15)."""
        value = run.agent_config.get("max_steps", self.config.max_steps)
        return int(value)
