"""The platform's tables (SQLAlchemy Core). Every schema change gets an Alembic migration in
``migrations/versions``; ``tests/platform/test_migrations.py`` checks the two agree."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

teams = Table(
    "teams",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("is_admin", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id"), primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), primary_key=True),
    Column("role", String(32), nullable=False, default="member"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: API keys: only a SHA-256 of the key is kept (keys are 256-bit random tokens, so a plain hash
#: is enough); ``prefix`` is the first characters, for listing.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("is_default", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team_id", "name"),
)

#: RFC 8628 device authorizations. Codes are kept hashed; the key is minted when the approved
#: code is redeemed, so no key is ever stored in clear.
device_codes = Table(
    "device_codes",
    metadata,
    Column("device_hash", String(64), primary_key=True),
    Column("user_code", String(16), nullable=False, unique=True),
    Column("client_name", String(200), nullable=False, default=""),
    Column("client_version", String(64), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # pending | approved | denied | redeemed
    Column("interval", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_poll_at", DateTime(timezone=True), nullable=True),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=True),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=True),
    Column("name", String(500), nullable=True),
    Column("group_size", Integer, nullable=True),
    Column("taskset_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "team_id", "created_at"),
)

traces = Table(
    "traces",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=True),
    Column("job_id", Uuid, nullable=True),
    Column("group_id", String(64), nullable=True),
    Column("task_slug", String(500), nullable=True),
    Column("model", String(200), nullable=True),
    Column("parent_trace_id", Uuid, nullable=True),
    Column("status", String(16), nullable=False),  # queued|running|completed|error|cancelled
    Column("reward", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("evaluation_result", JSON, nullable=True),
    Column("stop_reason", String(64), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Index(None, "job_id", "created_at"),
    Index(None, "team_id", "status"),
)

#: Spans, upserted by (trace, span id); ``data`` is the span as uploaded.
spans = Table(
    "spans",
    metadata,
    Column("trace_id", Uuid, primary_key=True),
    Column("span_id", String(64), primary_key=True),
    Column("start_time", String(40), nullable=True),
    Column("data", JSON, nullable=False),
)
