"""Text-answer scorers: plain functions returning 0.0/1.0 (or an F1 score)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalize(text: str | Any) -> str:
    """Lowercase, punctuation to spaces, drop the articles a/an/the, collapse whitespace."""
    lowered = str(text).lower()
    return " ".join(_ARTICLES.sub(" ", _PUNCT.sub(" ", lowered)).split())


def exact_match(answer: str | Any, expected: str, *, normalize_text: bool = True) -> float:
    """1.0 if the answer equals ``expected`` (normalized, else stripped and case-folded)."""
    if normalize_text:
        return 1.0 if normalize(answer) == normalize(expected) else 0.0
    return 1.0 if str(answer).strip().lower() == str(expected).strip().lower() else 0.0


def _prepare(text: Any, case_sensitive: bool) -> str:
    text = str(text)
    return text if case_sensitive else text.lower()


def contains(answer: str | Any, substring: str, *, case_sensitive: bool = False) -> float:
    """1.0 if ``substring`` occurs in the answer."""
    haystack = _prepare(answer, case_sensitive)
    return 1.0 if _prepare(substring, case_sensitive) in haystack else 0.0


def contains_any(
    answer: str | Any, substrings: Iterable[str], *, case_sensitive: bool = False
) -> float:
    """1.0 if at least one of ``substrings`` occurs in the answer."""
    haystack = _prepare(answer, case_sensitive)
    return 1.0 if any(_prepare(s, case_sensitive) in haystack for s in substrings) else 0.0


def contains_all(
    answer: str | Any, substrings: Iterable[str], *, case_sensitive: bool = False
) -> float:
    """1.0 if every one of ``substrings`` occurs in the answer (vacuously true when empty)."""
    haystack = _prepare(answer, case_sensitive)
    return 1.0 if all(_prepare(s, case_sensitive) in haystack for s in substrings) else 0.0


def numeric_match(answer: str | Any, expected: float, *, tolerance: float = 0.0) -> float:
    """1.0 if the first number in the answer is within ``tolerance`` of ``expected``."""
    match = _NUMBER.search(str(answer))
    if match is None:
        return 0.0
    try:
        found = float(match.group())
    except ValueError:
        return 0.0
    return 1.0 if abs(found - float(expected)) <= tolerance else 0.0


def f1_score(answer: str | Any, reference: str) -> float:
    """Token-level F1 between the normalized answer and reference (0.0 if either is empty)."""
    predicted = normalize(answer).split()
    gold = normalize(reference).split()
    if not predicted or not gold:
        return 0.0
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)
