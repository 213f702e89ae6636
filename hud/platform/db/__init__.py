"""The platform's database: an async SQLAlchemy engine on embedded SQLite (WAL) or PostgreSQL,
migrated with Alembic at start. Services open short transactions with `Database.read` and
`Database.write`; on SQLite writers take one asyncio lock so they queue instead of failing with
``database is locked``."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hud.platform.db import deploy_schema as deploy_schema
from hud.platform.db import gateway_schema as gateway_schema
from hud.platform.db import rollouts_schema as rollouts_schema
from hud.platform.db.schema import metadata

__all__ = ["Database", "async_url", "metadata", "redact_url"]

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(url: str) -> str:
    """``postgresql://`` / ``sqlite:///`` URLs with the async driver this platform uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://…")
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


def _json_dumps(value: Any) -> str:
    """JSON columns' encoder: orjson's (run reports write thousands of spans a second), the
    standard library's for what orjson refuses (keys that are not strings, integers past 64
    bits). orjson writes NaN and infinities, which JSON lacks, as null."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (as orjson writes them; PostgreSQL refuses
    them in JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One engine plus the transaction helpers services use."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # (reads keep the standard decoder: orjson turns integers past 64 bits into floats)
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps}
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._kwargs = kwargs
        self._async_commit: AsyncEngine | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[AsyncConnection]:
        """A write transaction. ``durable=False`` (run reports, which are telemetry) lets
        PostgreSQL acknowledge the commit before its WAL reaches disk: a crash of the database
        server itself may lose the last fraction of a second of reports, a crash of the
        platform loses nothing committed. SQLite runs WAL with ``synchronous=NORMAL`` always."""
        if self._write_lock is None:
            async with (self.engine if durable else self._async_commit_engine()).begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection for idempotent telemetry writes whose every statement commits on its
        own: on PostgreSQL no ``BEGIN``/``COMMIT`` round trips, and commits acknowledged before
        their WAL reaches disk (as ``write(durable=False)``); on SQLite a write transaction.
        A failure part-way leaves the statements before it committed."""
        if self._write_lock is not None:
            async with self.write() as conn:
                yield conn
            return
        async with self._async_commit_engine().connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def _async_commit_engine(self) -> AsyncEngine:
        """PostgreSQL connections whose sessions run ``synchronous_commit=off`` (set when they
        connect, so a transaction costs no extra round trip)."""
        if self._async_commit is None:
            self._async_commit = create_async_engine(
                self.url,
                **self._kwargs,
                connect_args={"server_settings": {"synchronous_commit": "off"}},
            )
        return self._async_commit

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._async_commit is not None:
            await self._async_commit.dispose()


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Any) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
