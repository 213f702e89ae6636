"""Score models live in `hud.types.scores` (environments normalise rewards with them too); this
module keeps the graders' import path."""

from hud.types.scores import CLAMPED, TOLERANCE, EvaluationResult, SubScore, log

__all__ = ["CLAMPED", "TOLERANCE", "EvaluationResult", "SubScore", "log"]
