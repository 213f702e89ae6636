"""`Answer[T]`: what a template with ``returns=T`` receives from the agent."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")


class Answer(BaseModel, Generic[T]):
    """The agent's answer: ``content`` parsed as the declared type when possible, ``raw`` text."""

    content: Any = None
    raw: str = ""

    def __str__(self) -> str:
        return self.raw


def parse_answer(raw: Any, returns: Any) -> Answer[Any]:
    """Parse an answer for a template declared with ``returns=T``.

    A string is validated as JSON text for ``T``, anything else as a value; on failure the raw
    value is kept as content.
    """
    if raw is None:
        raw = ""
    adapter = TypeAdapter(returns)
    content: Any = raw
    try:
        content = (
            adapter.validate_json(raw) if isinstance(raw, str) else adapter.validate_python(raw)
        )
    except Exception:
        content = raw
    return Answer(content=content, raw=raw if isinstance(raw, str) else str(raw))
