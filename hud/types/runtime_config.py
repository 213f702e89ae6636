"""`RuntimeConfig`: where and with what resources a task row wants to run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuntimeGPU(_Strict):
    type: str | list[str] | None = None
    count: int = Field(default=1, ge=1)


class RuntimeTPU(_Strict):
    type: str
    topology: str

    @field_validator("topology")
    @classmethod
    def _topology(cls, v: str) -> str:
        if not re.fullmatch(r"\d+(x\d+)+", v):
            raise ValueError("topology must look like NxM[xK...]")
        return v


class RuntimeResources(_Strict):
    cpu: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    storage_mb: int | None = Field(default=None, gt=0)
    gpu: RuntimeGPU | None = None
    os: str | None = None
    tpu: RuntimeTPU | None = None


class RuntimeLimits(_Strict):
    startup_timeout_s: int | None = Field(default=None, gt=0)
    run_timeout_s: int | None = Field(default=None, gt=0)
    # Ours: the rollout's workspace sandbox limits (`hud.environment.workspace.Limits`), sent
    # with ``tasks.start``; unset ones keep the env's.
    pids: int | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=None, gt=0)
    disk_mb: int | None = Field(default=None, gt=0)

    def workspace_limits(self) -> dict[str, Any]:
        """The workspace limits this row sets (``pids``, ``memory_mb``, ``cpus``, ``disk_mb``)."""
        names = ("pids", "memory_mb", "cpus", "disk_mb")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


class ComposeProject(_Strict):
    document: str | dict[str, Any]
    root: str | dict[str, Any] | None = None
    service_access: bool | None = None


class RuntimeConfig(_Strict):
    image: str | None = None
    compose: ComposeProject | None = None
    resources: RuntimeResources | None = None
    limits: RuntimeLimits | None = None

    @model_validator(mode="after")
    def _one_substrate(self) -> RuntimeConfig:
        if self.image is not None and self.compose is not None:
            raise ValueError("runtime_config takes image or compose, not both")
        return self

    @property
    def needs_container(self) -> bool:
        return self.image is not None or self.compose is not None

    def resolved(self, base: Path) -> RuntimeConfig:
        """Resolve relative compose paths against ``base`` (a task file's directory)."""
        if self.compose is None:
            return self
        compose = self.compose
        document = compose.document
        if isinstance(document, str) and not Path(document).is_absolute():
            document = str((base / document).resolve())
        root = compose.root
        if isinstance(root, str) and not Path(root).is_absolute():
            root = str((base / root).resolve())
        return self.model_copy(
            update={"compose": compose.model_copy(update={"document": document, "root": root})}
        )
