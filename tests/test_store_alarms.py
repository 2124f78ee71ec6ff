"""Store (real SQLite file), migrations, alarm manager state machine, journal, history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from plantguard.alarms import AlarmError, AlarmManager, AlarmState, Transition
from plantguard.history import HistoryWriter
from plantguard.model import AlarmDefinition, Finding, Point, Priority, StoreSettings
from plantguard.store import Store, database_url, migrate
from plantguard.store.schema import metadata

DEFS = [
    AlarmDefinition(
        id="t.level.limit", source_id="t.level", device_id="t", rule="limit", priority=Priority.HIGH
    ),
    AlarmDefinition(id="t.temp.limit", source_id="t.temp", device_id="t", rule="limit"),
]


def _finding(alarm_id: str, condition: str, t: float, severity: int = 700) -> Finding:
    return Finding(
        alarm_id,
        bool(condition),
        condition,
        severity if condition else 0,
        f"{alarm_id} {condition}",
        91.0,
        t,
    )


def test_database_url() -> None:
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert database_url("x.db").startswith("sqlite:////")
    assert database_url("x.db").endswith("/x.db")


def test_migrations_match_schema_and_go_down(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "m.db"))
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    migrate.downgrade(store.engine)
    assert set(sa.inspect(store.engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(store.engine)
    assert {"points", "history", "alarms", "alarm_journal"} <= set(
        sa.inspect(store.engine).get_table_names()
    )
    store.close()


async def test_alarm_lifecycle_is_journalled_and_survives_restart(store_target: str) -> None:
    db = store_target
    store = Store(db)
    manager = AlarmManager(store, DEFS)
    heard: list[Transition] = []

    async def listen(ts: object) -> None:
        heard.extend(ts)  # type: ignore[arg-type]

    manager.subscribe(listen)
    [t] = await manager.apply_findings([_finding("t.level.limit", "H", 1.0, 500)])
    assert (t.before, t.after) == (AlarmState.NORMAL, AlarmState.UNACK)
    # Escalation H → HH needs a new acknowledgement; HH → H keeps it.
    await manager.acknowledge("t.level.limit", user="alice", comment="seen", now=2.0)
    [t] = await manager.apply_findings([_finding("t.level.limit", "HH", 3.0, 700)])
    assert t.after is AlarmState.UNACK
    await manager.acknowledge("t.level.limit", user="alice", now=4.0)
    [t] = await manager.apply_findings([_finding("t.level.limit", "H", 5.0, 500)])
    assert t.after is AlarmState.ACKED
    assert await manager.apply_findings([_finding("t.level.limit", "H", 5.5, 500)]) == []
    with pytest.raises(AlarmError, match="nothing to acknowledge"):
        await manager.acknowledge("t.level.limit", user="bob", now=6.0)
    await manager.apply_findings([_finding("t.temp.limit", "H", 6.0, 500)])
    await manager.apply_findings([_finding("t.temp.limit", "", 7.0)])
    assert manager.status["t.temp.limit"].state is AlarmState.RTN_UNACK
    with pytest.raises(AlarmError, match="no alarm 'nope'"):
        await manager.acknowledge("nope", user="bob", now=8.0)
    assert len(heard) == 7
    store.close()

    # A new process on the same file sees exactly the same states and journal.
    store = Store(db)
    restored = AlarmManager(store, DEFS)
    level = restored.status["t.level.limit"]
    assert (level.state, level.condition, level.active_since) == (AlarmState.ACKED, "H", 1.0)
    assert restored.status["t.temp.limit"].state is AlarmState.RTN_UNACK
    journal = store.journal()
    assert [(r.alarm_id, r.action, r.state_after, r.user) for r in journal] == [
        ("t.level.limit", "activate", "active_unacknowledged", ""),
        ("t.level.limit", "acknowledge", "active_acknowledged", "alice"),
        ("t.level.limit", "change", "active_unacknowledged", ""),
        ("t.level.limit", "acknowledge", "active_acknowledged", "alice"),
        ("t.level.limit", "change", "active_acknowledged", ""),
        ("t.temp.limit", "activate", "active_unacknowledged", ""),
        ("t.temp.limit", "clear", "returned_unacknowledged", ""),
    ]
    assert journal[1].comment == "seen"
    t = await restored.acknowledge("t.temp.limit", user="bob", now=9.0)
    assert t.after is AlarmState.NORMAL
    store.close()


async def test_history_batches_trend_arrays_and_retention(store_target: str) -> None:
    store = Store(store_target)
    points = [Point(id="d.a", device_id="d"), Point(id="d.b", device_id="d")]
    keys = store.register_points(points)
    assert store.register_points(points) == keys  # idempotent
    writer = HistoryWriter(
        store,
        StoreSettings.model_validate({"history": {"retention_days": 1, "flush_interval": 0.05}}),
        np.array([keys["d.a"], keys["d.b"]], dtype=np.int64),
        clock=lambda: 200_000.0,
    )
    task = asyncio.create_task(writer.run())
    for step in range(10):
        writer.append(
            np.array([0, 1]),
            np.array([float(step), np.nan if step == 3 else -step]),
            np.array([0, 130 if step == 3 else 0], dtype=np.uint8),
            np.array([100_000.0 + step, 100_000.0 + step]),
        )
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.wait_for(task, 5)
    # retention of 1 day at clock 200,000 s removes everything before 113,600 s
    assert store.history_count() == 0
    for step in range(10):
        writer.append(
            np.array([0, 1]),
            np.array([float(step), np.nan if step == 3 else -step]),
            np.array([0, 130 if step == 3 else 0], dtype=np.uint8),
            np.array([190_000.0 + step, 190_000.0 + step]),
        )
    assert await writer.flush() == 20
    trend = store.trend("d.b", start=190_002.0, end=190_005.0)
    assert trend.time.tolist() == [190_002.0, 190_003.0, 190_004.0]
    assert np.isnan(trend.value[1])
    assert trend.value[0] == -2.0
    assert trend.quality.tolist() == [0, 130, 0]
    assert trend.value.dtype == np.float64
    assert len(store.trend("d.a")) == 10
    store.close()
