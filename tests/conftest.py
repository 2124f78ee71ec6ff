"""Shared fixtures; the plugin test kit (plantguard.testing) is loaded as a pytest plugin.

``store_target`` runs a store test on a SQLite file always, and also on the real
PostgreSQL server when ``PLANTGUARD_TEST_POSTGRES_URL`` is set (CI sets it).  Each
PostgreSQL test gets a schema of its own, so parallel runs never share tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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
