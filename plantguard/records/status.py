"""The due status of every plan from the store: one function for the rule, the CLI,
statistics and OPC UA, so they can never disagree."""

from __future__ import annotations

from collections.abc import Sequence

from ..store import Store
from .due import PlanStatus, at, last_done, plan_status
from .meters import plan_meter
from .models import MaintenancePlan, MaintenanceRecord, Trigger

__all__ = ["plan_statuses"]


def plan_statuses(
    store: Store, now: float, plans: Sequence[MaintenancePlan] | None = None
) -> dict[str, PlanStatus]:
    """Status at ``now`` (epoch seconds) of ``plans`` (default: every active plan)."""
    if plans is None:
        plans = [p for p in store.records.plans() if p.active]
    wanted = {p.id for p in plans}
    by_plan: dict[str, list[MaintenanceRecord]] = {}
    for record in store.records.records():
        if record.plan_id in wanted:
            by_plan.setdefault(record.plan_id, []).append(record)
    alarms = store.load_status()
    when = at(now)  # clamped: no stored or given number can overflow a datetime
    statuses = {}
    for plan in plans:
        records = by_plan.get(plan.id, [])
        meter = None
        triggered_at = None
        if plan.trigger in (Trigger.RUNTIME, Trigger.COUNTER):
            meter = plan_meter(store, plan, last_done(records), now)
        elif plan.trigger is Trigger.CONDITION and plan.alarm:
            alarm = alarms.get(plan.alarm)
            if alarm is not None and alarm.active_since is not None:
                triggered_at = at(alarm.active_since)
        statuses[plan.id] = plan_status(plan, records, when, meter=meter, triggered_at=triggered_at)
    return statuses
