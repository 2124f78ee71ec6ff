"""When is a plan next due?  Pure functions of the plan, its records and its meter.

Kept free of the store and the engine so that the maintenance rule, the CLI
(``maintenance due``), statistics and OPC UA all give the same answer, and so
that every trigger can be tested with time as a plain argument.

Due states::

    ok ──(within lead of due)──► due_soon ──(past due)──► overdue
    idle: nothing to do yet (a condition plan whose alarm has not fired since last done)

A plan that was never done and has no ``start`` is overdue: an inspection nobody
has ever carried out is the case the standard's compliance figures exist for.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .models import MaintenancePlan, MaintenanceRecord, RecordResult, Trigger

__all__ = ["DueState", "Meter", "PlanStatus", "last_done", "plan_status"]

DAY = dt.timedelta(days=1)


class DueState(enum.StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class Meter:
    """What a meter plan needs: how much was used since the plan was last done.

    ``used`` is running hours (runtime plans) or the counter's increase (counter
    plans); None when the meter point has no usable data yet.
    """

    used: float | None


@dataclass(frozen=True, slots=True)
class PlanStatus:
    plan: MaintenancePlan
    state: DueState
    last_done: dt.datetime | None
    #: The instant it falls due (calendar and condition plans).
    due_at: dt.datetime | None
    #: Used since last done, in the trigger's unit (days for calendar plans).
    used: float | None
    #: Left before due, in the trigger's unit; negative when overdue.
    remaining: float | None
    reason: str

    @property
    def is_due(self) -> bool:
        return self.state in (DueState.DUE_SOON, DueState.OVERDUE)


def last_done(records: Sequence[MaintenanceRecord]) -> MaintenanceRecord | None:
    """The latest completed record (records not completed do not reset a plan)."""
    done = [r for r in records if r.result is RecordResult.COMPLETED]
    return max(done, key=lambda r: r.performed_at) if done else None


def _state(remaining: float, lead: float) -> DueState:
    if remaining < 0:
        return DueState.OVERDUE
    if remaining <= lead:
        return DueState.DUE_SOON
    return DueState.OK


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def plan_status(
    plan: MaintenancePlan,
    records: Sequence[MaintenanceRecord],
    now: dt.datetime,
    *,
    meter: Meter | None = None,
    triggered_at: dt.datetime | None = None,
) -> PlanStatus:
    """Status of ``plan`` at ``now`` from its records (any order).

    :param meter: usage since last done, for runtime and counter plans.
    :param triggered_at: when the plan's alarm last became active (condition plans).
    """
    last = last_done(records)
    done_at = last.performed_at if last else None
    unit = plan.trigger.unit

    if plan.trigger in (Trigger.CALENDAR, Trigger.CONDITION):
        if plan.trigger is Trigger.CONDITION:
            if triggered_at is None or (done_at is not None and triggered_at <= done_at):
                return PlanStatus(
                    plan,
                    DueState.IDLE,
                    done_at,
                    None,
                    None,
                    None,
                    f"alarm {plan.alarm} has not fired since last done",
                )
            due_at = triggered_at + plan.interval * DAY
            used = (now - triggered_at) / DAY
            remaining = (due_at - now) / DAY
            state = DueState.OVERDUE if remaining < 0 else DueState.DUE_SOON
            return PlanStatus(
                plan,
                state,
                done_at,
                due_at,
                used,
                remaining,
                f"alarm {plan.alarm} fired at {triggered_at.isoformat()}",
            )
        if last is not None and last.next_due is not None:
            due_at = _midnight(last.next_due)
            reason = "next due set by the last record"
        elif done_at is not None:
            due_at = done_at + plan.interval * DAY
            reason = f"every {plan.interval:g} days"
        elif plan.start is not None:
            due_at = _midnight(plan.start)
            reason = "never done; due from the plan's start"
        else:
            return PlanStatus(
                plan, DueState.OVERDUE, None, None, None, None, "never done and no start date"
            )
        days_left = (due_at - now) / DAY
        days_used = (now - done_at) / DAY if done_at else None
        return PlanStatus(
            plan, _state(days_left, plan.lead), done_at, due_at, days_used, days_left, reason
        )

    # runtime and counter plans
    if meter is None or meter.used is None:
        return PlanStatus(
            plan, DueState.IDLE, done_at, None, None, None, f"no data from {plan.point} yet"
        )
    remaining = plan.interval - meter.used
    what = "running hours" if plan.trigger is Trigger.RUNTIME else "counts"
    return PlanStatus(
        plan,
        _state(remaining, plan.lead),
        done_at,
        None,
        meter.used,
        remaining,
        f"{meter.used:.6g}{unit} of {plan.interval:g}{unit} {what} used",
    )
