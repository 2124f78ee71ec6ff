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
* :class:`IdentityWatch` — alarm ``<device>.identity`` (security, high): the
  engine hands it what a driver's ``identify()`` returned after each connect; a
  vendor, product or revision different from the device's basic information in
  the site file (when the file states it) or from the first identity reported
  since start-up is a security finding.  The reported identity, merged into the
  configured basic information, is kept in :attr:`IdentityWatch.info`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from .events import EventBus, SecurityEvent, default_bus
from .model import AlarmDefinition, DeviceInfo, Finding, Priority, Quality, Site
from .rules import Rule
from .table import ValueTable

__all__ = ["COMM_LOST", "CommLossRule", "IdentityWatch", "core_rules"]

log = logging.getLogger(__name__)

#: Qualities that mean "the device could not be talked to" (not "it answered badly").
COMM_LOST = (Quality.BAD_NOT_CONNECTED, Quality.BAD_COMMUNICATION_ERROR)
_UNKNOWN, _OK, _LOST = -1, 0, 1
#: Reported identity fields that are compared, and the basic-information field each is
#: checked against (None: only against the first identity reported since start-up).
_WATCHED: dict[str, str | None] = {
    "vendor_name": "manufacturer",
    "product_code": None,
    "model_name": "model",
    "revision": "firmware_version",
}


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
        readable = (quality < Quality.BAD) | (quality == Quality.BAD_DEVICE_FAILURE)
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


class Identifiable(Protocol):
    """What :meth:`IdentityWatch.check` needs of a driver."""

    async def identify(self) -> Mapping[str, str]: ...


class IdentityWatch(Rule):
    """``<device>.identity``: the device reports another vendor, product or revision.

    Every report is also published as a ``device_identity`` security event
    (:mod:`plantguard.events`, fields named as in :class:`DeviceInfo`), so the
    security rules see reported firmware too.  When another rule already declares
    ``<device>.identity`` (the ``device_identity`` security rule, configured in the
    site file), that rule owns the alarm and this one only reads and publishes.
    """

    def __init__(
        self, site: Site, taken: Collection[str] = (), bus: EventBus | None = None
    ) -> None:
        self._devices = {d.id: d for d in site.devices}
        self._bus = bus or default_bus()
        self._owned = {d for d in self._devices if f"{d}.identity" not in taken}
        self._first: dict[str, dict[str, str]] = {}
        self._pending: list[Finding] = []
        #: Basic information of each device with what it reported about itself.
        self.info: dict[str, DeviceInfo] = {d.id: d.info for d in site.devices}
        #: The identity each device last reported (driver field names).
        self.reported: dict[str, dict[str, str]] = {}

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [
            AlarmDefinition(
                id=f"{d.id}.identity",
                source_id=d.id,
                device_id=d.id,
                kind="security",
                rule="identity",
                priority=Priority.HIGH,
                message=f"{d.name or d.id} reports a different identity",
            )
            for d in self._devices.values()
            if d.id in self._owned
        ]

    async def check(self, device_id: str, driver: Identifiable, now: float) -> None:
        """Ask ``driver`` who the device is and queue a finding for the next scan.

        Never raises: an identification failure must not stop the device's polling.
        """
        try:
            reported = dict(await driver.identify())
        except Exception:
            log.exception("device %s: identify() failed", device_id)
            return
        self.record(device_id, reported, now)

    def record(self, device_id: str, reported: Mapping[str, str], now: float) -> None:
        """Compare a reported identity with the expected one; queue the finding."""
        device = self._devices.get(device_id)
        if device is None or not reported:
            return
        reported = dict(reported)
        self.reported[device_id] = reported
        self.info[device_id] = _merged(device.info, reported)
        self._bus.publish(
            SecurityEvent("device_identity", source=device_id, detail=_as_info(reported), time=now)
        )
        if device_id not in self._owned:
            return
        baseline = self._first.setdefault(device_id, reported)
        changes = []
        for key, info_field in _WATCHED.items():
            got = reported.get(key, "")
            if not got:
                continue
            configured = str(getattr(device.info, info_field)) if info_field else ""
            expected = configured or baseline.get(key, "")
            if expected and got != expected:
                changes.append(f"{key} {expected!r} → {got!r}")
        message = (
            f"{device.name or device_id} identity changed: {'; '.join(changes)}"
            if changes
            else f"{device.name or device_id} identity as expected"
        )
        if changes:
            log.warning("security: %s", message)
        self._pending.append(
            Finding(
                alarm_id=f"{device_id}.identity",
                active=bool(changes),
                condition="IDENTITY_CHANGED" if changes else "",
                severity=int(Priority.HIGH),
                message=message,
                value=float(len(changes)),
                time=now,
            )
        )

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        findings, self._pending = self._pending, []
        return findings


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
