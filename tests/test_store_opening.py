"""Stores are opened, never made by accident (issue 15, part 2).

Every command but ``run``, ``demo`` and ``db init|upgrade`` opens an existing store
at head: a missing one is one line and status 3, and nothing is created (no SQLite
file, no tables in the PostgreSQL schema); a store behind this version says to run
``plantguard db upgrade``.  ``--site`` / ``$PLANTGUARD_SITE`` name the store through
the site file's ``store.url``; ``--db`` wins.  Unknown ids suggest close matches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from conftest import POSTGRES_ENV, add_actor, as_actor

from plantguard.cli import main
from plantguard.store import Store, database_url, migrate
from plantguard.testing import free_tcp_port

READ_COMMANDS: list[list[str]] = [
    ["alarms"],
    ["alarms", "list"],
    ["alarms", "journal"],
    ["alarms", "journal", "--alarm", "x.limit"],
    ["alarms", "kpi"],
    ["devices", "list"],
    ["devices", "show", "pump1"],
    ["devices", "export"],
    ["maintenance", "plans"],
    ["maintenance", "due"],
    ["maintenance", "export"],
    ["stats"],
    ["trend", "tank1.level"],
    ["history", "export", "--points", "tank1.level"],
    ["users", "list"],
    ["report", "--json"],
]

DEVICES = {
    "format": "plantguard/devices",
    "version": 1,
    "items": [
        {"id": "pump1", "name": "Pump 1", "category": "pump"},
        {"id": "tank1", "name": "Tank 1", "category": "tank"},
    ],
}
PLANS = {
    "format": "plantguard/maintenance-plans",
    "version": 1,
    "items": [
        {"id": "pump1-grease", "device_id": "pump1", "title": "Grease", "trigger": "calendar",
         "interval": 30, "start": "2026-01-01"},
    ],
}  # fmt: skip


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(as_actor(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _tables(target: str) -> list[str]:
    engine = sa.create_engine(database_url(target))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
                if schema is None:
                    return []
                return sorted(
                    conn.execute(
                        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                        {"s": schema},
                    ).scalars()
                )
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _nothing_there(target: str) -> bool:
    if "://" not in target:
        return not Path(target).exists()
    return _tables(target) == []


@pytest.fixture(autouse=True)
def _no_site_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PLANTGUARD_SITE", raising=False)
    monkeypatch.chdir(tmp_path)  # the demo default ./plantguard-demo.db is looked for here


# --- missing and behind ----------------------------------------------------------------------


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_command_on_missing_store_fails_and_creates_nothing(
    store_target: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, *argv, "--db", store_target)
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no PlantGuard store at" in lines[0]
    assert "plantguard db init" in lines[0]
    assert out == ""
    assert _nothing_there(store_target)


def test_the_message_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "alarms", "list", "--db", "plant_typo.db")
    assert code == 3
    assert err.strip() == (
        "plantguard: no PlantGuard store at plant_typo.db; run "
        "`plantguard db init plant_typo.db`, or check the path"
    )
    assert not (tmp_path / "plant_typo.db").exists()


def test_demo_default_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "maintenance", "due")
    assert code == 3
    assert "plantguard-demo.db" in err
    assert not (tmp_path / "plantguard-demo.db").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "add", "admin", "--role", "admin"],
        ["devices", "import", "devices.json"],
        ["maintenance", "record", "--device", "pump1", "--performer", "me"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_offline_write_command_on_missing_store_creates_nothing(
    store_target: str,
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "devices.json").write_text(json.dumps(DEVICES), encoding="utf-8")
    monkeypatch.setenv("PLANTGUARD_NEW_PASSWORD", "pw")
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "pw")
    code, _, err = _run(capsys, *argv, "--db", store_target)
    assert code == 3, err
    assert "no PlantGuard store at" in err
    assert _nothing_there(store_target)


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=f"needs {POSTGRES_ENV}")
def test_missing_postgresql_schema_is_not_created(capsys: pytest.CaptureFixture[str]) -> None:
    base = os.environ[POSTGRES_ENV]
    schema = f"plantguard_nope_{uuid.uuid4().hex[:12]}"
    target = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    code, _, err = _run(capsys, "alarms", "list", "--db", target)
    assert code == 3
    assert "no PlantGuard store at" in err
    assert schema in err
    engine = sa.create_engine(database_url(base))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
            ).scalar()
    finally:
        engine.dispose()
    assert found is None


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=f"needs {POSTGRES_ENV}")
def test_demo_creates_a_missing_postgresql_schema_and_its_store(tmp_path: Path) -> None:
    """``run``/``demo`` on a per-schema URL whose schema does not exist yet: made, then
    migrated; a read command then opens it."""
    base = os.environ[POSTGRES_ENV]
    schema = f"plantguard_new_{uuid.uuid4().hex[:12]}"
    target = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    demo = [
        sys.executable, "-m", "plantguard", "--log-level", "warning", "demo", "--db", target,
        "--duration", "2", "--quiet", "--scenario", "none",
        "--opcua-port", str(free_tcp_port()), "--modbus-port", str(free_tcp_port()),
    ]  # fmt: skip
    engine = sa.create_engine(database_url(base))
    try:
        done = subprocess.run(
            demo, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        with engine.connect() as conn:
            tables = (
                conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                )
                .scalars()
                .all()
            )
        assert {"alarms", "alarm_journal", "history", "users", "alembic_version"} <= set(tables)
        assert main(["alarms", "list", "--db", target]) == 0
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def test_behind_store_says_upgrade(store_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    script = ScriptDirectory(str(Path(migrate.__file__).with_name("migrations")))
    current = script.get_current_head()
    assert current is not None
    head = script.get_revision(current)
    assert head is not None
    assert isinstance(head.down_revision, str)
    store = Store(store_target, migrate_to_head=False)
    try:
        migrate.upgrade(store.engine, head.down_revision)
    finally:
        store.close()
    before = _tables(store_target)
    code, _, err = _run(capsys, "alarms", "list", "--db", store_target)
    assert code == 3
    assert "behind" in err
    assert "plantguard db upgrade" in err
    assert len(err.strip().splitlines()) == 1
    assert _tables(store_target) == before  # not migrated
    assert main(["db", "upgrade", store_target]) == 0
    assert _run(capsys, "alarms", "list", "--db", store_target)[0] == 0


# --- the site's store ---------------------------------------------------------------------------


@pytest.fixture
def site_store(store_target: str, tmp_path: Path) -> tuple[str, Path]:
    Store(store_target).close()
    site = tmp_path / "site.yaml"
    site.write_text(
        f"site: {{id: s1}}\nstore:\n  url: {json.dumps(store_target)}\n", encoding="utf-8"
    )
    return store_target, site


def test_site_picks_the_sites_store(
    site_store: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, site = site_store
    code, _out, err = _run(capsys, "users", "list", "--site", str(site))
    assert code == 0, err
    code, _, err = _run(capsys, "alarms", "list", "--site", str(site))
    assert code == 0, err
    assert not (tmp_path / "plantguard-demo.db").exists()
    # --db wins over --site
    code, _, err = _run(capsys, "alarms", "list", "--site", str(site), "--db", "other.db")
    assert code == 3
    assert "other.db" in err


def test_site_whose_store_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("site: {id: s1}\nstore: {url: site-store.db}\n", encoding="utf-8")
    code, _, err = _run(capsys, "maintenance", "plans", "--site", str(site))
    assert code == 3
    assert "site-store.db" in err
    assert not (tmp_path / "site-store.db").exists()


def test_plantguard_site_environment_variable(
    site_store: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, site = site_store
    monkeypatch.setenv("PLANTGUARD_SITE", str(site))
    assert _run(capsys, "alarms", "journal")[0] == 0
    assert _run(capsys, "maintenance", "due")[0] == 0
    assert not (tmp_path / "plantguard-demo.db").exists()
    code, _, err = _run(capsys, "alarms", "--db", "elsewhere.db")
    assert code == 3
    assert "elsewhere.db" in err


# --- unknown ids ------------------------------------------------------------------------------


@pytest.fixture
def records_store(store_target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    add_actor(store_target, monkeypatch)
    for name, doc, argv in (
        ("d.json", DEVICES, ["devices", "import"]),
        ("p.json", PLANS, ["maintenance", "import", "--kind", "plans"]),
    ):
        (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
        assert main(as_actor([*argv, str(tmp_path / name), "--db", store_target])) == 0
    return store_target


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["devices", "show", "pmp1"], "did you mean pump1"),
        (["maintenance", "plans", "--device", "tnk1"], "did you mean tank1"),
        (["maintenance", "record", "--device", "pumpl", "--performer", "me"], "pump1"),
        (
            [
                "maintenance",
                "record",
                "--device",
                "pump1",
                "--plan",
                "pump1-greese",
                "--performer",
                "me",
            ],
            "did you mean pump1-grease",
        ),
        (["trend", "tank1.levle"], "did you mean"),
    ],
    ids=["devices show", "plans --device", "record --device", "record --plan", "trend"],
)
def test_unknown_ids_suggest(
    records_store: str, argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv[0] == "trend":
        store = Store(records_store)
        try:
            from plantguard.model import Point

            store.register_points([Point(id="tank1.level", device_id="tank1", unit="m")])
        finally:
            store.close()
    code, _, err = _run(capsys, *argv, "--db", records_store)
    assert code == 2, err
    assert suggestion in err


def test_unknown_alarm_suggests(
    store_target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from plantguard.model import AlarmDefinition, Priority

    add_actor(store_target, monkeypatch)
    store = Store(store_target)
    try:
        store.define_alarms(
            [
                AlarmDefinition(
                    id="tank1.level.limit",
                    source_id="tank1.level",
                    device_id="tank1",
                    kind="limit",
                    rule="limit",
                    priority=Priority.HIGH,
                )
            ]
        )
    finally:
        store.close()
    for argv in (
        ["alarms", "journal", "--alarm", "tank1.levl.limit"],
        ["alarms", "ack", "tank1.level.limt", "--user", "tester"],
        ["alarms", "shelve", "tank1.levle.limit", "--user", "tester", "--one-shot"],
    ):
        code, _, err = _run(capsys, *argv, "--db", store_target)
        assert code == 2, (argv, err)
        assert "did you mean tank1.level.limit" in err, err
