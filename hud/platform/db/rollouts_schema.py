"""The hosted rollout queue (spec platform.md §6): one row per rollout that is queued or
running, so a platform that restarts (or crashed) on the same data runs what was waiting and
retries what was running (`hud.platform.services.rollouts`). A rollout's row is deleted once
its trace is finished; the trace keeps the outcome.

Kept apart from `schema` so the rollouts migration (``0400_rollouts``) owns it; it joins the
same ``metadata``. The submitting key, which the worker reports with, is stored only as a
Fernet token (`hud.platform.services.vault`); the environment's secrets are not stored here
at all (they are read again from the environment when the rollout is launched).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy import Table as _Table

from hud.platform.db.schema import metadata

hosted_rollouts = _Table(
    "hosted_rollouts",
    metadata,
    Column("trace_id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("job_id", Uuid, nullable=True),
    Column("state", String(16), nullable=False),  # queued|running
    Column("attempts", Integer, nullable=False),
    #: The worker's spec without the environment's secrets.
    Column("spec", JSON, nullable=False),
    #: The environment (registry id) whose secrets the worker gets at launch.
    Column("registry_id", String(64), nullable=True),
    Column("key_enc", Text, nullable=False),
    Column("base_url", String(2000), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "state", "created_at"),
)
