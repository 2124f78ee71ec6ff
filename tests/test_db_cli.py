"""``plantguard db init|upgrade|check`` on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import POSTGRES_ENV

from plantguard.cli import main
from plantguard.errors import EXIT_STORE
from plantguard.store import database_url, migrate
from plantguard.store.state import head_revision

needs_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["db", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(text: str) -> str:
    assert text.endswith("\n"), text
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    return text


def test_init_check_upgrade_on_a_new_sqlite_file(
    store_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "check", store_target)
    assert status == EXIT_STORE
    assert "no PlantGuard store" in one_line(err)
    status, _, err = run(capsys, "upgrade", store_target)
    assert status == EXIT_STORE
    assert "db init" in one_line(err)

    status, out, err = run(capsys, "init", store_target)
    assert (status, err) == (0, "")
    assert f"revision {head_revision()}" in one_line(out)

    status, out, _ = run(capsys, "check", store_target)
    assert status == 0
    assert "(current)" in one_line(out)
    status, out, _ = run(capsys, "upgrade", store_target)
    assert status == 0
    assert "nothing to do" in one_line(out)

    status, _, err = run(capsys, "init", store_target)
    assert status == EXIT_STORE
    assert "already there" in one_line(err)


def test_upgrade_moves_a_store_that_is_behind_to_head(
    store_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = sa.create_engine(database_url(store_target))
    try:
        migrate.upgrade(engine, "0002")
    finally:
        engine.dispose()
    status, _, err = run(capsys, "check", store_target)
    assert status == EXIT_STORE
    assert f"behind: revision 0002, head {head_revision()}" in one_line(err)
    status, _, err = run(capsys, "init", store_target)
    assert status == EXIT_STORE
    assert "already there" in one_line(err)

    status, out, _ = run(capsys, "upgrade", store_target)
    assert status == 0
    assert f"from revision 0002 to {head_revision()}" in one_line(out)
    assert run(capsys, "check", store_target)[0] == 0


def test_a_database_of_something_else_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    for action in ("check", "upgrade", "init"):
        status, _, err = run(capsys, action, str(path))
        assert status == EXIT_STORE, action
        assert "not a PlantGuard store" in one_line(err), action
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"invoices"}


def test_an_unknown_revision_is_not_taken_for_a_plantguard_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alembic.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
    status, _, err = run(capsys, "check", str(path))
    assert status == EXIT_STORE
    assert "'ae1027a6acf', not one of PlantGuard's" in one_line(err)
    assert run(capsys, "upgrade", str(path))[0] == EXIT_STORE


def test_check_does_not_create_the_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.db"
    assert run(capsys, "check", str(path))[0] == EXIT_STORE
    assert not path.exists()


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("foo://x/y", 2, "unknown database 'foo'"),
        ("mysql://u@127.0.0.1/db", 2, "driver for 'mysql' is not installed"),
        ("postgresql://u@127.0.0.1:1/db", EXIT_STORE, "cannot connect"),
        ("/nonexistent-dir-7c1/store.db", 2, "does not exist"),
    ],
)
def test_expected_failures_are_one_line(
    url: str, status: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("init", "upgrade", "check"):
        got, out, err = run(capsys, action, url)
        assert got == status, action
        assert out == "", action
        assert words in one_line(err), (action, err)


def test_a_password_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "check", "postgresql://u:s3cret@127.0.0.1:1/db")
    assert status == EXIT_STORE
    assert "s3cret" not in err
    assert "***" in one_line(err)


@pytest.fixture
def new_schema() -> Iterator[tuple[str, str]]:
    """A PostgreSQL ``URL`` with a schema that does not exist yet, and the schema's name."""
    base = database_url(os.environ[POSTGRES_ENV])
    schema = f"plantguard_dbcli_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    url = f"{os.environ[POSTGRES_ENV]}{separator}options=-csearch_path%3D{schema}"
    yield url, schema
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@needs_postgres
def test_init_creates_a_missing_postgresql_schema(
    new_schema: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, schema = new_schema
    status, _, err = run(capsys, "check", url)
    assert status == EXIT_STORE
    assert f"schema {schema!r} does not exist" in one_line(err)
    status, _, err = run(capsys, "upgrade", url)
    assert status == EXIT_STORE
    assert "no PlantGuard store" in one_line(err)

    status, out, _ = run(capsys, "init", url)
    assert status == 0
    assert f"created schema {schema!r}" in one_line(out)
    engine = sa.create_engine(database_url(os.environ[POSTGRES_ENV]))
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql(f'SELECT version_num FROM "{schema}".alembic_version')
            assert version.scalar_one() == head_revision()
            tables = set(
                conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                    {"s": schema},
                ).scalars()
            )
    finally:
        engine.dispose()
    assert {"history", "alarms", "alarm_journal", "users", "audit"} <= tables
    assert run(capsys, "check", url)[0] == 0
    assert run(capsys, "init", url)[0] == EXIT_STORE


def test_the_head_revision_constant_is_the_migrations_head() -> None:
    """Opening a store compares with a constant (no alembic import); it must follow the
    migrations folder, or every store would be taken for one of another version."""
    from alembic.script import ScriptDirectory

    from plantguard.store import state

    script = ScriptDirectory(str(Path(state.__file__).with_name("migrations")))
    assert script.get_current_head() == state.HEAD_REVISION
