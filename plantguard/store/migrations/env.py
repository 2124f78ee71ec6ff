"""Alembic environment: migrations always run on a connection the store hands in."""

from __future__ import annotations

from alembic import context

from plantguard.store import records_schema as _records_schema  # noqa: F401 - its tables
from plantguard.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
