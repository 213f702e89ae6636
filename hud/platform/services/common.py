"""Helpers shared by the services: clock, ids, dialect-aware upserts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hud.platform.services.errors import NotFound


def now() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def parse_uuid(text: Any, what: str = "object") -> uuid.UUID:
    """A UUID from its 32-hex or dashed form; anything else is a `NotFound`."""
    try:
        return uuid.UUID(str(text))
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} {text} not found") from None


def run_id(text: Any) -> uuid.UUID:
    """A job/trace id as the client sends it (§0.5): 32 hex or dashed are one id; any other
    string maps to the same uuid5 the span exporter uses."""
    if isinstance(text, uuid.UUID):
        return text
    try:
        return uuid.UUID(str(text))
    except ValueError:
        from hud.telemetry import normalize_trace_id

        return uuid.UUID(normalize_trace_id(str(text)))


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT supporting ``on_conflict_do_*`` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
