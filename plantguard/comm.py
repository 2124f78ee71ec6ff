"""Core device-health rules: communication loss, and device identity changes.

Why in the core and not in a driver: every driver already reports a lost device
the same way — the engine gives all its points ``BAD_NOT_CONNECTED`` or
``BAD_COMMUNICATION_ERROR`` — so one rule over the value table raises the
communication-loss alarm for Modbus, simulated and third-party devices alike,
and the alarm goes through the alarm manager like any other (journalled,
acknowledged, published to OPC UA).

* :class:`CommLossRule` — alarm ``<device>.comm`` (system, high): active while
  every point of the device has a communication quality; clears as soon as any
  point is readable again.  Vectorised: one ``bincount`` per scan over all points.
* :class:`DeviceFaultRule` — alarm ``<device>.fault`` (system, high): active
  while any point of a device that answers is Bad because of the device or the
  configuration (``BAD_DEVICE_FAILURE`` — e.g. a register the device refuses —,
  ``BAD_CONFIGURATION_ERROR``, or plain ``BAD`` — e.g. a NaN in a float
  register); its message names the points and, when the driver says why (a
  ``faults`` mapping, see :class:`FaultReporter`), the refused request or the
  undecodable register.  Vectorised: one table lookup and one reduction per
  scan; the message is built only when a device's set of faulty points changes.
* :class:`IdentityRule` — alarm ``<device>.identity`` (security, high): a device
  reports a manufacturer, model, serial number, hardware or firmware version other
  than its basic information in the site file (when the file states it) or than
  the first identity it reported since start-up.  The one identity check: the
  ``device_identity`` security rule runs it with its own settings.
* :class:`IdentityWatch` — asks drivers who their device is (``identify()``) after
  each connect, keeps the reported identity merged into the configured basic
  information (:attr:`IdentityWatch.info`), publishes it as a ``device_identity``
  event, and runs an :class:`IdentityRule` unless the site configures one.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .events import EventBus, EventReader, SecurityEvent, default_bus
from .model import AlarmDefinition, DeviceInfo, Finding, Priority, Quality, Site
from .rules import Rule
from .table import ValueTable

__all__ = [
    "COMM_LOST",
    "DEVICE_FAULT",
    "IDENTITY_FIELDS",
    "CommLossRule",
    "DeviceFaultRule",
    "FaultReporter",
    "IdentityRule",
    "IdentityWatch",
    "core_rules",
]

log = logging.getLogger(__name__)

#: Qualities that mean "the device could not be talked to" (not "it answered badly").
COMM_LOST = (Quality.BAD_NOT_CONNECTED, Quality.BAD_COMMUNICATION_ERROR)
#: Qualities that mean "the device answered, but this point is unusable": a refused
#: request, a point the configuration cannot read, a value that is not a number.
DEVICE_FAULT = (Quality.BAD, Quality.BAD_DEVICE_FAILURE, Quality.BAD_CONFIGURATION_ERROR)
_UNKNOWN, _OK, _LOST = -1, 0, 1
_FAULT = 1
#: Quality byte → 0: fine, 1: device fault, 2: no news (not read yet, or not reachable).
_FAULT_CLASS = np.zeros(256, dtype=np.int8)
_FAULT_CLASS[list(DEVICE_FAULT)] = 1
_FAULT_CLASS[[*COMM_LOST, Quality.BAD_WAITING_FOR_INITIAL_DATA]] = 2
#: How a fault is named when the driver gives no reason.
_QUALITY_REASON: dict[int, str] = {
    Quality.BAD: "bad value",
    Quality.BAD_DEVICE_FAILURE: "device failure",
    Quality.BAD_CONFIGURATION_ERROR: "configuration error",
}
#: A fault message names at most this many reasons, and this many points per reason.
_MAX_REASONS = 6
_MAX_POINTS = 8


class CommLossRule(Rule):
    """``<device>.comm``: all points of a device lost to communication errors."""

    def __init__(self, site: Site, table: ValueTable) -> None:
        devices = [d for d in site.devices if d.points]
        self._device_ids = tuple(d.id for d in devices)
        self._names = tuple(d.name or d.id for d in devices)
        self._slots = np.concatenate(
            [table.indices([p.id for p in d.points]) for d in devices]
            or [np.zeros(0, dtype=np.intp)]
        )
        self._owner = np.repeat(
            np.arange(len(devices), dtype=np.intp), [len(d.points) for d in devices]
        )
        self._sizes = np.bincount(self._owner, minlength=len(devices))
        self._state = np.full(len(devices), _UNKNOWN, dtype=np.int8)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [
            AlarmDefinition(
                id=f"{device_id}.comm",
                source_id=device_id,
                device_id=device_id,
                kind="system",
                rule="comm",
                priority=Priority.HIGH,
                message=f"Communication with {name} lost",
            )
            for device_id, name in zip(self._device_ids, self._names, strict=True)
        ]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        quality = table.quality[self._slots]
        lost = np.isin(quality, COMM_LOST)
        readable = (quality < Quality.BAD) | np.isin(quality, DEVICE_FAULT)  # it answered
        n_lost = np.bincount(self._owner, weights=lost, minlength=self._state.size)
        n_readable = np.bincount(self._owner, weights=readable, minlength=self._state.size)
        state = self._state.copy()
        state[n_lost == self._sizes] = _LOST
        state[n_readable > 0] = _OK
        changed = np.flatnonzero(state != self._state)
        self._state = state
        findings = []
        for i in changed.tolist():  # per device, only when its state changes
            active = bool(state[i] == _LOST)
            findings.append(
                Finding(
                    alarm_id=f"{self._device_ids[i]}.comm",
                    active=active,
                    condition="COMM_LOSS" if active else "",
                    severity=int(Priority.HIGH),
                    message=(
                        f"Communication with {self._names[i]} lost"
                        if active
                        else f"Communication with {self._names[i]} restored"
                    ),
                    value=float(n_lost[i]),
                    time=now,
                )
            )
        return findings


class FaultReporter(Protocol):
    """A driver that says why points are Bad: ``faults`` maps point id → reason.

    Optional for drivers; the Modbus driver names the refused request (exception,
    function, start, count) or the register that held NaN/Inf.
    """

    @property
    def faults(self) -> Mapping[str, str]: ...


class DeviceFaultRule(Rule):
    """``<device>.fault``: points of a device that answers are Bad by a device or configuration fault.

    Active while any point of the device has a :data:`DEVICE_FAULT` quality;
    cleared when none has.  Points with no news (not read yet, communication
    lost) keep what was last known of them, so a communication blip neither
    clears nor re-raises the alarm (and while ``<device>.comm`` is active the
    alarm manager suppresses this one anyway).  The condition is
    ``DEVICE_FAULT(<n>)`` with the number of faulty points, so a change of the
    affected points updates the message (without a new acknowledgement).

    :param others: rules already declared; a device whose ``<device>.fault`` one of
        them declares is left to that rule.
    """

    def __init__(self, site: Site, table: ValueTable, others: Iterable[Rule] = ()) -> None:
        taken = {d.id for rule in others for d in rule.alarms()}
        devices = [d for d in site.devices if d.points and f"{d.id}.fault" not in taken]
        self._device_ids = tuple(d.id for d in devices)
        self._names = tuple(d.name or d.id for d in devices)
        self._point_ids = tuple(p.id for d in devices for p in d.points)
        self._slots = table.indices(self._point_ids)
        sizes = np.array([len(d.points) for d in devices], dtype=np.intp)
        self._owner = np.repeat(np.arange(len(devices), dtype=np.intp), sizes)
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self._fault = np.zeros(self._slots.size, dtype=bool)  # last known, per point
        self._count = np.zeros(len(devices), dtype=np.intp)  # faulty points per device
        self._state = np.full(len(devices), _UNKNOWN, dtype=np.int8)
        self._drivers: Mapping[str, object] = {}

    def watch(self, drivers: Mapping[str, object]) -> None:
        """Name faults with the reasons each device's driver reports (``faults``, if any)."""
        self._drivers = drivers

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [
            AlarmDefinition(
                id=f"{device_id}.fault",
                source_id=device_id,
                device_id=device_id,
                kind="system",
                rule="fault",
                priority=Priority.HIGH,
                message=f"Device fault on {name}",
            )
            for device_id, name in zip(self._device_ids, self._names, strict=True)
        ]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        if not self._device_ids:
            return []
        quality = table.quality[self._slots]
        kind = _FAULT_CLASS[quality]
        news = kind != 2
        fault = np.where(news, kind == 1, self._fault)
        moved = np.flatnonzero(fault != self._fault)
        if moved.size:
            step = np.where(fault[moved], 1, -1)
            self._count += np.bincount(
                self._owner[moved], weights=step, minlength=self._count.size
            ).astype(np.intp)
            self._fault = fault
        answered = np.logical_or.reduceat(news, self._starts[:-1])
        state = np.where(self._count > 0, _FAULT, np.where(answered, _OK, self._state))
        dirty = state != self._state
        dirty[self._owner[moved]] |= state[self._owner[moved]] == _FAULT  # other points now
        self._state = state.astype(np.int8)
        findings = []
        for i in np.flatnonzero(dirty).tolist():  # per device, only when it changes
            active = bool(state[i] == _FAULT)
            count = int(self._count[i])
            findings.append(
                Finding(
                    alarm_id=f"{self._device_ids[i]}.fault",
                    active=active,
                    condition=f"DEVICE_FAULT({count})" if active else "",
                    severity=int(Priority.HIGH),
                    message=(
                        self._message(i, quality)
                        if active
                        else f"Device fault on {self._names[i]} cleared"
                    ),
                    value=float(count),
                    time=now,
                )
            )
        return findings

    def _message(self, i: int, quality: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
        """``Device fault on <name>: <points>: <reason>; …`` (reasons from the driver)."""
        low, high = int(self._starts[i]), int(self._starts[i + 1])
        reported = getattr(self._drivers.get(self._device_ids[i]), "faults", None)
        reasons: Mapping[str, str] = reported if isinstance(reported, Mapping) else {}
        by_reason: dict[str, list[str]] = {}
        for position in (np.flatnonzero(self._fault[low:high]) + low).tolist():
            point_id = self._point_ids[position]
            reason = reasons.get(point_id) or _QUALITY_REASON.get(
                int(quality[position]), "device fault"
            )
            by_reason.setdefault(reason, []).append(point_id)
        parts = [
            f"{_listed(points, _MAX_POINTS)}: {reason}"
            for reason, points in list(by_reason.items())[:_MAX_REASONS]
        ]
        if len(by_reason) > _MAX_REASONS:
            parts.append(f"and {len(by_reason) - _MAX_REASONS} more faults")
        return f"Device fault on {self._names[i]}: {'; '.join(parts)}"


def _listed(items: Sequence[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


class Identifiable(Protocol):
    """What :meth:`IdentityWatch.check` needs of a driver."""

    async def identify(self) -> Mapping[str, str]: ...


#: Identity fields compared by default, named as in :class:`DeviceInfo` (plus the
#: product code a Modbus device reports, compared with its first report).
IDENTITY_FIELDS = (
    "manufacturer",
    "model",
    "serial_number",
    "hardware_version",
    "firmware_version",
    "product_code",
)


class IdentityRule(Rule):
    """``<device>.identity``: a device reports an identity other than its configured one —
    or, for fields not configured, than it first reported.

    The one identity check.  The engine runs it with the defaults (all of
    :data:`IDENTITY_FIELDS`, high priority) through :class:`IdentityWatch`; the
    ``device_identity`` security rule of the site file runs it with the fields and
    priority it is given, and then the engine's steps aside.  It reads the
    ``device_identity`` events :class:`IdentityWatch` publishes, so a swapped device or
    an unplanned firmware update is seen whichever driver reported it.
    Conditions: ``FIRMWARE_CHANGED`` when only the firmware differs, else
    ``IDENTITY_CHANGED``; cleared by a report that matches again.
    """

    def __init__(
        self,
        site: Site,
        reader: EventReader,
        *,
        fields: Sequence[str] = IDENTITY_FIELDS,
        priority: Priority = Priority.HIGH,
    ) -> None:
        self._reader = reader
        self._fields = frozenset(fields)
        self._priority = priority
        self._devices = {d.id: d for d in site.devices}
        self._expected: dict[str, dict[str, str]] = {
            d.id: {f: str(getattr(d.info, f)) for f in fields if getattr(d.info, f, "")}
            for d in site.devices
        }
        self._active: dict[str, str] = {}  # device → its condition at the last report

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [
            AlarmDefinition(
                id=f"{d.id}.identity",
                source_id=d.id,
                device_id=d.id,
                kind="security",
                rule="identity",
                priority=self._priority,
                message=f"{d.name or d.id} reports a different identity",
            )
            for d in self._devices.values()
        ]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        findings = []
        for event in self._reader.drain():
            if event.kind == "device_identity" and event.source in self._expected:
                finding = self._compare(event.source, event.detail, now)
                if finding is not None:
                    findings.append(finding)
        return findings

    def _compare(self, device_id: str, detail: Mapping[str, str], now: float) -> Finding | None:
        expected = self._expected[device_id]
        reported = {f: v for f, v in detail.items() if f in self._fields and v}
        for f, v in reported.items():
            expected.setdefault(f, v)  # the first report is the baseline of unconfigured fields
        changed = {f: (expected[f], v) for f, v in reported.items() if expected[f] != v}
        condition = ""
        if changed:
            only_firmware = set(changed) == {"firmware_version"}
            condition = "FIRMWARE_CHANGED" if only_firmware else "IDENTITY_CHANGED"
        if self._active.get(device_id) == condition:
            return None  # the first report always tells (a restored alarm may clear)
        self._active[device_id] = condition
        name = self._devices[device_id].name or device_id
        if changed:
            what = ", ".join(f"{f} {old!r} → {new!r}" for f, (old, new) in sorted(changed.items()))
            message = f"{name} identity changed: {what}"
            log.warning("security: %s", message)
        else:
            message = f"{name} identity as expected"
        severity = int(self._priority) if changed else 0
        return Finding(
            f"{device_id}.identity", bool(changed), condition, severity, message, len(changed), now
        )


class IdentityWatch(Rule):
    """What each device says it is: asks drivers (``identify()``) after each connect,
    keeps the reported identity merged into the basic information (:attr:`info`), and
    publishes every report as a ``device_identity`` security event (fields named as in
    :class:`DeviceInfo`).

    The comparison is :class:`IdentityRule`'s: run here with its defaults, unless
    another rule already declares ``<device>.identity`` (the ``device_identity``
    security rule, configured in the site file, which is an :class:`IdentityRule` too).
    """

    def __init__(
        self, site: Site, taken: Collection[str] = (), bus: EventBus | None = None
    ) -> None:
        self._devices = {d.id: d for d in site.devices}
        self._bus = bus or default_bus()
        owned = not any(f"{d}.identity" in taken for d in self._devices)
        self._rule = IdentityRule(site, self._bus.reader()) if owned else None
        #: Basic information of each device with what it reported about itself.
        self.info: dict[str, DeviceInfo] = {d.id: d.info for d in site.devices}
        #: The identity each device last reported (driver field names).
        self.reported: dict[str, dict[str, str]] = {}

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._rule.alarms() if self._rule is not None else []

    async def check(self, device_id: str, driver: Identifiable, now: float) -> None:
        """Ask ``driver`` who the device is and publish it for the next scan.

        Never raises: an identification failure must not stop the device's polling.
        """
        try:
            reported = dict(await driver.identify())
        except Exception:
            log.exception("device %s: identify() failed", device_id)
            return
        self.record(device_id, reported, now)

    def record(self, device_id: str, reported: Mapping[str, str], now: float) -> None:
        """Keep and publish a reported identity (driver field names)."""
        device = self._devices.get(device_id)
        if device is None or not reported:
            return
        reported = dict(reported)
        self.reported[device_id] = reported
        self.info[device_id] = _merged(device.info, reported)
        self._bus.publish(
            SecurityEvent("device_identity", source=device_id, detail=_as_info(reported), time=now)
        )

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        return self._rule.evaluate(table, now) if self._rule is not None else []


def _as_info(reported: Mapping[str, str]) -> dict[str, str]:
    """A reported identity with the basic-information field names where one exists."""
    renamed = {"vendor_name": "manufacturer", "model_name": "model", "revision": "firmware_version"}
    return {renamed.get(key, key): value for key, value in reported.items()}


def _merged(info: DeviceInfo, reported: Mapping[str, str]) -> DeviceInfo:
    """Configured basic information, with the fields the device reported filled in."""
    update: dict[str, str] = {}
    if reported.get("vendor_name") and not info.manufacturer:
        update["manufacturer"] = reported["vendor_name"]
    model = reported.get("model_name") or reported.get("product_name")
    model = model or reported.get("product_code")
    if model and not info.model:
        update["model"] = model
    if reported.get("revision") and not info.firmware_version:
        update["firmware_version"] = reported["revision"]
    return info.model_copy(update=update) if update else info


def core_rules(
    site: Site, table: ValueTable, others: Iterable[Rule] = ()
) -> tuple[CommLossRule, IdentityWatch]:
    """The device-health rules every engine runs, next to the configured ``others``."""
    taken = {d.id for rule in others for d in rule.alarms()}
    return CommLossRule(site, table), IdentityWatch(site, taken)
