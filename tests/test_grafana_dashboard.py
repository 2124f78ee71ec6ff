"""The Grafana dashboard's SQL, run against the real PostgreSQL store schema.

Grafana expands its macros before sending a query; :func:`expand` does the same
for the few the dashboard uses, so every panel's SQL runs here exactly as Grafana
would send it, on a store migrated by :class:`plantguard.store.Store`, with a
recorded history whose answers are computed by hand below.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from plantguard.records.models import DeviceRecord
from plantguard.store import Store, database_url
from plantguard.store.schema import alarm_journal, alarms

DASHBOARD = Path(__file__).parents[1] / "dashboards" / "grafana" / "plantguard-postgresql.json"
POSTGRES_ENV = "PLANTGUARD_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

T0 = 1_699_999_800.0  # a multiple of 600: 10-minute buckets start here
T1 = T0 + 3600.0  # the dashboard's time range: one hour, six 10-minute buckets


def expand(sql: str, *, start: float, end: float, variables: dict[str, list[str]]) -> str:
    """Grafana's PostgreSQL macros and multi-value variables, as Grafana renders them."""
    sql = re.sub(
        r"\$__unixEpochFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} >= {start} AND {m.group(1)} <= {end}",
        sql,
    )
    sql = sql.replace("$__unixEpochFrom()", str(start)).replace("$__unixEpochTo()", str(end))
    for name, values in variables.items():
        sql = sql.replace(f"${name}", ",".join("'" + v.replace("'", "''") + "'" for v in values))
    assert "$" not in sql, f"unexpanded macro in {sql}"
    return sql


@pytest.fixture
def store() -> Iterator[Store]:
    """A fresh schema on the real PostgreSQL server, migrated by the store itself."""
    base = database_url(os.environ.get(POSTGRES_ENV, DEFAULT_URL))
    admin = sa.create_engine(base)
    schema = f"plantguard_grafana_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as err:
        admin.dispose()
        if POSTGRES_ENV in os.environ:
            raise
        pytest.skip(f"PostgreSQL not reachable at {DEFAULT_URL}: {err}")
    separator = "&" if "?" in base else "?"
    opened = Store(f"{base}{separator}options=-csearch_path%3D{schema}")
    try:
        yield opened
    finally:
        opened.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _journal(alarm_id: str, time: float, action: str, severity: int) -> dict[str, Any]:
    return {
        "alarm_id": alarm_id,
        "time": time,
        "action": action,
        "state_before": "normal",
        "state_after": "active_unacknowledged",
        "condition": "HH",
        "severity": severity,
        "value": 1.0,
        "message": "",
        "user": "",
        "comment": "",
        "shelved_until": None,
    }


def _record_history(store: Store) -> None:
    """One hour of a small plant: values, alarms, connection states."""
    store.records.upsert_devices(
        [
            DeviceRecord(id="tank1", name="Buffer tank 1"),
            DeviceRecord(id="gas1", name="Methane detector 1"),
            DeviceRecord(id="pump1", name="Transfer pump 1"),
        ],
        user="test",
        now=dt.datetime.fromtimestamp(T0, dt.UTC),
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO points (point_id, device_id, unit) VALUES "
                "('tank1.level', 'tank1', '%'), ('gas1.lel', 'gas1', '%LEL')"
            )
        )
        keys: dict[str, int] = dict(
            conn.execute(sa.text("SELECT point_id, key FROM points")).tuples().all()
        )
    store.write_history(
        np.array([keys["tank1.level"]] * 3 + [keys["gas1.lel"]], dtype=np.int64),
        np.array([T0, T0 + 60, T0 + 120, T0 + 30]),
        np.array([60.0, 61.5, np.nan, 1.25]),
        np.array([192, 192, 0, 192], dtype=np.uint8),
    )
    alarm_rows = [
        ("tank1.level.limit", "tank1", 700),
        ("gas1.lel.limit", "gas1", 900),
        ("pump1.vibration.limit", "pump1", 500),
    ]
    journal = [_journal("tank1.level.limit", T0 - 100, "activate", 700)]  # before the range
    journal += [_journal("tank1.level.limit", T0 + 10 + i * 40, "activate", 700) for i in range(12)]
    journal += [_journal("tank1.level.limit", T0 + 20, "acknowledge", 700)]
    journal += [_journal("gas1.lel.limit", T0 + 600 + i * 100, "activate", 900) for i in range(2)]
    journal += [_journal("pump1.vibration.limit", T0 + 1800, "activate", 500)]
    with store.engine.begin() as conn:
        conn.execute(
            alarms.insert(),
            [
                {
                    "alarm_id": alarm_id,
                    "source_id": alarm_id.rsplit(".", 1)[0],
                    "device_id": device,
                    "kind": "limit",
                    "rule": "limit",
                    "priority": priority,
                }
                for alarm_id, device, priority in alarm_rows
            ],
        )
        conn.execute(alarm_journal.insert(), journal)
    store.records.record_connection(["tank1"], T0 - 100, "online")
    store.records.record_connection(["gas1"], T0, "online")
    store.records.record_connection(["gas1"], T0 + 900, "offline")
    store.records.record_connection(["gas1"], T0 + 1200, "online")


def _panels() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        panel["title"]: target["rawSql"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "grafana-postgresql-datasource"
    assert {p["title"] for p in dashboard["panels"]} == {
        "Trends",
        "Alarm rate against EEMUA 191 targets",
        "Time in flood",
        "Top bad actors",
        "Priority distribution",
        "Availability per device",
    }
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_queries_on_postgresql(store: Store) -> None:
    _record_history(store)
    panels = _panels()
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = dashboard["templating"]["list"]

    def run(sql: str) -> list[tuple[Any, ...]]:
        query = expand(sql, start=T0, end=T1, variables={"point": ["tank1.level", "gas1.lel"]})
        with store.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]

    assert run(variable["query"]) == [("gas1.lel",), ("tank1.level",)]

    trend = run(panels["Trends"])
    assert [(row[0].timestamp(), row[1], row[2]) for row in trend] == [
        (T0, "tank1.level", 60.0),
        (T0 + 30, "gas1.lel", 1.25),
        (T0 + 60, "tank1.level", 61.5),
    ]

    rate = run(panels["Alarm rate against EEMUA 191 targets"])
    assert [(row[0].timestamp(), row[1]) for row in rate] == [
        (T0, 12),
        (T0 + 600, 2),
        (T0 + 1800, 1),
    ]

    [(flood,)] = run(panels["Time in flood"])
    assert float(flood) == pytest.approx(100.0 / 6)

    bad = run(panels["Top bad actors"])
    assert [(r[0], r[1], r[2], float(r[3])) for r in bad] == [
        ("tank1.level.limit", "tank1", 12, 80.0),
        ("gas1.lel.limit", "gas1", 2, 13.3),
        ("pump1.vibration.limit", "pump1", 1, 6.7),
    ]

    priorities = run(panels["Priority distribution"])
    assert priorities == [("high", 12), ("urgent", 2), ("medium", 1)]

    availability = run(panels["Availability per device"])
    assert [(r[0], r[1], None if r[2] is None else float(r[2])) for r in availability] == [
        ("gas1", "Methane detector 1", round(100 * 3300 / 3600, 2)),
        ("tank1", "Buffer tank 1", 100.0),
        ("pump1", "Transfer pump 1", None),
    ]
