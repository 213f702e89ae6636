"""`LLMJudgeGrader`: placeholder until a model provider is wired in."""

from __future__ import annotations

from typing import Any

from hud.graders.base import Grader
from hud.graders.scores import SubScore


class LLMJudgeGrader(Grader):
    """Grades an answer against natural-language criteria with an LLM (not available yet)."""

    name = "LLMJudgeGrader"

    @classmethod
    async def compute_score(
        cls,
        answer: str | Any = "",
        criteria: list[str | tuple[str, float]] | None = None,
        question: str = "",
        model: str = "claude-haiku-4-5",
        **kwargs: Any,
    ) -> SubScore:
        """Not implemented: needs a chat-completions provider."""
        raise NotImplementedError("LLMJudgeGrader needs a provider; see issue 4")
