"""`Grader`: a reusable scorer whose `grade` classmethod yields a weighted `SubScore`."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from pydantic_core import to_jsonable_python

from hud.graders.scores import SubScore


def _unserializable(value: Any) -> str:
    return f"<{type(value).__name__}: not serializable>"


def json_safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy of keyword arguments; unserializable values become placeholder strings."""
    safe: dict[str, Any] = {}
    for key, value in params.items():
        try:
            safe[key] = to_jsonable_python(value, fallback=_unserializable)
        except Exception:
            safe[key] = _unserializable(value)
    return safe


class Grader:
    """Base class for graders.

    Subclasses implement the classmethod ``compute_score(**kwargs)`` (sync or async) returning
    a float, a ``(float, info)`` pair or a `SubScore`; callers use ``await Cls.grade(weight, ...)``.
    """

    name: ClassVar[str] = "BaseGrader"

    @classmethod
    async def grade(cls, weight: float, name: str | None = None, **kwargs: Any) -> SubScore:
        """Score with ``compute_score(**kwargs)``; apply ``name``/``weight``, record parameters."""
        result: Any = cls.compute_score(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        children: list[SubScore] | None = None
        if isinstance(result, SubScore):
            value = result.value
            children = result.children
            info = dict(result.info or {})
        elif isinstance(result, tuple):
            value, extra = result
            info = dict(extra or {})
        else:
            value = result
            info = {}
        info["_parameters"] = json_safe_params(kwargs)
        return SubScore(
            name=name or cls.name,
            weight=weight,
            value=float(value),
            children=children,
            info=info,
        )

    @classmethod
    def compute_score(cls, **kwargs: Any) -> Any:
        """Return a float in [0, 1], ``(float, info)`` or a `SubScore` (may be a coroutine)."""
        raise NotImplementedError("Subclasses must implement compute_score")
