"""A started task: the suspended template generator between `tasks.start` and `tasks.grade`."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from hud.environment.answer import parse_answer
from hud.environment.environment import current_session_id
from hud.protocol.errors import HudError

if TYPE_CHECKING:
    from hud.environment.environment import Environment
    from hud.environment.template import Template

log = logging.getLogger("hud.environment")


class TaskError(HudError):
    """A template failed; the message is sent to the client as a ``-32000`` error."""


def json_safe(value: Any) -> Any:
    """Models -> JSON dumps, tuples -> lists, recursively; unknown objects -> str."""
    return to_jsonable_python(value, fallback=str)


def start_frame(first: Any) -> dict[str, Any]:
    """The `tasks.start` result for a template's first yield."""
    if isinstance(first, dict) and "prompt" in first:
        return json_safe(first)
    return {"prompt": json_safe(first)}


def grade_frame(value: Any, task_id: str) -> dict[str, Any]:
    """Normalize a template's second yield into a grade frame with a numeric ``score``."""
    from hud.types.scores import EvaluationResult, SubScore

    if isinstance(value, dict):
        score = value.get("score")
        if not isinstance(score, (int, float)):
            raise TaskError(
                f"task '{task_id}' graded with a dict missing a numeric 'score' "
                f"(keys: {sorted(map(str, value))!r})"
            )
        frame = json_safe(value)
        frame["score"] = float(score)
        return frame
    if isinstance(value, EvaluationResult):
        dumped = value.model_dump(mode="json")
        reward = dumped.pop("reward")
        dumped["score"] = float(reward)
        return dumped
    if isinstance(value, SubScore):
        return {"score": float(value.value), "subscores": [json_safe(value.to_summary())]}
    if isinstance(value, (int, float)):
        return {"score": float(value)}
    reward = getattr(value, "reward", None)
    if isinstance(reward, (int, float)):
        return {"score": float(reward)}
    raise TaskError(
        f"task graded with {type(value).__name__}: yield a number, an object with a numeric "
        ".reward, or a dict containing a numeric 'score'"
    )


class TaskRunner:
    """Drives one template generator through start, grade and close."""

    def __init__(
        self,
        env: Environment,
        template: Template,
        gen: AsyncGenerator[Any, Any],
        session_id: str,
        args: dict[str, Any] | None = None,
    ) -> None:
        self.args = args or {}
        self.env = env
        self.template = template
        self.gen = gen
        self.session_id = session_id
        self.closed = False

    @property
    def task_id(self) -> str:
        return self.template.id

    async def start(self) -> dict[str, Any]:
        """Run task-start hooks and the template to its first yield, then task-ready hooks,
        with the session id set. On failure the runner is closed and `TaskError` raised."""
        token = current_session_id.set(self.session_id)
        try:
            return await self._start()
        finally:
            current_session_id.reset(token)

    async def _start(self) -> dict[str, Any]:
        try:
            await self.env.run_task_start(self.session_id)
            first = await self.gen.__anext__()
        except StopAsyncIteration:
            # The reference replies with an empty message here; official peers may rely on it.
            await self.close()
            raise TaskError("") from None
        except BaseException as exc:
            await self.close()
            if isinstance(exc, Exception):
                raise TaskError(
                    f"task '{self.task_id}' failed during setup: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        try:
            frame = start_frame(first)
        except Exception as exc:
            await self.close()
            message = f"task '{self.task_id}' yielded a prompt that is not JSON: {exc}"
            raise TaskError(message) from exc
        await self.env.run_task_ready(self.session_id)
        return frame

    async def grade(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send the answer, read the reward, then close (single-shot)."""
        raw = payload.get("answer")
        returns = self.template.return_type
        answer = parse_answer(raw, returns) if returns is not None else raw
        token = current_session_id.set(self.session_id)
        try:
            try:
                await self.env.run_task_grading(self.session_id)
            except Exception as exc:
                log.warning("task %r cannot be graded: %s", self.task_id, exc)
                raise TaskError(str(exc)) from exc
            try:
                value = await self.gen.asend(answer)
            except StopAsyncIteration:
                return {"score": 0.0}
            except Exception as exc:
                log.warning("task %r failed during grading: %r", self.task_id, exc)
                raise TaskError(str(exc)) from exc
            return grade_frame(value, self.task_id)
        finally:
            current_session_id.reset(token)
            await self.close()

    async def close(self) -> None:
        """Close the generator (code after the reward runs) and run teardown hooks once."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.gen.aclose()
        except Exception:
            log.exception("task %r raised while closing", self.task_id)
        await self.env.run_teardown(self.session_id)
