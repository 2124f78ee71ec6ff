"""Device items: basic information on record, the device answers, its identity, its points.

The device is polled once, as ``plantguard probe`` does (:func:`plantguard.probe.probe_site`:
its driver made as the gateway makes it, connected, every point read in its poll
groups, asked who it is, closed; nothing written).  A device that does not answer
is a failed item, and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import LoadedSite
from ..host import PluginRegistry
from ..model import Device, DeviceInfo, Quality
from ..probe import DeviceReport
from .record import Item, Status

__all__ = ["REQUIRED_INFO", "device_items", "device_times", "info_items"]

log = logging.getLogger(__name__)

#: Basic information every device must have on record (设备基础信息), field → what it is.
REQUIRED_INFO: dict[str, str] = {
    "manufacturer": "manufacturer",
    "model": "model",
    "serial_number": "serial number",
    "hardware_version": "hardware version",
    "firmware_version": "firmware version",
    "commissioned": "commissioning date",
    "responsible": "responsible person",
    "location": "location (position)",
}
#: What a driver's identity fields are called in the basic information.
_IDENTITY_NAMES = {
    "vendor_name": "manufacturer",
    "manufacturer": "manufacturer",
    "model_name": "model",
    "model": "model",
    "serial_number": "serial_number",
    "hardware_version": "hardware_version",
    "revision": "firmware_version",
    "firmware_version": "firmware_version",
}


def _missing(info: DeviceInfo) -> list[str]:
    missing = []
    for name in REQUIRED_INFO:
        if name == "location":
            if not (info.location.position or info.location.building):
                missing.append(name)
        elif not getattr(info, name):
            missing.append(name)
    return missing


def info_items(devices: Sequence[Device]) -> list[Item]:
    """An item per missing basic-information field; one passing item per complete device."""
    items = []
    for device in devices:
        missing = _missing(device.info)
        for name in missing:
            items.append(
                Item(
                    f"devices.{device.id}.info.{name}",
                    f"{device.id}: {REQUIRED_INFO[name]} on record",
                    Status.FAIL,
                    f"{device.name or device.id} has no {REQUIRED_INFO[name]} "
                    f"(info.{name} in the site file)",
                    {"device": device.id, "field": name},
                )
            )
        if not missing:
            info = device.info
            items.append(
                Item(
                    f"devices.{device.id}.info",
                    f"{device.id}: basic information on record",
                    Status.PASS,
                    f"{info.manufacturer} {info.model}, serial {info.serial_number}, firmware "
                    f"{info.firmware_version}, commissioned {info.commissioned}, "
                    f"responsible {info.responsible}",
                    {"device": device.id, **info.model_dump(mode="json")},
                )
            )
    return items


def device_items(reports: Sequence[DeviceReport]) -> list[Item]:
    """Per device: it answers, its identity is on record, every point reads Good in range."""
    items: list[Item] = []
    for report in reports:
        items += [_answer_item(report), _identity_item(report), _points_item(report)]
    return items


def _answer_item(report: DeviceReport) -> Item:
    device = report.device
    evidence: dict[str, Any] = {"device": device.id, "endpoint": report.endpoint}
    if not report.answered:
        evidence["error"] = report.error
        return Item(
            f"devices.{device.id}.answers",
            f"{device.id}: answers",
            Status.FAIL,
            f"{report.endpoint or device.driver}: no answer: {report.error}",
            evidence,
        )
    refused = [f.text for f in report.flags if f.code == "exception"]
    evidence["refused"] = refused
    n = len(report.points)
    summary = (
        f"{report.endpoint or device.driver}: {n} point{'s' if n != 1 else ''} read in one poll"
    )
    if refused:
        summary += f"; {len(refused)} requests refused"
    return Item(
        f"devices.{device.id}.answers", f"{device.id}: answers", Status.PASS, summary, evidence
    )


def _identity_item(report: DeviceReport) -> Item:
    device = report.device
    item_id, title = f"devices.{device.id}.identity", f"{device.id}: identity on record"
    evidence: dict[str, Any] = {"device": device.id, "reported": dict(report.identity)}
    if not report.answered:
        return Item(
            item_id, title, Status.FAIL, "not verified: the device did not answer", evidence
        )
    reported = {
        _IDENTITY_NAMES[k]: v for k, v in report.identity.items() if k in _IDENTITY_NAMES and v
    }
    if not reported:
        return Item(
            item_id,
            title,
            Status.NOT_APPLICABLE,
            "the device reports no identity (its driver or the device cannot say)"
            if not report.identity
            else f"it reports nothing the basic information records ({_fields(report.identity)})",
            evidence,
        )
    on_record = {name: str(getattr(device.info, name)) for name in reported}
    evidence["on_record"] = on_record
    unrecorded = [n for n in reported if not on_record[n]]
    differ = [n for n in reported if on_record[n] and on_record[n] != reported[n]]
    if differ or unrecorded:
        parts = [f"{n} {on_record[n]!r} on record, device says {reported[n]!r}" for n in differ]
        parts += [f"{n} not on record (device says {reported[n]!r})" for n in unrecorded]
        return Item(item_id, title, Status.FAIL, "; ".join(parts), evidence)
    return Item(item_id, title, Status.PASS, f"reports {_fields(reported)}: as on record", evidence)


def _fields(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in values.items())


def _points_item(report: DeviceReport) -> Item:
    device = report.device
    item_id, title = f"devices.{device.id}.points", f"{device.id}: every point reads Good in range"
    rows = []
    bad = []
    for p in report.points:
        point = p.point
        in_range = (
            point.range is None
            or not math.isfinite(p.value)
            or point.range[0] <= p.value <= point.range[1]
        )
        good = p.quality == Quality.GOOD and math.isfinite(p.value)
        rows.append(
            {
                "point": point.id,
                "value": p.value if math.isfinite(p.value) else None,
                "unit": point.unit,
                "quality": p.quality_name,
                "range": list(point.range) if point.range is not None else None,
                "ok": good and in_range,
            }
        )
        if not good:
            reason = f": {p.reason}" if p.reason else ""
            bad.append(f"{point.id} {p.quality_name}{reason}")
        elif not in_range:
            assert point.range is not None
            bad.append(
                f"{point.id} = {p.value:.6g} outside {point.range[0]:g} … {point.range[1]:g}"
            )
    evidence: dict[str, Any] = {"device": device.id, "points": rows}
    if not report.answered:
        return Item(item_id, title, Status.FAIL, "not read: the device did not answer", evidence)
    if bad:
        return Item(item_id, title, Status.FAIL, "; ".join(bad), evidence)
    n = len(rows)
    return Item(
        item_id, title, Status.PASS, f"{n} point{'s' if n != 1 else ''} Good within range", evidence
    )


async def device_times(
    loaded: LoadedSite, host: PluginRegistry, timeout: float
) -> dict[str, float | None]:
    """Device clock minus this machine's (s) for devices whose driver reports time.

    A driver reports its device's clock with an optional ``async device_time() ->
    float`` (epoch seconds); none of the built-in drivers does (Modbus has no clock).
    """
    out: dict[str, float | None] = {}
    for device in loaded.site.devices:
        driver = host.drivers[device.driver].create(
            device, loaded.connections[device.id], loaded.addresses[device.id]
        )
        read = getattr(driver, "device_time", None)
        if not callable(read):
            continue
        try:
            async with asyncio.timeout(timeout):
                await driver.connect()
                before = time.time()
                reported = float(await read())
                out[device.id] = reported - (before + time.time()) / 2
        except Exception as exc:  # a device that cannot be asked is a failed clock item
            log.info("device %s: time not read: %s", device.id, exc)
            out[device.id] = None
        finally:
            try:
                await driver.close()
            except Exception:
                log.debug("closing %s failed", device.id, exc_info=True)
    return out
