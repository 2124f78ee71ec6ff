"""The plant's domain model: site › area › device › point, samples, findings, alarms.

The configured part (site, areas, devices, points, alarm definitions) is made of
frozen pydantic models, because the same classes are the schema of the site file:
one definition gives both the typed objects the engine uses and the validation
errors that name the field a user got wrong.  Driver- and rule-specific settings
(``connection``, ``address``, ``rules``) stay plain mappings here and are
validated by the plugin that owns them.

The hot path does not use these objects per sample: values live in the numpy
current-value table (:mod:`plantguard.table`), indexed by each point's position.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "EARLIEST_DATE",
    "ID_PATTERN",
    "LATEST_DATE",
    "PRIORITY_BY_NAME",
    "AlarmDefinition",
    "Area",
    "Device",
    "DeviceAcceptance",
    "DeviceInfo",
    "DeviceStatus",
    "Finding",
    "Location",
    "Point",
    "PollGroup",
    "Priority",
    "Quality",
    "Sample",
    "Site",
    "SiteAcceptance",
    "StoreSettings",
]

#: Configured ids become OPC UA NodeIds, database keys and entity ids: keep them
#: to characters that are safe in all three.
ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


#: Dates PlantGuard accepts anywhere (site files, imports): later ones overflow date arithmetic.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2200, 1, 1)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quality(enum.IntEnum):
    """Quality of a sample, OPC UA style: Good, Uncertain (1–127) or Bad (≥128) with a reason.

    Stored as one byte per point in the value table and in history.
    """

    GOOD = 0
    UNCERTAIN = 64
    UNCERTAIN_LAST_USABLE = 65
    UNCERTAIN_SENSOR_NOT_ACCURATE = 66
    BAD = 128
    BAD_WAITING_FOR_INITIAL_DATA = 129
    BAD_COMMUNICATION_ERROR = 130
    BAD_NOT_CONNECTED = 131
    BAD_DEVICE_FAILURE = 132
    BAD_CONFIGURATION_ERROR = 133
    BAD_OUT_OF_SERVICE = 134

    @property
    def is_good(self) -> bool:
        return self == Quality.GOOD

    @property
    def is_bad(self) -> bool:
        return self >= Quality.BAD


class Priority(enum.IntEnum):
    """Alarm priority; the value is the OPC UA severity (1–1000) it maps to."""

    LOW = 250
    MEDIUM = 500
    HIGH = 700
    URGENT = 900


PriorityName = Literal["low", "medium", "high", "urgent"]

#: The priority a site file or record names (``priority: high``).
PRIORITY_BY_NAME: dict[PriorityName, Priority] = {
    "low": Priority.LOW,
    "medium": Priority.MEDIUM,
    "high": Priority.HIGH,
    "urgent": Priority.URGENT,
}


class DeviceStatus(enum.StrEnum):
    IN_SERVICE = "in_service"
    STANDBY = "standby"
    UNDER_MAINTENANCE = "under_maintenance"
    RETIRED = "retired"


class Location(_Frozen):
    """Where a device is, below its area (site › area › position)."""

    position: str = ""
    building: str = ""
    floor: str = ""


class DeviceInfo(_Frozen):
    """Device basic information (设备基础信息) as the standard lists it.

    Names follow the OPC UA DI companion specification where it has one
    (Manufacturer, Model, SerialNumber, HardwareRevision, SoftwareRevision).
    """

    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    hardware_version: str = ""
    firmware_version: str = ""
    commissioned: dt.date | None = None
    responsible: str = ""
    safety_critical: bool = False
    status: DeviceStatus = DeviceStatus.IN_SERVICE
    location: Location = Location()
    rated: dict[str, float] = Field(default_factory=dict)

    @field_validator("commissioned")
    @classmethod
    def _plausible_date(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST_DATE <= value < LATEST_DATE:
            raise ValueError(f"date outside {EARLIEST_DATE.year}-{LATEST_DATE.year - 1}")
        return value


class Point(_Frozen):
    """One measured or controlled signal of a device.

    ``id`` is local to the device in the file; :attr:`Device.points` is
    normalised so that each point's ``id`` is global: ``<device>.<local id>``.
    """

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-\.]*$", max_length=130)
    name: str = ""
    unit: str = ""
    data_type: Literal["float", "int", "bool"] = "float"
    range: tuple[float, float] | None = None
    scale: float = 1.0
    offset: float = 0.0
    access: Literal["read", "read_write"] = "read"
    poll_group: str | None = None
    address: dict[str, Any] = Field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    device_id: str = ""

    @field_validator("range")
    @classmethod
    def _range_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] >= value[1]:
            raise ValueError(f"range low {value[0]} must be below high {value[1]}")
        return value


class DeviceAcceptance(_Frozen):
    """How ``plantguard acceptance`` may test a device (docs/acceptance.md).

    ``loop_check: write`` lets it drive each limit alarm's point past its limits
    through the engine's write path and restore it afterwards: for simulators and
    devices in a test mode only.  The default, ``sign-off``, never writes: limits and
    live value are recorded for an engineer to sign off.  ``restore: release`` ends
    a write loop check by writing NaN (the plant simulator's "follow the plant
    again"); ``previous`` writes back the value read before the check.
    """

    loop_check: Literal["sign-off", "write"] = "sign-off"
    restore: Literal["previous", "release"] = "previous"


class Device(_Frozen):
    id: Identifier
    name: str = ""
    category: str = "generic"
    info: DeviceInfo = DeviceInfo()
    driver: Identifier
    connection: dict[str, Any] = Field(default_factory=dict)
    poll_group: str = "default"
    points: tuple[Point, ...] = ()
    area_id: str = ""
    acceptance: DeviceAcceptance = DeviceAcceptance()

    @model_validator(mode="before")
    @classmethod
    def _globalise_point_ids(cls, data: Any) -> Any:
        """Give each point its global id ``<device>.<local>`` and its device id."""
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            return data
        device_id = data.get("id", "")
        points = []
        for raw in data["points"]:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                local = raw["id"]
                prefix = f"{device_id}."
                global_id = local if local.startswith(prefix) else prefix + local
                points.append({**raw, "id": global_id, "device_id": device_id})
            else:
                points.append(raw)
        return {**data, "points": points}

    @model_validator(mode="after")
    def _unique_point_ids(self) -> Device:
        seen: set[str] = set()
        for point in self.points:
            if point.id in seen:
                raise ValueError(f"point id {point.id!r} is used twice")
            seen.add(point.id)
        return self


class Area(_Frozen):
    id: Identifier
    name: str = ""
    devices: tuple[Device, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _tag_devices(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("devices"), list):
            area_id = data.get("id", "")
            data = {
                **data,
                "devices": [
                    {**d, "area_id": area_id} if isinstance(d, dict) else d for d in data["devices"]
                ],
            }
        return data


class PollGroup(_Frozen):
    interval: float = Field(1.0, gt=0, le=3600, description="seconds between reads")


class HistorySettings(_Frozen):
    """How history is written and how long it is kept (docs/history.md).

    Non-finite numbers (``.nan``, ``.inf``) are refused, and so are values beyond a
    sane range (``1e300`` days): any of them would silently keep history forever.
    """

    retention_days: float = Field(
        30.0,
        gt=0,
        le=36_500,
        allow_inf_nan=False,
        description="days of history kept (fractions allowed: 0.5 is 12 h); at most 100 years",
    )
    flush_interval: float = Field(
        2.0,
        ge=0.01,
        le=3600,
        allow_inf_nan=False,
        description="seconds between batch writes; retention is applied at the same cadence",
    )
    max_batch: int = Field(
        50_000, gt=0, le=10_000_000, description="rows that force a write before the interval"
    )


class StoreSettings(_Frozen):
    url: str = "plantguard.db"
    history: HistorySettings = HistorySettings()


class SiteAcceptance(_Frozen):
    """Site-wide settings of ``plantguard acceptance`` (docs/acceptance.md)."""

    #: Roles deliberately without an account (otherwise each role needs one).
    unused_roles: tuple[Literal["viewer", "operator", "engineer", "admin"], ...] = ()
    #: Device categories that need a maintenance plan (None: the default list).
    plan_categories: tuple[Annotated[str, Field(max_length=64)], ...] | None = None


class Site(_Frozen):
    """The whole configured plant: what one gateway serves."""

    id: Identifier
    name: str = ""
    areas: tuple[Area, ...] = ()
    poll_groups: dict[str, PollGroup] = Field(default_factory=lambda: {"default": PollGroup()})
    scan_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="longest time between rule scans (new values are scanned at once)",
    )
    store: StoreSettings = StoreSettings()
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Site-level settings of rule types (security rules, point groups), validated by each type.
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    acceptance: SiteAcceptance = SiteAcceptance()

    @model_validator(mode="after")
    def _check_references(self) -> Site:
        seen: dict[str, str] = {}
        for area in self.areas:
            for device in area.devices:
                if device.id in seen:
                    raise ValueError(
                        f"device id {device.id!r} is used in areas {seen[device.id]!r} "
                        f"and {area.id!r}"
                    )
                seen[device.id] = area.id
        return self

    # Cached: the site is frozen, and code indexes these per point (``points[i]``).
    @cached_property
    def devices(self) -> tuple[Device, ...]:
        return tuple(d for a in self.areas for d in a.devices)

    @cached_property
    def points(self) -> tuple[Point, ...]:
        return tuple(p for d in self.devices for p in d.points)

    def poll_group_of(self, device: Device, point: Point) -> str:
        return point.poll_group or device.poll_group


class _KeepMissing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class AlarmDefinition(_Frozen):
    """An alarm a rule can raise: its identity, source and priority.

    Rules declare their alarms when they are set up, so every alarm exists
    (in the store, in OPC UA) before it first becomes active.
    """

    id: str
    source_id: str
    device_id: str
    kind: Literal["limit", "discrete", "deviation", "rate", "system", "security", "maintenance"] = (
        "limit"
    )
    rule: str
    priority: Priority = Priority.MEDIUM
    message: str = ""
    #: ISA-18.2 latching: after the process returns to normal the alarm stays
    #: (latched) until an operator resets it.
    latching: bool = False

    def render(self, **fields: object) -> str:
        """Fill ``{name}`` / ``{value:.3g}`` placeholders; a message that does not fit
        its fields is shown as written rather than lost."""
        try:
            return self.message.format_map(_KeepMissing(fields))
        except (ValueError, IndexError, AttributeError, TypeError):
            return self.message


@dataclass(frozen=True, slots=True)
class Sample:
    """One value read from a device, as history and clients see it."""

    point_id: str
    value: float
    source_time: float
    quality: Quality = Quality.GOOD


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on one alarm at one scan, reported only when it changes.

    ``condition`` names which limit or state is active (``"HH"``, ``"H"`` …); it is
    empty when the alarm clears.
    """

    alarm_id: str
    active: bool
    condition: str
    severity: int
    message: str
    value: float
    time: float
