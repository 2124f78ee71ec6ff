"""What is at a store URL, as far as PlantGuard is concerned — the one place that says.

Opening an existing store (:class:`plantguard.store.Store` with ``existing_only``) and
``plantguard db init|upgrade|check`` must agree on what a PlantGuard store is, or one
of them would refuse what the other accepts.  A PlantGuard store is recognised by
Alembic's ``alembic_version`` table holding a revision of PlantGuard's own migrations
(``plantguard/store/migrations``); looking creates nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from .schema import metadata

__all__ = [
    "HEAD_REVISION",
    "StoreState",
    "head_revision",
    "inspect_connection",
    "one_line_error",
    "pg_schema",
]

_MIGRATIONS = Path(__file__).with_name("migrations")

Kind = Literal["missing", "foreign", "behind", "current"]


@dataclasses.dataclass(frozen=True)
class StoreState:
    """What a connection reaches."""

    #: "missing" (no schema, no tables), "foreign" (tables that are not a PlantGuard
    #: store, or a revision this version does not know), "behind" or "current".
    kind: Kind
    #: The store's revision (None unless it has an ``alembic_version``).
    revision: str | None
    detail: str


#: The revision this PlantGuard's migrations end at, said here so that opening a current
#: store needs no alembic import (~0.1 s of every command); a test holds it to the
#: migrations folder, so a new migration that forgets it fails the suite.
HEAD_REVISION = "0007"


@functools.cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory(str(_MIGRATIONS)).walk_revisions())


def head_revision() -> str:
    """The revision this PlantGuard's migrations end at."""
    return HEAD_REVISION


def pg_schema(url: sa.URL) -> str | None:
    """The first schema of a ``-csearch_path=…`` in a PostgreSQL URL's ``options``."""
    options = url.query.get("options")
    values = [options] if isinstance(options, str) else list(options or ())
    for value in values:
        for part in urllib.parse.unquote(value).split():
            for prefix in ("-csearch_path=", "--search_path="):
                if part.startswith(prefix):
                    first = part[len(prefix) :].split(",")[0].strip().strip('"')
                    return first or None
    return None


def one_line_error(exc: BaseException) -> str:
    """A database error's own message (the driver's, not SQLAlchemy's wrapper) on one line."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _tables(conn: sa.Connection) -> set[str] | StoreState:
    if conn.dialect.name != "postgresql":
        return set(sa.inspect(conn).get_table_names())
    current = conn.exec_driver_sql("SELECT current_schema()").scalar()
    if current is None:
        schema = pg_schema(conn.engine.url)
        if schema:
            return StoreState("missing", None, f"schema {schema!r} does not exist")
        path = conn.exec_driver_sql("SHOW search_path").scalar()
        return StoreState("missing", None, f"no schema of the search_path {path} exists")
    return set(
        conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": current}
        ).scalars()
    )


def inspect_connection(conn: sa.Connection) -> StoreState:
    """What ``conn`` reaches; reads catalogues and ``alembic_version`` only."""
    tables = _tables(conn)
    if isinstance(tables, StoreState):
        return tables
    if "alembic_version" not in tables:
        if not tables:
            return StoreState("missing", None, "no tables")
        clash = sorted(tables & set(metadata.tables))
        if clash:
            return StoreState("foreign", None, f"tables {', '.join(clash)} but no alembic_version")
        return StoreState("foreign", None, f"{len(tables)} other tables, none of PlantGuard's")
    revisions = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    if len(revisions) != 1:
        return StoreState("foreign", None, f"alembic_version holds {len(revisions)} revisions")
    revision = str(revisions[0])
    head = head_revision()
    if revision == head:
        return StoreState("current", revision, f"at revision {revision}")
    if revision not in _known_revisions():
        return StoreState(
            "foreign",
            revision,
            f"alembic_version holds revision {revision!r}, not one of PlantGuard's "
            f"(a newer PlantGuard, or another application's tables; this one's head is {head})",
        )
    return StoreState("behind", revision, f"at revision {revision}, this PlantGuard's is {head}")
