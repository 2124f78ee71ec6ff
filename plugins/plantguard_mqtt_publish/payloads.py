"""Sparkplug B payloads of the edge node, built with the official protobuf schema.

The messages are instances of the schema's ``Payload`` class as compiled by
pysparkplug (``pysparkplug._protobuf``): pysparkplug's own ``Metric`` dataclass has
no metric properties, and the engineering unit, range and quality travel as
properties.  Nothing here writes protobuf bytes by hand; values go through
pysparkplug's :class:`~pysparkplug.DataType` coders.  This is the one module that
touches the schema classes: a newer pysparkplug is adopted here.

Timestamps are milliseconds since the epoch (UTC), as Sparkplug requires.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pysparkplug import DataType, Metric, NDeath
from pysparkplug._protobuf import Payload

from plantguard.plugin import AlarmState, Device

from .catalogue import ACK_COMMAND, ALARM_FIELDS, USER_METRIC, AlarmMetrics, DeviceMetrics
from .quality import GOOD, SPARKPLUG_QUALITY

__all__ = [
    "BD_SEQ",
    "REBIRTH",
    "alarm_data",
    "alarm_values",
    "device_birth",
    "device_data",
    "device_death",
    "millis",
    "node_birth",
    "node_death",
]

BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

_INFO_FIELDS = (
    ("Manufacturer", "manufacturer"),
    ("Model", "model"),
    ("SerialNumber", "serial_number"),
    ("HardwareRevision", "hardware_version"),
    ("SoftwareRevision", "firmware_version"),
)


def millis(seconds: float) -> int:
    return round(seconds * 1000.0)


def _new(timestamp_ms: int, seq: int | None) -> Any:
    payload = Payload()
    payload.timestamp = timestamp_ms
    if seq is not None:
        payload.seq = seq
    return payload


def _set_value(metric: Any, datatype: DataType, value: object) -> None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        metric.is_null = True
        return
    if datatype in (DataType.BOOLEAN, DataType.INT64, DataType.INT32):
        value = bool(value) if datatype is DataType.BOOLEAN else int(value)  # type: ignore[call-overload]
    setattr(metric, datatype.field, datatype.encode(value))  # type: ignore[arg-type]


def _add(
    payload: Any,
    name: str | None,
    alias: int,
    datatype: DataType,
    value: object,
    *,
    timestamp_ms: int,
    birth: bool = False,
) -> Any:
    metric = payload.metrics.add()
    if name is not None:
        metric.name = name
    metric.alias = alias
    metric.timestamp = timestamp_ms
    if birth:
        metric.datatype = int(datatype)
    _set_value(metric, datatype, value)
    return metric


def _properties(metric: Any, properties: Mapping[str, object]) -> None:
    for key, value in properties.items():
        metric.properties.keys.append(key)
        prop = metric.properties.values.add()
        if isinstance(value, str):
            prop.type = int(DataType.STRING)
            prop.string_value = value
        elif isinstance(value, int):
            prop.type = int(DataType.INT32)
            prop.int_value = DataType.INT32.encode(value)
        else:
            prop.type = int(DataType.DOUBLE)
            prop.double_value = float(value)  # type: ignore[arg-type]


def node_birth(bd_seq: int, seq: int, timestamp_ms: int, site_name: str) -> bytes:
    payload = _new(timestamp_ms, seq)
    _add(payload, BD_SEQ, 1, DataType.INT64, bd_seq, timestamp_ms=timestamp_ms, birth=True)
    _add(payload, REBIRTH, 2, DataType.BOOLEAN, False, timestamp_ms=timestamp_ms, birth=True)
    metric = payload.metrics.add()
    metric.name = "Properties/Site"
    metric.timestamp = timestamp_ms
    metric.datatype = int(DataType.STRING)
    metric.string_value = site_name
    return bytes(payload.SerializeToString())


def node_death(bd_seq: int) -> bytes:
    """The NDEATH the broker publishes as the gateway's Last Will (no timestamp: it is
    registered at connect time, long before it is sent)."""
    metric = Metric(timestamp=None, name=BD_SEQ, datatype=DataType.INT64, value=bd_seq)
    return NDeath(timestamp=None, bd_seq_metric=metric).encode()


def device_death(seq: int, timestamp_ms: int) -> bytes:
    return bytes(_new(timestamp_ms, seq).SerializeToString())


def alarm_values(status: Any, alarm: AlarmMetrics) -> tuple[bool, bool, bool, int]:
    """Active, Acked, Shelved, Priority of one alarm's status."""
    state: AlarmState = status.state
    severity = int(status.severity) or alarm.priority
    return (state.active, state.acknowledged, bool(status.shelved), severity)


def _info(device: Device) -> dict[str, str]:
    info = {label: str(getattr(device.info, attr)) for label, attr in _INFO_FIELDS}
    info["Category"] = device.category
    info["Name"] = device.name or device.id
    return info


def device_birth(
    metrics: DeviceMetrics,
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    statuses: Mapping[str, Any],
    *,
    seq: int,
    timestamp_ms: int,
) -> bytes:
    """DBIRTH: every point with datatype, unit, range, description and quality; the
    device's information; every alarm's state and its acknowledge command."""
    payload = _new(timestamp_ms, seq)
    for i, point in enumerate(metrics.points):
        value = float(values[i])
        metric = _add(
            payload,
            metrics.names[i],
            int(metrics.aliases[i]),
            metrics.datatypes[i],
            value,
            timestamp_ms=timestamp_ms,
            birth=True,
        )
        props: dict[str, object] = {"Quality": int(SPARKPLUG_QUALITY[quality[i]])}
        if point.unit:
            props["engUnit"] = point.unit
        if point.range is not None:
            props["engLow"], props["engHigh"] = float(point.range[0]), float(point.range[1])
        props["readOnly"] = "true" if point.access == "read" else "false"
        if point.name:
            metric.metadata.description = point.name
        _properties(metric, props)
    for label, text in _info(metrics.device).items():
        metric = payload.metrics.add()
        metric.name = f"Properties/{label}"
        metric.timestamp = timestamp_ms
        metric.datatype = int(DataType.STRING)
        metric.string_value = text
    for alarm in metrics.alarms:
        status = statuses[alarm.alarm_id]
        for (field, datatype), alias, value in zip(
            ALARM_FIELDS, alarm.aliases, alarm_values(status, alarm), strict=False
        ):
            name = f"Alarms/{alarm.name}/{field}"
            _add(payload, name, alias, datatype, value, timestamp_ms=timestamp_ms, birth=True)
        name = f"Alarms/{alarm.name}/{ACK_COMMAND}"
        _add(
            payload,
            name,
            alarm.aliases[-1],
            DataType.BOOLEAN,
            False,
            timestamp_ms=timestamp_ms,
            birth=True,
        )
    _add(
        payload,
        USER_METRIC,
        metrics.user_alias,
        DataType.STRING,
        "",
        timestamp_ms=timestamp_ms,
        birth=True,
    )
    return bytes(payload.SerializeToString())


def device_data(
    metrics: DeviceMetrics,
    positions: npt.NDArray[np.intp],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    times_ms: npt.NDArray[np.int64],
    *,
    seq: int,
    timestamp_ms: int,
    with_quality: npt.NDArray[np.bool_] | None = None,
    historical: bool = False,
) -> bytes:
    """DDATA of the points at ``positions`` (within the device), by alias.

    ``with_quality`` says which metrics carry the ``Quality`` property (those whose
    quality is not Good or changed since the last report); ``historical`` flags
    store-and-forward samples so hosts do not take them as the live value.
    """
    payload = _new(timestamp_ms, seq)
    codes = SPARKPLUG_QUALITY[quality]
    flagged = codes != GOOD
    if with_quality is not None:
        flagged |= with_quality
    # The common case — a Good double with no quality news — goes through one C call
    # per metric; the others (null, bool, int, a Quality property) take the long way.
    plain = metrics.is_double[positions] & ~np.isnan(values) & ~flagged
    add = payload.metrics.add
    extra = {"is_historical": True} if historical else {}
    rows = zip(
        metrics.aliases[positions[plain]].tolist(),
        values[plain].tolist(),
        times_ms[plain].tolist(),
        strict=True,
    )
    if historical:
        for alias, value, stamp in rows:
            add(alias=alias, timestamp=stamp, double_value=value, is_historical=True)
    else:
        for alias, value, stamp in rows:
            add(alias=alias, timestamp=stamp, double_value=value)
    rest = ~plain
    for pos, value, stamp, code, flag in zip(
        positions[rest].tolist(),
        values[rest].tolist(),
        times_ms[rest].tolist(),
        codes[rest].tolist(),
        flagged[rest].tolist(),
        strict=True,
    ):
        metric = add(alias=int(metrics.aliases[pos]), timestamp=stamp, **extra)
        _set_value(metric, metrics.datatypes[pos], value)
        if flag:
            metric.properties.keys.append("Quality")
            metric.properties.values.add(type=int(DataType.INT32), int_value=code)
    return bytes(payload.SerializeToString())


def alarm_data(
    changes: list[tuple[AlarmMetrics, Any]],
    seq: int,
    timestamp_ms: int,
) -> bytes:
    """DDATA of alarm states that changed."""
    payload = _new(timestamp_ms, seq)
    for alarm, status in changes:
        for (_, datatype), alias, value in zip(
            ALARM_FIELDS, alarm.aliases, alarm_values(status, alarm), strict=False
        ):
            _add(payload, None, alias, datatype, value, timestamp_ms=timestamp_ms)
    return bytes(payload.SerializeToString())
