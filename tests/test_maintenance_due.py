"""Maintenance- and inspection-due alarms from each trigger kind, time controlled by the test.

The rule runs on a real store (SQLite file) with recorded history, and its findings
go through the real alarm manager, as in the gateway.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from plantguard.alarms import AlarmManager
from plantguard.model import AlarmDefinition, Finding, Point, Priority
from plantguard.records.due import DueState, Meter, plan_status
from plantguard.records.models import DeviceRecord, MaintenancePlan, MaintenanceRecord
from plantguard.rules import RuleContext
from plantguard.store import Store
from plantguard.table import ValueTable
from plantguard_maintenance.rule import MaintenanceDueRule, MaintenanceRuleType

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = 3600.0
VIBRATION = AlarmDefinition(
    id="dev0.vibration.limit", source_id="dev0.vibration", device_id="dev0", rule="limit"
)


def at(days: float = 0, hours: float = 0) -> float:
    return (T0 + dt.timedelta(days=days, hours=hours)).timestamp()


PLANS = [
    MaintenancePlan(id="cal", device_id="dev0", kind="inspection", title="Annual inspection", trigger="calendar", interval=30, lead=5, start=dt.date(2026, 1, 1), overdue_priority="high"),
    MaintenancePlan(id="run", device_id="dev0", title="Bearing service", trigger="runtime", interval=100, lead=10, point="dev0.running"),
    MaintenancePlan(id="cnt", device_id="dev0", title="Contactor check", trigger="counter", interval=1000, lead=100, point="dev0.starts"),
    MaintenancePlan(id="cond", device_id="dev0", title="Check alignment", trigger="condition", interval=2, alarm="dev0.vibration.limit"),
]  # fmt: skip


class Plant:
    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(str(tmp_path / "m.db"))
        self.store.records.upsert_devices([DeviceRecord(id="dev0")], user="test")
        self.store.records.upsert_plans(PLANS)
        keys = self.store.register_points(
            [Point(id="dev0.running", device_id="dev0"), Point(id="dev0.starts", device_id="dev0")]
        )
        self.keys = keys
        rule = MaintenanceRuleType().create_site_rule(RuleContext(store=self.store))
        assert isinstance(rule, MaintenanceDueRule)
        self.rule = rule
        self.table = ValueTable([])
        self.alarms = AlarmManager(self.store, [*rule.alarms(), VIBRATION])

    def samples(self, point: str, rows: list[tuple[float, float]]) -> None:
        t, v = zip(*rows, strict=True)
        self.store.write_history(
            np.full(len(rows), self.keys[point], dtype=np.int64),
            np.array(t),
            np.array(v),
            np.zeros(len(rows), dtype=np.uint8),
        )

    async def scan(self, now: float) -> dict[str, tuple[str, str, int]]:
        self.rule._next_check = float("-inf")  # the test controls time, not the rule's cadence
        await self.alarms.apply_findings(self.rule.evaluate(self.table, now))
        return {
            plan.id: (
                self.alarms.status[f"maintenance.{plan.id}"].state.value,
                self.alarms.status[f"maintenance.{plan.id}"].condition,
                self.alarms.status[f"maintenance.{plan.id}"].severity,
            )
            for plan in PLANS
        }

    def done(self, plan: str, when: float, reading: float | None = None) -> None:
        self.store.records.add_records(
            [
                MaintenanceRecord(
                    id=f"{plan}-{when}",
                    device_id="dev0",
                    plan_id=plan,
                    performed_at=dt.datetime.fromtimestamp(when, dt.UTC),
                    performer="tech",
                    meter_reading=reading,
                )
            ]
        )


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    return Plant(tmp_path)


async def test_calendar_plan_due_then_overdue_then_done(plant: Plant) -> None:
    assert (await plant.scan(at(-10)))["cal"] == ("normal", "", 0)
    assert (await plant.scan(at(-3)))["cal"] == ("active_unacknowledged", "DUE", Priority.LOW)
    assert (await plant.scan(at(1)))["cal"] == ("active_unacknowledged", "OVERDUE", Priority.HIGH)
    plant.done("cal", at(2))
    assert (await plant.scan(at(3)))["cal"] == ("returned_unacknowledged", "", 0)
    assert plant.rule.statuses["cal"].due_at == T0 + dt.timedelta(days=32)
    assert (await plant.scan(at(28)))["cal"][1] == "DUE"


async def test_runtime_plan_counts_running_hours_from_history(plant: Plant) -> None:
    # Running from hour 0 to 50, stopped 50–60, running again from 60.
    plant.samples("dev0.running", [(at(hours=0), 1.0), (at(hours=50), 0.0), (at(hours=60), 1.0)])
    assert (await plant.scan(at(hours=80)))["run"] == ("normal", "", 0)  # 70 h used
    assert plant.rule.statuses["run"].used == pytest.approx(70.0)
    assert (await plant.scan(at(hours=101)))["run"][1] == "DUE"  # 91 h used, lead 10
    assert (await plant.scan(at(hours=111)))["run"][1] == "OVERDUE"  # 101 h
    plant.done("run", at(hours=112))
    assert (await plant.scan(at(hours=120)))["run"][1] == ""
    assert plant.rule.statuses["run"].used == pytest.approx(8.0)


async def test_counter_plan_uses_the_reading_at_the_last_record(plant: Plant) -> None:
    plant.samples("dev0.starts", [(at(hours=1), 100.0), (at(hours=2), 950.0)])
    assert (await plant.scan(at(hours=3)))["cnt"][1] == "DUE"  # 950 of 1000, lead 100
    plant.samples("dev0.starts", [(at(hours=4), 1200.0)])
    assert (await plant.scan(at(hours=5)))["cnt"] == (
        "active_unacknowledged",
        "OVERDUE",
        Priority.MEDIUM,
    )
    plant.done("cnt", at(hours=6), reading=1200.0)
    plant.samples("dev0.starts", [(at(hours=7), 1500.0)])
    assert (await plant.scan(at(hours=8)))["cnt"][1] == ""
    assert plant.rule.statuses["cnt"].used == 300.0


async def test_condition_plan_follows_its_alarm(plant: Plant) -> None:
    assert (await plant.scan(at(0)))["cond"][1] == ""
    await plant.alarms.apply_findings(
        [Finding(VIBRATION.id, True, "H", 500, "vibration H", 5.0, at(1))]
    )
    assert (await plant.scan(at(1, hours=1)))["cond"][1] == "DUE"
    assert (await plant.scan(at(3, hours=2)))["cond"][1] == "OVERDUE"  # 2 days allowed
    plant.done("cond", at(3, hours=3))
    assert (await plant.scan(at(3, hours=4)))["cond"][1] == ""


async def test_cadence_and_reporting_only_changes(plant: Plant) -> None:
    rule = MaintenanceDueRule(plant.store, check_every=60.0)
    first = rule.evaluate(plant.table, at(-3))
    assert {f.alarm_id for f in first} == {f"maintenance.{p.id}" for p in PLANS}
    assert rule.evaluate(plant.table, at(-3) + 30) == []  # within the cadence: no store reads
    assert rule.evaluate(plant.table, at(-3) + 61) == []  # nothing changed


def test_plan_status_edge_cases() -> None:
    never = MaintenancePlan(id="x", device_id="d", title="t", trigger="calendar", interval=10)
    assert plan_status(never, [], T0).state is DueState.OVERDUE
    meter_plan = PLANS[1]
    assert plan_status(meter_plan, [], T0, meter=Meter(None)).state is DueState.IDLE
    explicit = MaintenanceRecord(
        id="r", device_id="dev0", plan_id="cal", performed_at=T0, performer="p",
        next_due=dt.date(2026, 6, 1),
    )  # fmt: skip
    status = plan_status(PLANS[0], [explicit], T0)
    assert status.due_at == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    assert status.state is DueState.OK
    partial = MaintenanceRecord.model_validate({**explicit.model_dump(), "result": "partial"})
    assert plan_status(PLANS[0], [partial], T0 + dt.timedelta(days=1)).state is DueState.OVERDUE
