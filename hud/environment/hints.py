"""Argument hints that mark template parameters in the manifest (``x-hud-hint``)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


def _hint(name: str) -> Any:
    return Field(json_schema_extra={"x-hud-hint": name})


PromptArg = Annotated[str, _hint("prompt")]


class _HintAlias:
    """``Alias[T]`` builds ``Annotated[<shape of T>, hint]``."""

    def __init__(self, hint: str, many: bool) -> None:
        self._hint = hint
        self._many = many

    def __getitem__(self, item: Any) -> Any:
        inner = list[item] if self._many else item
        return Annotated[inner, _hint(self._hint)]

    def __repr__(self) -> str:
        return f"<hint {self._hint}>"


DataFileArg = _HintAlias("data-file", many=False)
DataFilesArg = _HintAlias("data-files", many=True)
GradingArg = _HintAlias("grading", many=True)


# A reference to an uploaded data file (no class docstring: it would become the schema's
# description, which the reference manifest does not have).
class DataFileRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_id: str = Field(description="HUD data-file id")
    path: str | None = Field(default=None, description="Environment-owned destination path")
