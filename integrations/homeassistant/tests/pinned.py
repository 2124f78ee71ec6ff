"""Live data pinned to fixed values, for snapshots that hold from run to run.

Snapshot tests connect to a real gateway: the plant (devices with their basic
information, points with their units and types, alarms) is read from it as in
production.  What changes from run to run — point values and their times,
alarm states, event ids, due dates — is replaced after the real reads by fixed
values chosen to show every kind of state (a Bad point, an active HighHigh
alarm, a shelved one, one out of service …), and the subscription's pushes are
dropped, so the snapshot holds every property of every entity and excludes none.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from custom_components.plantguard.api import GatewayClient, Snapshot
from custom_components.plantguard.models import (
    AlarmInfo,
    AlarmStatus,
    GatewayModel,
    MaintenancePlanInfo,
    PointInfo,
    PointValue,
)

#: The instant every pinned value was "measured".
FIXED_TIME = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)

#: Alarm states handed out in turn, alarm by alarm (sorted by key).
_ALARM_STATES: tuple[AlarmStatus, ...] = (
    AlarmStatus(severity=500, message="Normal"),
    AlarmStatus(
        active=True,
        acknowledged=False,
        confirmed=False,
        severity=900,
        limit="HighHigh",
        message="Above the HH limit",
    ),
    AlarmStatus(
        active=True,
        confirmed=False,
        severity=700,
        limit="High",
        message="Above the H limit",
        user="operator",
        comment="[Home Assistant: Mock User] checked on site",
    ),
    AlarmStatus(acknowledged=False, confirmed=False, severity=250, message="Returned to normal"),
    AlarmStatus(latched=True, acknowledged=False, confirmed=False, severity=700, message="Trip"),
    AlarmStatus(shelving="timed", severity=500, message="Shelved", user="engineer"),
    AlarmStatus(suppressed=True, severity=500, message="Suppressed by design"),
    AlarmStatus(out_of_service=True, severity=500, message="Out of service", user="engineer"),
)


def pinned_point(index: int, point: PointInfo) -> PointValue:
    """A fixed value for the ``index``-th point; every seventh has lost communication."""
    if index % 7 == 6:
        return PointValue(None, "BadCommunicationError", FIXED_TIME)
    value: float | int | bool
    if point.data_type == "bool":
        value = index % 2 == 0
    elif point.data_type == "int":
        value = index * 3
    else:
        value = 10.0 + index * 1.25
    return PointValue(value, "Good", FIXED_TIME)


def pinned_alarm(index: int, alarm: AlarmInfo) -> AlarmStatus:
    status = _ALARM_STATES[index % len(_ALARM_STATES)]
    return replace(
        status,
        message=f"{alarm.alarm_id}: {status.message}",
        time=FIXED_TIME,
        event_id=f"event-{index}".encode(),
    )


def pinned_snapshot(model: GatewayModel) -> Snapshot:
    points = model.points
    alarms = model.all_alarms
    return Snapshot(
        points={key: pinned_point(i, points[key]) for i, key in enumerate(sorted(points))},
        alarms={key: pinned_alarm(i, alarms[key]) for i, key in enumerate(sorted(alarms))},
    )


def pinned_plan(index: int, plan: MaintenancePlanInfo) -> MaintenancePlanInfo:
    """The gateway's plan with a fixed due instant and remaining time (they follow the clock)."""
    days = -(index + 1) if plan.state == "overdue" else index + 1
    due = FIXED_TIME + timedelta(days=days) if plan.due is not None else None
    remaining = float(days) if plan.remaining is not None else None
    return replace(plan, due=due, remaining=remaining)


@contextlib.contextmanager
def pinned_live_data() -> Iterator[None]:
    """Read the gateway for real, then hand on the pinned values; ignore pushes."""
    read_state = GatewayClient.read_state
    read_maintenance = GatewayClient.read_maintenance

    async def pinned_state(self: GatewayClient, model: GatewayModel) -> Snapshot:
        await read_state(self, model)
        return pinned_snapshot(model)

    async def pinned_maintenance(
        self: GatewayClient, model: GatewayModel
    ) -> list[MaintenancePlanInfo]:
        plans = sorted(await read_maintenance(self, model), key=lambda plan: plan.key)
        return [pinned_plan(i, plan) for i, plan in enumerate(plans)]

    def ignore(*args: Any) -> None:
        """A pushed value or event (they follow the running plant)."""

    with (
        patch.object(GatewayClient, "read_state", pinned_state),
        patch.object(GatewayClient, "read_maintenance", pinned_maintenance),
        patch.object(GatewayClient, "_on_value", ignore),
        patch.object(GatewayClient, "_on_event", ignore),
    ):
        yield
