"""Usage since a plan was last done: running hours and counter increases, from history.

History stores a sample when a value changes, so a running signal that stays on
for a month is one row: integrating it (step-hold, Good samples only) costs
nothing whatever the period.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..model import Quality
from ..store import Store
from .due import Meter
from .models import MaintenancePlan, MaintenanceRecord, Trigger

__all__ = ["plan_meter", "running_hours"]


def running_hours(
    time: npt.NDArray[np.float64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    start: float,
    end: float,
) -> float:
    """Hours in ``[start, end)`` during which the step-held signal was Good and > 0.5.

    ``time`` is sorted; a sample before ``start`` gives the state at ``start``.
    """
    if time.size == 0 or end <= start:
        return 0.0
    held_from = np.clip(time, start, end)
    held_until = np.append(held_from[1:], end)
    on = (value > 0.5) & (quality < Quality.BAD)
    return float(np.sum((held_until - held_from)[on]) / 3600.0)


def plan_meter(
    store: Store, plan: MaintenancePlan, last: MaintenanceRecord | None, now: float
) -> Meter:
    """Usage of a runtime or counter plan since ``last`` (or since the meter began)."""
    if plan.point is None or plan.trigger not in (Trigger.RUNTIME, Trigger.COUNTER):
        raise ValueError(f"plan {plan.id!r} is not a meter plan")
    since = last.performed_at.timestamp() if last else 0.0
    trend = store.trend(plan.point, start=since, end=now, include_previous=True)
    if len(trend) == 0:
        return Meter(None)
    if plan.trigger is Trigger.RUNTIME:
        return Meter(running_hours(trend.time, trend.value, trend.quality, since, now))
    good = trend.quality < Quality.BAD
    if not good.any():
        return Meter(None)
    current = float(trend.value[good][-1])
    if last is not None and last.meter_reading is not None:
        baseline = last.meter_reading
    elif last is not None and trend.time[0] <= since and good[0]:
        baseline = float(trend.value[0])  # the counter's value when the work was done
    else:
        baseline = 0.0
    used = current - baseline
    return Meter(current if used < 0 else used)  # a counter that was reset counts from zero
