"""Alembic environment: runs on the connection ``Store.migrate`` passes in (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from connectors.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only Store.migrate drives migrations
    raise RuntimeError("run migrations through connectors.store.Store.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
