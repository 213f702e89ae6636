"""Combining subscores: weighted `combine`, and `combine_any` / `combine_all` (max / min)."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import Any

from hud.graders.scores import CLAMPED, TOLERANCE, EvaluationResult, SubScore, log


def dedupe_names(names: list[str]) -> list[str]:
    """Rename every repeated name to ``name-1``, ``name-2``, … avoiding all other names."""
    counts = Counter(names)
    taken = set(names)
    next_suffix: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        if counts[name] < 2:
            out.append(name)
            continue
        k = next_suffix.get(name, 1)
        while f"{name}-{k}" in taken:
            k += 1
        new = f"{name}-{k}"
        taken.add(new)
        next_suffix[name] = k + 1
        out.append(new)
    return out


def _renamed(subscores: list[SubScore]) -> list[SubScore]:
    names = dedupe_names([s.name for s in subscores])
    return [s.model_copy(update={"name": n}) for s, n in zip(subscores, names, strict=True)]


def _type_error(item: Any) -> TypeError:
    return TypeError(f"Expected SubScore or Awaitable[SubScore], got {type(item).__name__}")


async def _resolve(item: SubScore | Awaitable[SubScore]) -> SubScore:
    if isinstance(item, SubScore):
        return item
    result = await item
    if not isinstance(result, SubScore):
        raise _type_error(result)
    return result


async def combine(*items: SubScore | Awaitable[SubScore], clamp: bool = False) -> EvaluationResult:
    """Await ``items`` concurrently and combine them into an `EvaluationResult`.

    Positive weights are normalized to sum to 1 (a warning is logged unless they already sum to
    ~1); negative weights (penalties) are kept as given; repeated names get ``-1``, ``-2``, ….
    The reward is Σ value·weight and may fall below 0 unless ``clamp=True`` clamps it to [0, 1].
    """
    if not items:
        raise ValueError("subscores must not be empty")
    for item in items:
        if not isinstance(item, SubScore) and not inspect.isawaitable(item):
            for other in items:
                if inspect.iscoroutine(other):
                    other.close()
            raise _type_error(item)
    subscores = list(await asyncio.gather(*(_resolve(item) for item in items)))
    positive = sum(s.weight for s in subscores if s.weight > 0)
    if positive <= 0:
        raise ValueError("subscores must include at least one positive weight")
    if abs(positive - 1.0) > TOLERANCE:
        log.warning(
            "grader weights sum to %.4f, not 1.0; normalizing, but the effective weights differ "
            "from what you set. Make the positive weights sum to 1.0 to silence this.",
            positive,
        )
    names = dedupe_names([s.name for s in subscores])
    normalized = [
        s.model_copy(
            update={"name": n, "weight": s.weight / positive if s.weight > 0 else s.weight}
        )
        for s, n in zip(subscores, names, strict=True)
    ]
    reward = sum(s.value * s.weight for s in normalized)
    if clamp:
        reward = min(max(reward, 0.0), 1.0)
    return EvaluationResult.model_validate(
        {"reward": reward, "subscores": normalized}, context={CLAMPED: clamp}
    )


def combine_any(weight: float, subscores: Iterable[SubScore], *, name: str = "any") -> SubScore:
    """A `SubScore` worth the best of ``subscores`` (kept as children, names deduped)."""
    children = _renamed(list(subscores))
    if not children:
        raise ValueError("subscores must not be empty")
    return SubScore(
        name=name, weight=weight, value=max(s.value for s in children), children=children
    )


def combine_all(weight: float, subscores: Iterable[SubScore], *, name: str = "all") -> SubScore:
    """A `SubScore` worth the worst of ``subscores`` (kept as children, names deduped)."""
    children = _renamed(list(subscores))
    if not children:
        raise ValueError("subscores must not be empty")
    return SubScore(
        name=name, weight=weight, value=min(s.value for s in children), children=children
    )
