"""Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL, and
running them again (every start does) is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.platform.helpers import requires_extra

pytestmark = requires_extra


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_migrations_match_schema(kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from hud.platform.db import Database, metadata

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database("migr")
    db = Database(url)
    try:
        await db.migrate()
        await db.migrate()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
        assert diff == []
        assert set(metadata.tables) <= tables and "alembic_version" in tables
        assert version is not None
    finally:
        await db.close()
