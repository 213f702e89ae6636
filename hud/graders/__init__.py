"""Graders: score models, reusable graders, combinators and text scorers."""

from hud.graders.base import Grader
from hud.graders.bash import BashGrader
from hud.graders.combine import combine, combine_all, combine_any
from hud.graders.llm import LLMJudgeGrader
from hud.graders.scores import EvaluationResult, SubScore
from hud.graders.text import (
    contains,
    contains_all,
    contains_any,
    exact_match,
    f1_score,
    normalize,
    numeric_match,
)

__all__ = [
    "BashGrader",
    "EvaluationResult",
    "Grader",
    "LLMJudgeGrader",
    "SubScore",
    "combine",
    "combine_all",
    "combine_any",
    "contains",
    "contains_all",
    "contains_any",
    "exact_match",
    "f1_score",
    "normalize",
    "numeric_match",
]
