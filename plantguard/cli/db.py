"""``plantguard db init|upgrade|check URL``: create, migrate and check a store.

``URL`` is what ``--db`` takes: a SQLite file path or a SQLAlchemy URL.  A
PostgreSQL URL may name a schema of its own with
``?options=-csearch_path%3D<schema>``; ``init`` creates that schema when it is
missing.  Every expected failure (a bad URL, a driver not installed, a server
that does not answer, no store, a store that is not PlantGuard's, a store behind
this version) is one line on standard error and a non-zero status: 2 for a URL
that cannot be used at all, 3 (the store's status, as for every command) for the rest.

What a PlantGuard store is, is said once, in :mod:`plantguard.store.state`, for
these commands and for every other command opening a store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EXIT_STORE
from .common import SubParsers

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..host import PluginHost
    from ..store.state import StoreState

# SQLAlchemy, alembic and the store are imported by the functions that use them:
# building the parser (for any command) imports none of them.

__all__ = ["add_commands", "inspect_store"]


def add_commands(sub: SubParsers) -> None:
    db = sub.add_parser("db", help="create, migrate and check a store (SQLite file or URL)")
    cmds = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("init", _init, "create a new store (a PostgreSQL schema too, when missing)"),
        ("upgrade", _upgrade, "migrate an existing store to this version's schema"),
        ("check", _check, "exit 0 if a current PlantGuard store is there"),
    ):
        p = cmds.add_parser(name, help=help_text)
        p.add_argument("url", metavar="URL", help="SQLite file path or SQLAlchemy URL")
        p.set_defaults(func=func)


# --- looking at a store --------------------------------------------------------------------


class DbError(Exception):
    """An expected failure, with its one-line message and exit status."""

    def __init__(self, message: str, status: int = EXIT_STORE) -> None:
        super().__init__(message)
        self.status = status


def shown(target: str) -> str:
    """``target`` with any password masked, for messages."""
    import sqlalchemy as sa

    if "://" not in target:
        return target
    try:
        return sa.make_url(target).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return target


def _engine(target: str) -> sa.Engine:
    import sqlalchemy as sa

    from ..build import store_problem
    from ..store import database_url

    problem = store_problem(target)
    if problem is not None:
        raise DbError(f"{shown(target)}: {problem}", 2)
    return sa.create_engine(database_url(target))


def _sqlite_file(engine: sa.Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def inspect_store(target: str) -> StoreState:
    """What is at ``target``; connects (without creating anything) to find out."""
    import sqlalchemy as sa

    from ..store.state import StoreState, inspect_connection
    from ..store.state import one_line_error as _one_line

    engine = _engine(target)
    try:
        sqlite_file = _sqlite_file(engine)
        if sqlite_file is not None and (
            not sqlite_file.exists() or sqlite_file.stat().st_size == 0
        ):
            return StoreState("missing", None, f"no database file {sqlite_file}")
        try:
            with engine.connect() as conn:
                return inspect_connection(conn)
        except sa.exc.SQLAlchemyError as exc:
            raise DbError(f"{shown(target)}: cannot connect: {_one_line(exc)}") from None
    finally:
        engine.dispose()


# --- the commands ----------------------------------------------------------------------------


def _run(action: str, args: argparse.Namespace) -> int:
    try:
        message = _ACTIONS[action](args.url)
    except DbError as exc:
        print(f"plantguard db {action}: {exc}", file=sys.stderr)
        return exc.status
    print(message)
    return 0


def _init(args: argparse.Namespace, host: PluginHost) -> int:
    return _run("init", args)


def _upgrade(args: argparse.Namespace, host: PluginHost) -> int:
    return _run("upgrade", args)


def _check(args: argparse.Namespace, host: PluginHost) -> int:
    return _run("check", args)


def _create_schema(target: str) -> bool:
    """Create the PostgreSQL schema ``target`` names if missing; whether it was created."""
    import sqlalchemy as sa

    from ..store.state import one_line_error as _one_line
    from ..store.state import pg_schema

    engine = _engine(target)
    try:
        schema = pg_schema(engine.url)
        if engine.dialect.name != "postgresql" or schema is None:
            return False
        with engine.begin() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
            ).scalar()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
            conn.exec_driver_sql(f"CREATE SCHEMA {quoted}")
            return True
    except sa.exc.SQLAlchemyError as exc:
        raise DbError(f"{shown(target)}: cannot create the schema: {_one_line(exc)}") from None
    finally:
        engine.dispose()


def _migrate(target: str) -> None:
    """Open the store (which migrates it to head) and close it again."""
    import sqlalchemy as sa

    from ..store import Store
    from ..store.state import one_line_error as _one_line

    try:
        Store(target).close()
    except sa.exc.SQLAlchemyError as exc:
        raise DbError(f"{shown(target)}: migration failed: {_one_line(exc)}") from None


def do_init(target: str) -> str:
    import sqlalchemy as sa

    from ..store import database_url
    from ..store.state import pg_schema

    state = inspect_store(target)
    if state.kind in ("current", "behind"):
        raise DbError(
            f"{shown(target)}: a PlantGuard store is already there ({state.detail}); "
            "use `plantguard db upgrade` to migrate it"
        )
    if state.kind != "missing":
        raise DbError(f"{shown(target)}: not a PlantGuard store ({state.detail}); left alone")
    created = _create_schema(target)
    _migrate(target)
    after = inspect_store(target)
    if after.kind != "current":
        raise DbError(f"{shown(target)}: created, but the store is {after.detail}")
    schema = (
        f" (created schema {pg_schema(sa.make_url(database_url(target)))!r})" if created else ""
    )
    return f"created a PlantGuard store at {shown(target)}, revision {after.revision}{schema}"


def do_upgrade(target: str) -> str:
    state = inspect_store(target)
    if state.kind == "missing":
        raise DbError(
            f"{shown(target)}: no PlantGuard store there ({state.detail}); "
            "use `plantguard db init` to create one"
        )
    if state.kind == "foreign":
        raise DbError(f"{shown(target)}: not a PlantGuard store ({state.detail}); left alone")
    if state.kind == "current":
        return f"{shown(target)}: already at revision {state.revision} (head); nothing to do"
    _migrate(target)
    after = inspect_store(target)
    if after.kind != "current":
        raise DbError(f"{shown(target)}: migrated, but the store is {after.detail}")
    return f"upgraded {shown(target)} from revision {state.revision} to {after.revision}"


def do_check(target: str) -> str:
    from ..store.state import head_revision

    state = inspect_store(target)
    if state.kind == "current":
        return f"{shown(target)}: PlantGuard store, revision {state.revision} (current)"
    if state.kind == "missing":
        raise DbError(f"{shown(target)}: no PlantGuard store there ({state.detail})")
    if state.kind == "behind":
        raise DbError(
            f"{shown(target)}: PlantGuard store behind: revision {state.revision}, "
            f"head {head_revision()} (run `plantguard db upgrade`)"
        )
    raise DbError(f"{shown(target)}: not a PlantGuard store ({state.detail})")


_ACTIONS = {"init": do_init, "upgrade": do_upgrade, "check": do_check}
