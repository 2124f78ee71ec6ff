"""Shared fixtures; the plugin test kit (plantguard.testing) is loaded as a pytest plugin.

``store_target`` runs a store test on a SQLite file always, and also on the real
PostgreSQL server when ``PLANTGUARD_TEST_POSTGRES_URL`` is set (CI sets it).  Each
PostgreSQL test gets a schema of its own, so parallel runs never share tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from plantguard.host import PluginHost
from plantguard.store import database_url

POSTGRES_ENV = "PLANTGUARD_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", *(["postgresql"] if os.environ.get(POSTGRES_ENV) else [])]


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ``--db`` value: a fresh SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    base = database_url(os.environ[POSTGRES_ENV])
    schema = f"plantguard_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:  # fails the test if the server is unreachable
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def host() -> PluginHost:
    """The installed plugins, loaded and started: what ``check`` and ``run`` validate with."""
    h = PluginHost()
    h.load_entry_points()
    h.start()
    return h


#: The acting user the records tests import and record as (``--as``).
ACTOR = "tester"
_ACTOR_COMMANDS = {("devices", "import"), ("maintenance", "import"), ("maintenance", "record")}


def add_actor(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the store at ``target`` an administrator :data:`ACTOR` and its password."""
    from plantguard.auth import Role, UserRecord, hash_password
    from plantguard.store import Store

    store = Store(target)
    try:
        store.users.put_user(UserRecord(ACTOR, Role.ADMIN, hash_password("actor-pw")))
    finally:
        store.close()
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "actor-pw")


def as_actor(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--as`` :data:`ACTOR` added to the commands that need an acting user."""
    if tuple(argv[:2]) in _ACTOR_COMMANDS and "--as" not in argv:
        return [*argv, "--as", ACTOR]
    return list(argv)
