"""Maintenance plans of the demo plant, so that ``make demo`` shows every due state.

Dates are relative to the first start: one inspection overdue, one greasing coming
due, a calibration recently done, a runtime-based bearing service and a
condition-based alignment check on pump vibration.  Seeding happens only when the
store has no plans, so plans a user imported are never touched.
"""

from __future__ import annotations

import datetime as dt

from plantguard.plugin import MaintenancePlan, MaintenanceRecord, Site, Store

__all__ = ["demo_plans", "seed"]


def demo_plans(today: dt.date) -> list[MaintenancePlan]:
    return [
        MaintenancePlan(
            id="tank1-wall-inspection", device_id="tank1", kind="inspection",
            title="Tank wall thickness inspection", trigger="calendar", interval=365, lead=30,
            start=today - dt.timedelta(days=3), overdue_priority="high",
            procedure="Ultrasonic thickness gauge, 12 points per ring; certificate required.",
        ),
        MaintenancePlan(
            id="pump1-grease", device_id="pump1", title="Grease motor bearings",
            trigger="calendar", interval=30, lead=7, start=today + dt.timedelta(days=4),
        ),
        MaintenancePlan(
            id="gas1-calibration", device_id="gas1", kind="calibration",
            title="Span calibration with 50 %LEL methane", trigger="calendar", interval=90, lead=14,
        ),
        MaintenancePlan(
            id="pump1-bearing-service", device_id="pump1", title="Bearing service",
            trigger="runtime", interval=2000, lead=100, point="pump1.running",
        ),
        MaintenancePlan(
            id="pump1-alignment", device_id="pump1", title="Check shaft alignment",
            trigger="condition", interval=2, alarm="pump1.vibration.limit",
        ),
    ]  # fmt: skip


def seed(store: Store, site: Site, now: dt.datetime | None = None) -> bool:
    """Give the demo's devices their plans (and one past calibration) if none exist yet."""
    if store.records.plans():
        return False
    now = now or dt.datetime.now(dt.UTC)
    store.records.sync_site(site)
    store.records.upsert_plans(demo_plans(now.date()))
    store.records.add_records(
        [
            MaintenanceRecord(
                id="demo-gas1-calibration-1", device_id="gas1", plan_id="gas1-calibration",
                kind="calibration", performed_at=now - dt.timedelta(days=20), performer="Zhang Min",
                work_done="zero and span with certified gas", passed=True,
                certificate_number="CAL-2026-0117",
            )
        ]
    )  # fmt: skip
    return True
