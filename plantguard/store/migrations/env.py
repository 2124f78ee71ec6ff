"""Alembic environment: migrations always run on a connection the store hands in."""

from __future__ import annotations

from alembic import context

from plantguard.store import records_schema as _records_schema  # noqa: F401 - its tables
from plantguard.store.schema import metadata

connection = context.config.attributes["connection"]


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the day partitions of ``history`` (plantguard.store.partitions) out of
    comparisons: they are made at run time, not by migrations."""
    return not (type_ == "table" and name is not None and name.startswith("history_"))


context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_name=_ours,
)
with context.begin_transaction():
    context.run_migrations()
