"""Score models: `SubScore` (one node of a grade breakdown) and `EvaluationResult`."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

log = logging.getLogger("hud.graders")

#: Tolerance for "weights sum to ~1" and "subscores match the reward".
TOLERANCE = 0.01

#: Validation-context key: the reward was clamped to [0, 1] on purpose (``combine(clamp=True)``).
CLAMPED = "hud_graders_clamped"


class SubScore(BaseModel):
    """One node of a grade breakdown; a parent keeps its inputs in ``children``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Component name")
    weight: float = Field(default=1.0, description="Weight; negative weights are penalties")
    value: float = Field(ge=0.0, le=1.0, description="Score in [0, 1]")
    children: list[SubScore] | None = Field(
        default=None, description="Subscores this node was derived from"
    )
    info: dict[str, Any] | None = Field(
        default=None,
        validation_alias=AliasChoices("info", "metadata"),
        description="Grader details (kept on spans, dropped from summaries)",
    )

    @property
    def score(self) -> float:
        """Alias of `value`."""
        return self.value

    @property
    def metadata(self) -> dict[str, Any] | None:
        """Alias of `info`."""
        return self.info

    def to_summary(self) -> dict[str, Any]:
        """The breakdown without ``info``, recursively."""
        return {
            "name": self.name,
            "weight": self.weight,
            "value": self.value,
            "children": None
            if self.children is None
            else [child.to_summary() for child in self.children],
        }


class EvaluationResult(BaseModel):
    """A final grade. Inconsistent subscores only log warnings (logger ``hud.graders``)."""

    model_config = ConfigDict(extra="allow")

    reward: float = Field(default=0.0, description="Final score, usually in [0, 1]")
    done: bool = Field(default=True, description="Whether the episode is complete")
    content: str | None = Field(default=None, description="Human-readable explanation")
    info: dict[str, Any] = Field(default_factory=dict, description="Additional metadata")
    isError: bool = Field(default=False, description="Whether the evaluation itself failed")
    subscores: list[SubScore] | None = Field(default=None, description="Score breakdown")

    @model_validator(mode="after")
    def _check_subscores(self, info: ValidationInfo) -> EvaluationResult:
        if not self.subscores:
            return self
        names = [s.name for s in self.subscores]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            log.warning("Duplicate subscore names: %s", duplicates)
        positive = sum(s.weight for s in self.subscores if s.weight > 0)
        if abs(positive - 1.0) > TOLERANCE:
            log.warning(
                "Positive subscore weights should sum to ~1.0 (got %.4f). "
                "Weights represent proportional contributions to the reward.",
                positive,
            )
        total = sum(s.value * s.weight for s in self.subscores)
        expected = total
        if info.context and info.context.get(CLAMPED):
            expected = min(max(total, 0.0), 1.0)
        if abs(expected - self.reward) > TOLERANCE:
            log.warning(
                "Subscores don't match reward: sum(value*weight)=%.4f but reward=%.4f",
                total,
                self.reward,
            )
        return self

    @classmethod
    def from_float(cls, value: float) -> EvaluationResult:
        """A result whose reward is ``value``."""
        return cls(reward=value)
