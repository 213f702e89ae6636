"""Agents that need no model: `OracleAgent`, `NopAgent`."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from hud.agents.base import Agent
from hud.protocol.errors import HudError
from hud.types.trace import AgentStep

if TYPE_CHECKING:
    from hud.environment.template import Template
    from hud.eval.run import Run


class NoSolutionError(HudError, LookupError):
    """The task's template declares no reference solution."""


def _template_for(run: Run) -> Template:
    task = run.task
    env = task.environment if task is not None else None
    if env is None and task is not None and task._source:
        from pathlib import Path

        from hud.environment import load_environment
        from hud.eval.sources import env_target_for

        env = load_environment(env_target_for(Path(task._source)), name=task.env)
    if env is None:
        raise NoSolutionError(
            f"cannot find the template of task {run.task_id!r}: the oracle needs tasks loaded "
            "from an env source (.py file or a directory)"
        )
    template = env.tasks.get(run.task_id)
    if template is None:
        raise NoSolutionError(f"environment {env.name!r} has no template {run.task_id!r}")
    return template


async def solve(run: Run) -> Any:
    """The reference answer: the template's ``solution`` literal, or its result on ``run``."""
    template = _template_for(run)
    solution = template.solution
    if solution is None:
        raise NoSolutionError(
            f"template {template.id!r} declares no reference solution; add "
            "solution=<answer or callable(run)> to @env.template"
        )
    if callable(solution):
        result = solution(run)
        if inspect.isawaitable(result):
            result = await result
        return result
    return solution


class OracleAgent(Agent):
    """Submits the task's reference solution (``@env.template(solution=...)``)."""

    name = "oracle"

    async def __call__(self, run: Run) -> None:
        answer = await solve(run)
        text = answer if isinstance(answer, str) or answer is None else str(answer)
        run.record(AgentStep(content=text, done=True, finish_reason="stop", model="oracle"))
        run.trace.content = text


class NopAgent(Agent):
    """Submits an empty answer: a task that rewards this is suspicious."""

    name = "nop"

    async def __call__(self, run: Run) -> None:
        run.record(AgentStep(content="", done=True, finish_reason="stop", model="nop"))
        run.trace.content = ""
