"""Home Assistant MQTT discovery: the plant in HA without the custom integration.

Published (retained) for each device of the site:

* ``<prefix>/sensor/<node>/<point>/config`` — a sensor per number point, with its unit
  and, where the unit says it, a device class; ``binary_sensor`` for bool points;
* ``<prefix>/binary_sensor/<node>/<alarm>/config`` — a ``problem`` binary sensor per
  alarm, its state details as attributes;
* ``<prefix>/button/<node>/<alarm>_ack/config`` — a button per alarm that publishes
  the alarm id to the node's acknowledge command topic;

with the device's basic information as the HA device, and availability from the
gateway's Last Will (``offline``) and the device's own link (all points Bad).
Entity values come from one retained JSON state topic per device, alarm states
from one per device.  Configs the node published before for devices or alarms the
site no longer has are removed with an empty retained payload, which is how HA
deletes a discovered entity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from plantguard.plugin import Device, Point

from .catalogue import DeviceMetrics, local_name

__all__ = [
    "DEVICE_CLASS_BY_UNIT",
    "Topics",
    "alarm_state",
    "device_configs",
    "device_state",
    "safe_id",
    "stale_configs",
]

#: Units that name an HA sensor device class (spelled as HA spells them).
DEVICE_CLASS_BY_UNIT: dict[str, str] = {
    "°C": "temperature",
    "°F": "temperature",
    "K": "temperature",
    "bar": "pressure",
    "mbar": "pressure",
    "Pa": "pressure",
    "hPa": "pressure",
    "kPa": "pressure",
    "psi": "pressure",
    "A": "current",
    "mA": "current",
    "V": "voltage",
    "mV": "voltage",
    "W": "power",
    "kW": "power",
    "Hz": "frequency",
    "mm/s": "speed",
    "m/s": "speed",
    "kWh": "energy",
    "m³/h": "volume_flow_rate",
    "L/min": "volume_flow_rate",
}

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def safe_id(text: str) -> str:
    """A topic level / object id HA accepts (``[A-Za-z0-9_-]``)."""
    return _UNSAFE.sub("_", text)


class Topics:
    """The node's own topics (state, availability, commands) under ``plantguard/<node>``."""

    def __init__(self, prefix: str, node: str) -> None:
        self.prefix = prefix
        self.node = safe_id(node)
        self.base = f"plantguard/{self.node}"
        self.status = f"{self.base}/status"
        self.acknowledge = f"{self.base}/command/acknowledge"

    def state(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/state"

    def alarms(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/alarms"

    def availability(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/availability"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{safe_id(object_id)}/config"

    @property
    def config_filter(self) -> str:
        return f"{self.prefix}/+/{self.node}/+/config"


def _device_block(topics: Topics, device: Device) -> dict[str, Any]:
    info = device.info
    block: dict[str, Any] = {
        "identifiers": [f"plantguard_{topics.node}_{device.id}"],
        "name": device.name or device.id,
    }
    optional = {
        "manufacturer": info.manufacturer,
        "model": info.model,
        "serial_number": info.serial_number,
        "hw_version": info.hardware_version,
        "sw_version": info.firmware_version,
        "suggested_area": device.area_id,
    }
    block.update({k: v for k, v in optional.items() if v})
    return block


def _common(topics: Topics, device: Device, unique: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"plantguard_{topics.node}_{safe_id(unique)}",
        "device": _device_block(topics, device),
        "availability": [
            {"topic": topics.status},
            {"topic": topics.availability(device.id)},
        ],
        "availability_mode": "all",
        "origin": {"name": "PlantGuard"},
    }


def _key(name: str) -> str:
    """A Jinja subscript of ``value_json`` for a key that may hold dots."""
    return "value_json[" + repr(name) + "]"


def _point_config(topics: Topics, device: Device, point: Point) -> tuple[str, dict[str, Any]]:
    local = local_name(point.id, device.id)
    config = _common(topics, device, point.id, point.name or local)
    config["state_topic"] = topics.state(device.id)
    value = _key(local)
    if point.data_type == "bool":
        config["value_template"] = (
            "{{ 'None' if " + value + " is none else ('ON' if " + value + " else 'OFF') }}"
        )
        return topics.config("binary_sensor", point.id), config
    config["value_template"] = "{{ " + value + " }}"
    config["state_class"] = "measurement"
    if point.unit:
        config["unit_of_measurement"] = point.unit
        device_class = DEVICE_CLASS_BY_UNIT.get(point.unit)
        if device_class:
            config["device_class"] = device_class
    return topics.config("sensor", point.id), config


def _alarm_configs(
    topics: Topics, device: Device, alarm_id: str
) -> list[tuple[str, dict[str, Any]]]:
    local = local_name(alarm_id, device.id)
    sensor = _common(topics, device, alarm_id, f"Alarm {local}")
    entry = _key(local)
    sensor.update(
        {
            "state_topic": topics.alarms(device.id),
            "value_template": "{{ 'ON' if " + entry + "['active'] else 'OFF' }}",
            "json_attributes_topic": topics.alarms(device.id),
            "json_attributes_template": "{{ " + entry + " | tojson }}",
            "device_class": "problem",
        }
    )
    button = _common(topics, device, f"{alarm_id}_ack", f"Acknowledge {local}")
    button.update({"command_topic": topics.acknowledge, "payload_press": alarm_id})
    return [
        (topics.config("binary_sensor", alarm_id), sensor),
        (topics.config("button", f"{alarm_id}_ack"), button),
    ]


def device_configs(topics: Topics, metrics: DeviceMetrics) -> list[tuple[str, dict[str, Any]]]:
    """Every discovery config of one device: (topic, config)."""
    configs = [_point_config(topics, metrics.device, p) for p in metrics.points]
    for alarm in metrics.alarms:
        configs += _alarm_configs(topics, metrics.device, alarm.alarm_id)
    return configs


def device_state(
    names: Iterable[str], values: Iterable[float], bad: Iterable[bool], datatypes: Iterable[str]
) -> dict[str, object]:
    """The JSON state of a device: each point's value, ``null`` while its quality is Bad."""
    state: dict[str, object] = {}
    for name, value, is_bad, datatype in zip(names, values, bad, datatypes, strict=True):
        if is_bad or math.isnan(value):
            state[name] = None
        elif datatype == "bool":
            state[name] = bool(value)
        elif datatype == "int":
            state[name] = int(value)
        else:
            state[name] = value
    return state


def alarm_state(status: Any, priority: int) -> dict[str, object]:
    """One alarm in the device's alarm JSON (also the binary sensor's attributes)."""
    return {
        "active": bool(status.state.active),
        "acknowledged": bool(status.state.acknowledged),
        "shelved": bool(status.shelved),
        "state": str(status.state.value),
        "condition": status.condition,
        "priority": int(status.severity) or priority,
        "message": status.message,
    }


def stale_configs(retained: Mapping[str, bytes], current: Iterable[str]) -> list[str]:
    """Config topics the broker still holds for this node that the site no longer has."""
    keep = set(current)
    return sorted(t for t, payload in retained.items() if payload and t not in keep)
