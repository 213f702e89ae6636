"""Tables of the environment registry, builds and tasksets (spec platform.md §3, §4, §14).

Kept apart from `schema` so their migration (``0200_deploy``) owns them; they join the same
``metadata``. Environment secrets are stored only as Fernet tokens (`hud.platform.services.vault`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import Table as _Table

from hud.platform.db.schema import metadata

#: Registry entries: one per (team, normalized name); builds are its versions.
environments = _Table(
    "environments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("project_id", Uuid, nullable=True),
    Column("name", String(200), nullable=False),
    Column("runtime_provider", String(32), nullable=True),
    Column("runtime_config", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team_id", "name"),
)

#: Environment secrets (``environment_variables`` of a trigger), each value a Fernet token.
environment_secrets = _Table(
    "environment_secrets",
    metadata,
    Column("environment_id", Uuid, ForeignKey("environments.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One build: an upload, then (once triggered) an image of an environment's next version.
builds = _Table(
    "builds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("user_id", Uuid, nullable=True),
    Column("environment_id", Uuid, nullable=True),
    Column("name", String(200), nullable=True),  # as the client sent it
    Column("status", String(16), nullable=False),  # UPLOADING|IN_PROGRESS|SUCCEEDED|FAILED
    Column("upload_token", String(64), nullable=False),  # SHA-256 of the upload URL's token
    Column("upload_key", String(200), nullable=True),  # storage key, once uploaded
    Column("no_cache", Integer, nullable=False, default=0),
    Column("build_args", JSON, nullable=True),
    Column("runtime_config", JSON, nullable=True),
    Column("version", Integer, nullable=True),
    Column("uri", String(500), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("manifest", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index(None, "environment_id", "version"),
)

tasksets = _Table(
    "tasksets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("project_id", Uuid, nullable=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team_id", "name"),
)

#: Tasks, upserted by (taskset, slug ``name``); ``extra`` holds validation, agent_config,
#: columns, runtime_config and verifier as uploaded.
tasks = _Table(
    "tasks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("taskset_id", Uuid, ForeignKey("tasksets.id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("env", String(200), nullable=False),
    Column("task_id", String(200), nullable=False),
    Column("args", JSON, nullable=False),
    Column("extra", JSON, nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("taskset_id", "name"),
)
