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
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .models import LATEST_TIME, MaintenancePlan, MaintenanceRecord, RecordResult, Trigger

__all__ = [
    "HORIZON",
    "DueState",
    "Meter",
    "PlanStatus",
    "at",
    "last_done",
    "plan_problem",
    "plan_status",
]

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


# --- arithmetic that cannot overflow ------------------------------------------------------
#
# Times are turned into epoch seconds (floats: any datetime converts, and the sums
# of floats saturate to infinity instead of raising), and due points beyond the
# horizon are reported as the horizon.  Nothing a store holds — an interval of
# 3,000,000 days, a record dated 9999-12-31, NaN — can make these functions raise.

#: Due points later than this are reported as "not due before" it.
HORIZON = LATEST_TIME
_HORIZON_S = HORIZON.timestamp()
_EARLIEST_S = dt.datetime(1, 1, 2, tzinfo=dt.UTC).timestamp()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_S = 86_400.0


def _seconds(value: dt.datetime) -> float:
    return value.timestamp() if value.tzinfo else value.replace(tzinfo=dt.UTC).timestamp()


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    """Epoch seconds as a UTC datetime, clamped to 0001-01-02 .. the horizon."""
    if not seconds <= _HORIZON_S:  # also NaN
        return HORIZON
    return _EPOCH + dt.timedelta(seconds=max(seconds, _EARLIEST_S) - _EPOCH.timestamp())


def plan_problem(plan: MaintenancePlan) -> str | None:
    """Why the due point of ``plan`` cannot be computed (a plan stored around the import's
    checks), or None."""
    interval, lead = plan.interval, plan.lead
    if not (isinstance(interval, float | int) and math.isfinite(interval) and interval > 0):
        return f"interval {interval!r} is not a positive number"
    if not (isinstance(lead, float | int) and math.isfinite(lead) and lead >= 0):
        return f"lead {lead!r} is not a number ≥ 0"
    return None


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

    Never raises for any plan or record: a plan whose numbers cannot be computed
    with (stored around the import's checks) is reported overdue with the reason
    ``invalid plan: …`` — like a plan never done, it is one nobody can rely on —
    and a due point beyond :data:`HORIZON` is reported as the horizon, with the
    reason ``not due before 2200-01-01``.
    """
    last = last_done(records)
    done_at = last.performed_at if last else None
    if (problem := plan_problem(plan)) is not None:
        return PlanStatus(
            plan, DueState.OVERDUE, done_at, None, None, None, f"invalid plan: {problem}"
        )
    now_s = _seconds(now)
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
            due_at, remaining, true_left, beyond = _due(triggered_at, plan.interval, now)
            state = DueState.OVERDUE if true_left < 0 else DueState.DUE_SOON
            reason = f"alarm {plan.alarm} fired at {triggered_at.isoformat()}"
            return PlanStatus(
                plan,
                state,
                done_at,
                due_at,
                (now_s - _seconds(triggered_at)) / _DAY_S,
                remaining,
                _beyond(reason) if beyond else reason,
            )
        if last is not None and last.next_due is not None:
            due_at, days_left, true_left, beyond = _due(_midnight(last.next_due), 0.0, now)
            reason = "next due set by the last record"
        elif done_at is not None:
            due_at, days_left, true_left, beyond = _due(done_at, plan.interval, now)
            reason = f"every {plan.interval:g} days"
        elif plan.start is not None:
            due_at, days_left, true_left, beyond = _due(_midnight(plan.start), 0.0, now)
            reason = "never done; due from the plan's start"
        else:
            return PlanStatus(
                plan, DueState.OVERDUE, None, None, None, None, "never done and no start date"
            )
        days_used = (now_s - _seconds(done_at)) / _DAY_S if done_at else None
        return PlanStatus(
            plan,
            _state(true_left, plan.lead),
            done_at,
            due_at,
            days_used,
            days_left,
            _beyond(reason) if beyond else reason,
        )

    # runtime and counter plans
    used = meter.used if meter is not None else None
    if used is None:
        return PlanStatus(
            plan, DueState.IDLE, done_at, None, None, None, f"no data from {plan.point} yet"
        )
    if not math.isfinite(used):
        return PlanStatus(
            plan, DueState.IDLE, done_at, None, None, None, f"no usable data from {plan.point}"
        )
    remaining = min(max(plan.interval - used, -_LARGEST), _LARGEST)
    what = "running hours" if plan.trigger is Trigger.RUNTIME else "counts"
    return PlanStatus(
        plan,
        _state(remaining, plan.lead),
        done_at,
        None,
        used,
        remaining,
        f"{used:.6g}{unit} of {plan.interval:g}{unit} {what} used",
    )


#: Meter figures are kept finite (they are printed and published as JSON).
_LARGEST = 1e300


def _due(
    start: dt.datetime, days: float, now: dt.datetime
) -> tuple[dt.datetime, float, float, bool]:
    """``days`` after ``start``: the due instant and the days left at ``now``, both
    clamped to the horizon; the true days left (a float, which saturates); and
    whether the due point is beyond the horizon.

    Exact datetime arithmetic when the due point is before the horizon (it cannot
    overflow there); float seconds to find out whether it is.
    """
    due_s = _seconds(start) + days * _DAY_S
    now_s = _seconds(now)
    if not due_s < _HORIZON_S:
        return HORIZON, (_HORIZON_S - now_s) / _DAY_S, (due_s - now_s) / _DAY_S, True
    due_at = at(due_s) if due_s < _EARLIEST_S else start + dt.timedelta(days=days)
    left = (due_at - now) / DAY
    return due_at, left, left, False


def _beyond(reason: str) -> str:
    return f"not due before {HORIZON:%Y-%m-%d} ({reason})"
