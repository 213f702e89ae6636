"""`Task`: the portable row naming an environment, a template and its arguments."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hud.types.runtime_config import RuntimeConfig


def default_slug(task_id: str, args: dict[str, Any]) -> str:
    """``id`` without args, else ``id-<first 8 hex of sha1(sorted-key JSON of args)>``.

    The JSON uses Python's default separators and ASCII escaping so slugs match the reference.
    """
    if not args:
        return task_id
    text = json.dumps(args, sort_keys=True, default=str)
    return f"{task_id}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


class Task(BaseModel):
    """One runnable row: ``env`` + template ``id`` + ``args`` (+ optional metadata)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    env: str = Field(min_length=1)
    id: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    slug: str = Field(default="", validate_default=False)
    validation: list[dict[str, Any]] | None = None
    agent_config: dict[str, Any] | None = None
    columns: dict[str, Any] | None = None
    runtime_config: RuntimeConfig | None = None
    verifier: Task | None = None

    #: The live `hud.Environment` this row was minted from (typed loosely: environments sit
    #: above this layer).
    _env: Any = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _fill_slug(cls, data: Any) -> Any:
        if isinstance(data, dict) and "slug" not in data and isinstance(data.get("id"), str):
            args = data.get("args")
            data = {
                **data,
                "slug": default_slug(data["id"], args if isinstance(args, dict) else {}),
            }
        return data

    @field_validator("slug")
    @classmethod
    def _slug_nonempty(cls, v: str) -> str:
        if not v:
            raise ValueError("slug must be a non-empty string")
        return v

    @field_validator("args", mode="before")
    @classmethod
    def _args_default(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("verifier")
    @classmethod
    def _flat_verifier(cls, v: Task | None) -> Task | None:
        if v is not None and v.verifier is not None:
            raise ValueError("nested verifier tasks are not supported")
        return v

    def to_row(self) -> dict[str, Any]:
        """The JSON row written by ``Taskset.to_file`` (None fields omitted)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_unset=False)

    @property
    def environment(self) -> Any:
        """The live environment this task was minted from, if any."""
        return self._env

    def __repr__(self) -> str:
        return f"Task(env={self.env!r}, id={self.id!r}, slug={self.slug!r}, args={self.args!r})"

    async def run(
        self,
        agent: Any,
        *,
        runtime: Any = None,
        group: int | None = None,
        max_concurrent: int | None = None,
        job: Any = None,
        rollout_timeout: float | None = None,
    ) -> Any:
        """Run this one task (``Taskset(slug, [task]).run(...)``); returns the `Job`.

        The job runner lives in `hud.eval`, above this layer: it is found through the
        ``run_task`` hook (`hud.types.hooks`).
        """
        from hud.types.hooks import hook

        return await hook("run_task")(
            self,
            agent,
            runtime=runtime,
            group=group,
            max_concurrent=max_concurrent,
            job=job,
            rollout_timeout=rollout_timeout,
        )
