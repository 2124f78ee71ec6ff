"""What the edge node announces: every device's metrics, with names, aliases and datatypes.

Built once from the validated site and the alarm definitions, before the first
connection, so that every BIRTH names the same metrics with the same aliases and a
DDATA needs only an alias and a value.  Aliases are unique across the edge node
(Sparkplug requires it), numbered in site order: a restart of the same site gives
the same aliases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pysparkplug import DataType

from plantguard.plugin import AlarmDefinition, Device, Point, Site

__all__ = [
    "ACK_COMMAND",
    "ALARM_FIELDS",
    "USER_METRIC",
    "AlarmMetrics",
    "Catalogue",
    "DeviceMetrics",
    "build_catalogue",
    "local_name",
]

#: The state of each alarm, as metrics under ``Alarms/<alarm>/``.
ALARM_FIELDS: tuple[tuple[str, DataType], ...] = (
    ("Active", DataType.BOOLEAN),
    ("Acked", DataType.BOOLEAN),
    ("Shelved", DataType.BOOLEAN),
    ("Priority", DataType.INT32),
)
#: Writing ``true`` to ``Alarms/<alarm>/Acknowledge`` by DCMD acknowledges the alarm.
ACK_COMMAND = "Acknowledge"
#: The broker user a DCMD acts as (a String metric in the same DCMD).
USER_METRIC = "Command/User"

_DATATYPE = {"float": DataType.DOUBLE, "int": DataType.INT64, "bool": DataType.BOOLEAN}


def local_name(global_id: str, device_id: str) -> str:
    """``tank1.level`` → ``level``: metric names are relative to their device."""
    prefix = f"{device_id}."
    return global_id[len(prefix) :] if global_id.startswith(prefix) else global_id


@dataclass(frozen=True, slots=True)
class AlarmMetrics:
    alarm_id: str
    name: str
    priority: int
    #: Alias of each of :data:`ALARM_FIELDS`, in that order, then of the Acknowledge command.
    aliases: tuple[int, ...]


@dataclass(slots=True)
class DeviceMetrics:
    """One Sparkplug device: a PlantGuard device's points and alarms."""

    device: Device
    #: Table index of each point, in device order.
    index: npt.NDArray[np.intp]
    points: tuple[Point, ...]
    names: tuple[str, ...]
    aliases: npt.NDArray[np.uint64]
    datatypes: tuple[DataType, ...]
    #: Deadband of each point (absolute, in the point's unit).
    deadband: npt.NDArray[np.float64]
    #: Points published as Sparkplug Double (the fast path of a DDATA).
    is_double: npt.NDArray[np.bool_]
    alarms: tuple[AlarmMetrics, ...] = ()
    #: Alias of the Command/User metric.
    user_alias: int = 0
    alarm_by_name: dict[str, AlarmMetrics] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.device.id


@dataclass(slots=True)
class Catalogue:
    devices: tuple[DeviceMetrics, ...]
    #: Device of each alarm id.
    alarm_device: dict[str, DeviceMetrics]
    by_id: dict[str, DeviceMetrics]


def build_catalogue(
    site: Site,
    table_index: Mapping[str, int],
    definitions: Iterable[AlarmDefinition],
    *,
    deadband: float = 0.0,
    deadbands: Mapping[str, float] | None = None,
) -> Catalogue:
    """Name and alias every metric of the node (aliases 1 and 2 are the node's own)."""
    deadbands = deadbands or {}
    by_device: dict[str, list[AlarmDefinition]] = {}
    for definition in definitions:
        by_device.setdefault(definition.device_id, []).append(definition)
    next_alias = 3
    devices = []
    for device in site.devices:
        n = len(device.points)
        aliases = np.arange(next_alias, next_alias + n, dtype=np.uint64)
        next_alias += n
        alarms = []
        for definition in sorted(by_device.get(device.id, ()), key=lambda d: d.id):
            count = len(ALARM_FIELDS) + 1
            alarms.append(
                AlarmMetrics(
                    alarm_id=definition.id,
                    name=local_name(definition.id, device.id),
                    priority=int(definition.priority),
                    aliases=tuple(range(next_alias, next_alias + count)),
                )
            )
            next_alias += count
        metrics = DeviceMetrics(
            device=device,
            index=np.fromiter((table_index[p.id] for p in device.points), np.intp, count=n),
            points=device.points,
            names=tuple(local_name(p.id, device.id) for p in device.points),
            aliases=aliases,
            datatypes=tuple(_DATATYPE[p.data_type] for p in device.points),
            deadband=np.array([deadbands.get(p.id, deadband) for p in device.points], np.float64),
            is_double=np.array([p.data_type == "float" for p in device.points], dtype=bool),
            alarms=tuple(alarms),
            user_alias=next_alias,
        )
        metrics.alarm_by_name = {a.name: a for a in alarms}
        next_alias += 1
        devices.append(metrics)
    return Catalogue(
        devices=tuple(devices),
        alarm_device={a.alarm_id: d for d in devices for a in d.alarms},
        by_id={d.id: d for d in devices},
    )
