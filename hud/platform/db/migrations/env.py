"""Alembic environment: migrations run on the connection `Database.migrate` passes in."""

from __future__ import annotations

from alembic import context

from hud.platform.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the platform always passes its connection
    raise RuntimeError("run migrations through hud.platform.db.Database.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
