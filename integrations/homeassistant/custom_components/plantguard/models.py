"""What the integration knows about a gateway, as immutable values.

The gateway's address space is read once per connection into a
:class:`GatewayModel` (the plant: devices, points, alarms).  Live data arrive
afterwards as :class:`PointValue` and :class:`AlarmStatus` values keyed by the
stable NodeId path of their node, so a reconnect to a gateway whose
configuration changed can be compared with what Home Assistant already has.

Nothing here imports Home Assistant or asyncua: these are plain data, shared by
the client, the coordinator, the entities and the diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AlarmState(StrEnum):
    """An alarm's ISA-18.2 state, as one value (the gateway's names, plus the flags).

    ISA-18.2 keeps shelved, suppressed by design and out of service as flags
    beside the process/acknowledge state; one value is what a dashboard or an
    automation needs, so a flag that hides the alarm from the operator wins.
    """

    NORMAL = "normal"
    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active_acknowledged"
    RETURNED_UNACKNOWLEDGED = "returned_unacknowledged"
    LATCHED_UNACKNOWLEDGED = "latched_unacknowledged"
    LATCHED_ACKNOWLEDGED = "latched_acknowledged"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Priority(StrEnum):
    """PlantGuard's alarm priorities; the gateway sends them as OPC UA severity."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"

    @classmethod
    def from_severity(cls, severity: int) -> Priority:
        """The priority whose severity band holds ``severity`` (250/500/700/900)."""
        if severity >= 900:
            return cls.URGENT
        if severity >= 700:
            return cls.HIGH
        if severity >= 500:
            return cls.MEDIUM
        return cls.LOW


@dataclass(frozen=True, slots=True)
class PointInfo:
    """One point variable (``<device>/Points/<id>``)."""

    key: str
    device_key: str
    point_id: str
    name: str
    data_type: str  # "float", "int" or "bool"
    unit: str


@dataclass(frozen=True, slots=True)
class AlarmInfo:
    """One alarm condition (``<device>/Alarms/<id>``)."""

    key: str
    device_key: str
    alarm_id: str  # the gateway's id, e.g. "tank1.level.limit"
    name: str  # the condition name, e.g. "level.limit"
    source_name: str


@dataclass(frozen=True, slots=True)
class MaintenancePlanInfo:
    """One maintenance or inspection plan of a device, with its due state."""

    key: str
    device_key: str
    plan_id: str
    title: str
    state: str  # "ok", "due_soon", "overdue", "idle"
    due: datetime | None
    remaining: float | None  # in ``unit``; negative when overdue
    unit: str  # "d", "h", "" (counts)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One field device with its DI basic information."""

    key: str
    device_id: str
    name: str
    area: str
    manufacturer: str
    model: str
    serial_number: str
    hardware_version: str
    firmware_version: str
    category: str
    location: str
    status: str
    safety_critical: bool
    points: tuple[PointInfo, ...] = ()
    alarms: tuple[AlarmInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayModel:
    """The plant one gateway serves, as browsed at connect time."""

    application_uri: str
    name: str
    site_id: str
    product: str
    software_version: str
    devices: tuple[DeviceInfo, ...] = ()
    #: The site's own alarms (security detections …), shown on the gateway's device.
    alarms: tuple[AlarmInfo, ...] = ()

    def device(self, key: str) -> DeviceInfo | None:
        return next((d for d in self.devices if d.key == key), None)

    @property
    def points(self) -> dict[str, PointInfo]:
        return {p.key: p for d in self.devices for p in d.points}

    @property
    def all_alarms(self) -> dict[str, AlarmInfo]:
        return {a.key: a for a in self.alarms} | {a.key: a for d in self.devices for a in d.alarms}


@dataclass(frozen=True, slots=True)
class PointValue:
    """A point's value with its OPC UA quality; ``value`` is None when it has none."""

    value: float | int | bool | None
    quality: str = "Good"
    source_time: datetime | None = None

    @property
    def good(self) -> bool:
        return self.quality == "Good"

    @property
    def bad(self) -> bool:
        return self.quality.startswith("Bad")


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """An alarm's condition as the gateway last reported it (A&C fields)."""

    active: bool = False
    acknowledged: bool = True
    confirmed: bool = True
    latched: bool = False
    shelving: str = ""  # "", "timed", "oneshot"
    suppressed: bool = False
    out_of_service: bool = False
    severity: int = 0
    message: str = ""
    comment: str = ""
    user: str = ""
    limit: str = ""  # "HighHigh", "High", "Low", "LowLow" while a limit alarm is active
    time: datetime | None = None
    event_id: bytes | None = field(default=None, repr=False)

    @property
    def state(self) -> AlarmState:  # noqa: PLR0911 - one return per ISA-18.2 state
        if self.out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self.shelving:
            return AlarmState.SHELVED
        if self.suppressed:
            return AlarmState.SUPPRESSED
        if self.latched:
            return (
                AlarmState.LATCHED_ACKNOWLEDGED
                if self.acknowledged
                else AlarmState.LATCHED_UNACKNOWLEDGED
            )
        if self.active:
            return (
                AlarmState.ACTIVE_ACKNOWLEDGED
                if self.acknowledged
                else AlarmState.ACTIVE_UNACKNOWLEDGED
            )
        if not self.acknowledged:
            return AlarmState.RETURNED_UNACKNOWLEDGED
        return AlarmState.NORMAL

    @property
    def priority(self) -> Priority:
        return Priority.from_severity(self.severity)


class Transition(StrEnum):
    """What happened to an alarm, as the event entity reports it."""

    ACTIVATED = "activated"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    REMOVED_FROM_SERVICE = "removed_from_service"
    RETURNED_TO_SERVICE = "returned_to_service"
    CHANGED = "changed"


def transition(before: AlarmStatus, after: AlarmStatus) -> Transition:
    """Name the change between two reports of one alarm (the first that applies)."""
    checks: tuple[tuple[bool, Transition], ...] = (
        (not before.out_of_service and after.out_of_service, Transition.REMOVED_FROM_SERVICE),
        (before.out_of_service and not after.out_of_service, Transition.RETURNED_TO_SERVICE),
        (not before.shelving and bool(after.shelving), Transition.SHELVED),
        (bool(before.shelving) and not after.shelving, Transition.UNSHELVED),
        (not before.suppressed and after.suppressed, Transition.SUPPRESSED),
        (before.suppressed and not after.suppressed, Transition.UNSUPPRESSED),
        (not before.active and after.active, Transition.ACTIVATED),
        (not before.acknowledged and after.acknowledged, Transition.ACKNOWLEDGED),
        (not before.confirmed and after.confirmed, Transition.CONFIRMED),
        (before.active and not after.active, Transition.CLEARED),
    )
    return next((name for hit, name in checks if hit), Transition.CHANGED)
