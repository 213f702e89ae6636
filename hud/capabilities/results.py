"""Results shared by both sides of a capability (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CommandResult:
    """One finished command: ``exit_code`` is None when it timed out or was killed."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def returncode(self) -> int | None:
        return self.exit_code

    @property
    def exit_status(self) -> int | None:
        return self.exit_code

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def __getitem__(self, key: str) -> Any:  # mapping-style access, as BashGrader reads
        return getattr(self, key)
