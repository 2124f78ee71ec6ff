"""Statistics checked against values computed by hand on a recorded history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plantguard.alarms import AlarmManager
from plantguard.cli import main
from plantguard.model import AlarmDefinition, Finding, Priority
from plantguard.records.models import DeviceRecord, MaintenancePlan, MaintenanceRecord
from plantguard.records.stats import statistics
from plantguard.store import Store

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = 86400.0


def day(n: float) -> float:
    return T.timestamp() + n * DAY


async def _recorded(db: str) -> Store:
    store = Store(db)
    rec = store.records
    rec.upsert_devices(
        [
            DeviceRecord(id="d1", category="pump", area="A"),
            DeviceRecord(id="d2", category="tank", area="A", status="under_maintenance"),
            DeviceRecord(id="d3", category="pump", area="B"),
        ],
        user="test",
    )
    # d1: online from day -5; outages 20–22 and 50–53; gateway down 90–95.
    for device, when, state in [
        ("d1", -10, "unknown"), ("d1", -5, "online"), ("d1", 20, "offline"), ("d1", 22, "online"),
        ("d1", 50, "offline"), ("d1", 53, "online"), ("d1", 90, "unknown"), ("d1", 95, "online"),
        ("d3", 10, "offline"), ("d3", 40, "online"),
    ]:  # fmt: skip
        rec.record_connection([device], day(when), state)
    definitions = [
        AlarmDefinition(
            id="a.high", source_id="d1.x", device_id="d1", rule="limit", priority=Priority.HIGH
        ),
        AlarmDefinition(
            id="a.low", source_id="d3.x", device_id="d3", rule="limit", priority=Priority.LOW
        ),
        AlarmDefinition(
            id="a.med", source_id="d3.y", device_id="d3", rule="limit", priority=Priority.MEDIUM
        ),
    ]
    alarms = AlarmManager(store, definitions)
    for alarm_id, start in [("a.med", -1), ("a.high", 3), ("a.low", 4), ("a.high", 60)]:
        await alarms.apply_findings([Finding(alarm_id, True, "H", 500, "", 1.0, day(start))])
        await alarms.apply_findings([Finding(alarm_id, False, "", 0, "", 0.0, day(start + 0.5))])
    rec.upsert_plans(
        [
            MaintenancePlan(id="grease", device_id="d1", title="Grease", trigger="calendar", interval=30, start=dt.date(2026, 1, 11)),
            MaintenancePlan(id="insp", device_id="d3", kind="inspection", title="Inspect", trigger="calendar", interval=365, start=dt.date(2026, 7, 20)),
        ]
    )  # fmt: skip
    rec.add_records(
        [
            MaintenanceRecord(id=f"r{d}", device_id="d1", plan_id="grease", performer="t",
                              performed_at=T + dt.timedelta(days=d))
            for d in (5, 40, 60)
        ]
    )  # fmt: skip
    return store


async def test_statistics_match_hand_computed_values(tmp_path: Path) -> None:
    store = await _recorded(str(tmp_path / "s.db"))
    try:
        stats = statistics(store, day(0), day(100))
    finally:
        store.close()
    assert stats.devices_by_category == {"pump": 2, "tank": 1}
    assert stats.devices_by_status == {"in_service": 2, "under_maintenance": 1}
    assert stats.devices_by_area == {"A": 2, "B": 1}
    assert stats.alarms_by_priority == {"low": 1, "medium": 0, "high": 2, "urgent": 0}

    d1, d2, d3 = stats.availability
    # d1: online 0–20, 22–50, 53–90, 95–100 = 90 d; offline 2 + 3 = 5 d; unknown 5 d.
    assert d1.online_s == pytest.approx(90 * DAY)
    assert d1.online_rate == pytest.approx(0.90)
    assert d1.availability == pytest.approx(90 / 95)
    assert (d1.outages, d1.repairs) == (2, 2)
    assert d1.mtbf_h == pytest.approx(90 * 24 / 2)
    assert d1.mttr_h == pytest.approx((2 + 3) * 24 / 2)
    # d2: never observed.
    assert (d2.online_rate, d2.availability, d2.mtbf_h, d2.mttr_h) == (0.0, None, None, None)
    # d3: unknown until 10, offline 10–40, online 40–100: its first offline is not an
    # outage (it was never seen online), so no failures and no repairs.
    assert d3.online_rate == pytest.approx(0.6)
    assert d3.availability == pytest.approx(60 / 90)
    assert (d3.outages, d3.repairs, d3.mtbf_h) == (0, 0, None)

    grease, inspection = sorted(stats.compliance, key=lambda c: c.kind, reverse=True)
    # Grease: due day 10 (start) → done day 5, on time; due 35 → done 40, late;
    # due 70 → done 60, on time; next due 90 → overdue at day 100.
    assert (grease.kind, grease.on_time, grease.late, grease.overdue_now) == (
        "maintenance",
        2,
        1,
        1,
    )
    assert grease.rate == pytest.approx(2 / 3)
    assert (inspection.kind, inspection.on_time, inspection.late, inspection.overdue_now) == (
        "inspection", 0, 0, 0,
    )  # fmt: skip
    assert inspection.rate is None


async def test_stats_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    (await _recorded(db)).close()
    until = dt.datetime.fromtimestamp(day(100), dt.UTC).isoformat()
    assert main(["stats", "--db", db, "--since", "100d", "--until", until, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alarms_by_priority"]["high"] == 2
    assert data["availability"][0]["device_id"] == "d1"
    assert data["availability"][0]["mttr_h"] == pytest.approx(60.0)
    assert [c["kind"] for c in data["compliance"]] == ["inspection", "maintenance"]
    assert data["compliance"][1]["rate"] == pytest.approx(2 / 3)
    assert main(["stats", "--db", db, "--since", "100d", "--until", until]) == 0
    text = capsys.readouterr().out
    assert "devices by category: pump 2, tank 1" in text
    assert "d1      90.0%   94.74%" in text
