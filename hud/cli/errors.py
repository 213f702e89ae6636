"""Errors the CLI reports as one line (no traceback unless -vv)."""

from __future__ import annotations


class CLIError(Exception):
    """A user-facing failure: ``message`` is printed as ``Error: ...``, then ``hint`` if any."""

    def __init__(self, message: str, *, hint: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
