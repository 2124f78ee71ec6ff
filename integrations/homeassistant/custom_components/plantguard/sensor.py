"""Sensors: numeric points, each alarm's ISA-18.2 state, device status and alarm counts.

The early-warning index of the risk plugin is a virtual device whose points are
the index, its warning ``level`` and its components (docs/safety.md).  Each is a
sensor like any point; the index sensor also carries the level and the
components as attributes, so one entity says both how bad it is and why.  A
device is recognised as such by its points, as the gateway's reports do: it has
an ``index`` and a ``level`` point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from . import PlantGuardConfigEntry
from .coordinator import PlantGuardData
from .entity import PlantGuardEntity
from .models import AlarmInfo, AlarmState, DeviceInfo, PointInfo

PARALLEL_UPDATES = 0  # pushed by the coordinator

#: Engineering unit (as the gateway names it) → device class.  Units Home Assistant
#: would reject for every device class (%, %LEL, ppm, rpm) get none.
UNIT_DEVICE_CLASSES: dict[str, SensorDeviceClass] = {
    "A": SensorDeviceClass.CURRENT,
    "mA": SensorDeviceClass.CURRENT,
    "°C": SensorDeviceClass.TEMPERATURE,
    "K": SensorDeviceClass.TEMPERATURE,
    "bar": SensorDeviceClass.PRESSURE,
    "Pa": SensorDeviceClass.PRESSURE,
    "kPa": SensorDeviceClass.PRESSURE,
    "mbar": SensorDeviceClass.PRESSURE,
    "mm/s": SensorDeviceClass.SPEED,
    "m/s": SensorDeviceClass.SPEED,
    "V": SensorDeviceClass.VOLTAGE,
    "W": SensorDeviceClass.POWER,
    "kW": SensorDeviceClass.POWER,
    "kWh": SensorDeviceClass.ENERGY,
    "Hz": SensorDeviceClass.FREQUENCY,
    "m³/h": SensorDeviceClass.VOLUME_FLOW_RATE,
    "h": SensorDeviceClass.DURATION,
    "s": SensorDeviceClass.DURATION,
    "mm": SensorDeviceClass.DISTANCE,
    "m": SensorDeviceClass.DISTANCE,
    "kg": SensorDeviceClass.WEIGHT,
}

DEVICE_STATUSES = ["in_service", "standby", "under_maintenance", "retired"]
ACTIVE_STATES = {AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED}
UNACKNOWLEDGED_STATES = {
    AlarmState.ACTIVE_UNACKNOWLEDGED,
    AlarmState.RETURNED_UNACKNOWLEDGED,
    AlarmState.LATCHED_UNACKNOWLEDGED,
}

#: The early-warning index's components, as its virtual device's points are named.
INDEX_COMPONENTS = (
    "alarms_unack",
    "alarms_standing",
    "hazards_open",
    "rectification_overdue",
    "inspections_overdue",
    "risk_controls_overdue",
    "detection_flags",
    "device_unavailability",
)
#: The ``level`` point's value → the warning level (预警等级).
WARNING_LEVELS = {1: "blue", 2: "yellow", 3: "orange", 4: "red"}


@dataclass(frozen=True, kw_only=True)
class PlantGuardSensorEntityDescription(SensorEntityDescription):
    """A sensor and how to read its state from the coordinator's data."""

    value_fn: Callable[[PlantGuardData], StateType | datetime]
    available_fn: Callable[[PlantGuardData], bool] = lambda _: True
    attributes_fn: Callable[[PlantGuardData], dict[str, Any] | None] = lambda _: None


GATEWAY_SENSORS: tuple[PlantGuardSensorEntityDescription, ...] = (
    PlantGuardSensorEntityDescription(
        key="active_alarms",
        translation_key="active_alarms",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: sum(s.state in ACTIVE_STATES for s in data.alarms.values()),
    ),
    PlantGuardSensorEntityDescription(
        key="unacknowledged_alarms",
        translation_key="unacknowledged_alarms",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: sum(s.state in UNACKNOWLEDGED_STATES for s in data.alarms.values()),
    ),
)


def _device_status(device: DeviceInfo) -> PlantGuardSensorEntityDescription:
    return PlantGuardSensorEntityDescription(
        key=f"{device.key}-status",
        translation_key="device_status",
        device_class=SensorDeviceClass.ENUM,
        options=DEVICE_STATUSES,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda data: _status_of(data, device.key),
    )


def _status_of(data: PlantGuardData, device_key: str) -> str | None:
    device = data.model.device(device_key)
    if device is None or device.status not in DEVICE_STATUSES:
        return None
    return device.status


def _is_index(point: PointInfo, device: DeviceInfo) -> bool:
    """``point`` is the early-warning index: its device also has a ``level`` point."""
    return point.point_id == "index" and any(p.point_id == "level" for p in device.points)


def _sample(data: PlantGuardData, key: str) -> float | None:
    sample = data.points.get(key)
    if sample is None or sample.value is None or sample.bad:
        return None
    return float(sample.value)


def _index_attributes(device: DeviceInfo) -> Callable[[PlantGuardData], dict[str, Any]]:
    """The warning level and the components beside the index (those the device has)."""
    siblings = {p.point_id: p.key for p in device.points}
    level_key = siblings["level"]
    components = {name: siblings[name] for name in INDEX_COMPONENTS if name in siblings}

    def attributes(data: PlantGuardData) -> dict[str, Any]:
        level = _sample(data, level_key)
        return {
            "level": WARNING_LEVELS.get(round(level)) if level is not None else None,
            **{name: _sample(data, key) for name, key in components.items()},
        }

    return attributes


def _point(point: PointInfo, device: DeviceInfo) -> PlantGuardSensorEntityDescription:
    key = point.key
    index = _index_attributes(device) if _is_index(point, device) else None

    def value(data: PlantGuardData) -> StateType:
        sample = data.points.get(key)
        if sample is None or sample.value is None:
            return None
        return float(sample.value)

    def available(data: PlantGuardData) -> bool:
        sample = data.points.get(key)
        return sample is not None and not sample.bad

    def attributes(data: PlantGuardData) -> dict[str, Any]:
        sample = data.points.get(key)
        quality = {"quality": sample.quality if sample is not None else None}
        return quality if index is None else quality | index(data)

    return PlantGuardSensorEntityDescription(
        key=key,
        name=point.name,
        device_class=UNIT_DEVICE_CLASSES.get(point.unit),
        native_unit_of_measurement=point.unit or None,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=value,
        available_fn=available,
        attributes_fn=attributes,
    )


def _alarm(alarm: AlarmInfo) -> PlantGuardSensorEntityDescription:
    key = alarm.key

    def value(data: PlantGuardData) -> str | None:
        status = data.alarms.get(key)
        return status.state.value if status is not None else None

    def attributes(data: PlantGuardData) -> dict[str, Any] | None:
        status = data.alarms.get(key)
        if status is None:
            return None
        return {
            "alarm_id": alarm.alarm_id,
            "active": status.active,
            "acknowledged": status.acknowledged,
            "confirmed": status.confirmed,
            "latched": status.latched,
            "shelving": status.shelving or None,
            "suppressed": status.suppressed,
            "out_of_service": status.out_of_service,
            "priority": status.priority.value,
            "severity": status.severity,
            "limit": status.limit or None,
            "message": status.message,
            "comment": status.comment,
            "user": status.user,
            "last_change": status.time.isoformat() if status.time else None,
        }

    return PlantGuardSensorEntityDescription(
        key=key,
        translation_key="alarm",
        translation_placeholders={"alarm": alarm.name},
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in AlarmState],
        value_fn=value,
        attributes_fn=attributes,
    )


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PlantGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add sensors now, and for every device or point the gateway adds later."""
    coordinator = entry.runtime_data.coordinator
    known: set[str] = set()

    @callback
    def add_new() -> None:
        entities: list[PlantGuardSensor] = []
        if not known:
            entities.extend(PlantGuardSensor(coordinator, d) for d in GATEWAY_SENSORS)
            known.update(d.key for d in GATEWAY_SENSORS)
        for alarm in coordinator.data.model.alarms:  # the site's own, on the gateway
            if alarm.key not in known:
                known.add(alarm.key)
                entities.append(PlantGuardSensor(coordinator, _alarm(alarm)))
        for device in coordinator.data.model.devices:
            descriptions = [
                _device_status(device),
                *(_point(p, device) for p in device.points if p.data_type != "bool"),
                *(_alarm(a) for a in device.alarms),
            ]
            for description in descriptions:
                if description.key not in known:
                    known.add(description.key)
                    entities.append(PlantGuardSensor(coordinator, description, device))
        if entities:
            async_add_entities(entities)

    add_new()
    entry.async_on_unload(coordinator.async_add_listener(add_new))


class PlantGuardSensor(PlantGuardEntity, SensorEntity):
    """A sensor whose state comes from the coordinator through its description."""

    entity_description: PlantGuardSensorEntityDescription

    @property
    def available(self) -> bool:
        return super().available and self.entity_description.available_fn(self.coordinator.data)

    @property
    def native_value(self) -> StateType | datetime:
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        return self.entity_description.attributes_fn(self.coordinator.data)
