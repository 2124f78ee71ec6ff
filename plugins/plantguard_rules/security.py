"""Security rules: failed-login bursts, untrusted certificates, unexpected writes,
device identity and firmware changes, and firmware under a vulnerability advisory.

Their inputs are :class:`plantguard.events.SecurityEvent` records that the OPC
UA server and the drivers publish; each rule drains its own reader of the bus
every scan.  They are configured at site level, because they are about the
gateway and its devices rather than about a point::

    rules:
      failed_logins: {threshold: 5, window: 60}
      untrusted_certificate: {hold: 600}
      unexpected_write: {allowed_users: [engineer1]}
      device_identity: {}
      firmware_advisory: {file: advisories.yaml}

Event fields each rule reads are listed in ``docs/rules.md``.  Every alarm is
declared at start-up: site-wide ones as ``security.<rule>``, per-device ones as
``<device>.<rule>``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    IDENTITY_FIELDS,
    AlarmDefinition,
    Device,
    EventReader,
    Finding,
    IdentityRule,
    Point,
    PriorityName,
    Rule,
    RuleContext,
    RuleType,
    SecurityEvent,
    SettingError,
    Site,
    ValueTable,
)

from .advisories import AdvisoryError, AdvisoryFile, load_advisories
from .base import PRIORITY

__all__ = [
    "DeviceIdentityConfig",
    "FailedLoginsConfig",
    "FailedLoginsRule",
    "FirmwareAdvisoryConfig",
    "FirmwareAdvisoryRule",
    "UnexpectedWriteConfig",
    "UnexpectedWriteRule",
    "UntrustedCertificateConfig",
    "UntrustedCertificateRule",
    "security_rule_types",
]

log = logging.getLogger(__name__)


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: PriorityName = "high"


class _NoPointSettings(BaseModel):
    """Security rules are configured at site level, not per point."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(slots=True)
class _Alarm:
    definition: AlarmDefinition
    active: bool | None = None
    condition: str = ""


@dataclass(slots=True)
class _Alarms:
    """A few discrete alarms with change-only findings."""

    items: dict[str, _Alarm] = field(default_factory=dict)

    def add(
        self, alarm_id: str, source: str, device: str, rule: str, priority: PriorityName
    ) -> None:
        self.items[alarm_id] = _Alarm(
            AlarmDefinition(
                id=alarm_id,
                source_id=source,
                device_id=device,
                kind="security",
                rule=rule,
                priority=PRIORITY[priority],
            )
        )

    def definitions(self) -> list[AlarmDefinition]:
        return [a.definition for a in self.items.values()]

    def set(
        self,
        alarm_id: str,
        active: bool,
        condition: str,
        message: str,
        now: float,
        *,
        value: float = 0.0,
    ) -> Finding | None:
        alarm = self.items[alarm_id]
        condition = condition if active else ""
        if alarm.active == active and alarm.condition == condition:
            return None
        alarm.active = active
        alarm.condition = condition
        severity = int(alarm.definition.priority) if active else 0
        return Finding(alarm_id, active, condition, severity, message, value, now)


def _keep(findings: Iterable[Finding | None]) -> list[Finding]:
    return [f for f in findings if f is not None]


# --- failed logins -------------------------------------------------------------------


class FailedLoginsConfig(_Settings):
    threshold: int = Field(5, ge=1, description="failed logins from one source that raise")
    window: float = Field(60.0, gt=0, description="seconds the failures are counted over")


class FailedLoginsRule(Rule):
    """Failed logins (``failed_login`` events) per source in a sliding window."""

    ID = "security.failed_logins"

    def __init__(self, site: Site, cfg: FailedLoginsConfig, reader: EventReader) -> None:
        self._cfg = cfg
        self._reader = reader
        self._alarms = _Alarms()
        self._alarms.add(self.ID, site.id, "", "failed_logins", cfg.priority)
        #: Per source: (time, attempts) of each event; one event may stand for many
        #: attempts refused by a login lock (``detail["count"]``).
        self._times: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._users: dict[str, set[str]] = defaultdict(set)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions()

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        for e in self._reader.drain():
            if e.kind == "failed_login":
                count = str(e.detail.get("count", "1"))
                attempts = int(count) if count.isdigit() and int(count) > 0 else 1
                self._times[e.source or "?"].append((e.time, attempts))
                if e.user:
                    self._users[e.source or "?"].add(e.user)
        cut = now - self._cfg.window
        for source in list(self._times):
            times = self._times[source]
            while times and times[0][0] < cut:
                times.popleft()
            if not times:
                del self._times[source]
                self._users.pop(source, None)
        counts = {s: sum(n for _, n in t) for s, t in self._times.items()}
        bursts = {s: n for s, n in counts.items() if n >= self._cfg.threshold}
        if not bursts:
            return _keep(
                [self._alarms.set(self.ID, False, "", "failed logins back to normal", now)]
            )
        worst = max(bursts, key=lambda s: bursts[s])
        users = ", ".join(sorted(self._users.get(worst, ()))) or "unknown"
        message = (
            f"{bursts[worst]} failed logins in {self._cfg.window:g} s from {worst} "
            f"(users: {users})"
            + (f" and {len(bursts) - 1} more sources" if len(bursts) > 1 else "")
        )
        return _keep(
            [self._alarms.set(self.ID, True, "BURST", message, now, value=float(bursts[worst]))]
        )


# --- untrusted certificates ----------------------------------------------------------


class UntrustedCertificateConfig(_Settings):
    hold: float = Field(600.0, gt=0, description="seconds the alarm stays after the last rejection")


class UntrustedCertificateRule(Rule):
    """A client or server certificate was rejected (``certificate_rejected`` events)."""

    ID = "security.untrusted_certificate"

    def __init__(self, site: Site, cfg: UntrustedCertificateConfig, reader: EventReader) -> None:
        self._cfg = cfg
        self._reader = reader
        self._alarms = _Alarms()
        self._alarms.add(self.ID, site.id, "", "untrusted_certificate", cfg.priority)
        self._last = float("-inf")
        self._message = ""

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions()

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        for e in self._reader.drain():
            if e.kind == "certificate_rejected":
                self._last = max(self._last, e.time)
                subject = e.detail.get("subject") or e.detail.get("thumbprint") or "unknown"
                reason = e.detail.get("reason", "not trusted")
                self._message = (
                    f"certificate of {subject} from {e.source or '?'} rejected: {reason}"
                )
        active = now - self._last <= self._cfg.hold
        text = self._message if active else "no rejected certificates recently"
        return _keep([self._alarms.set(self.ID, active, "UNTRUSTED", text, now)])


# --- unexpected writes ---------------------------------------------------------------


class UnexpectedWriteConfig(_Settings):
    allowed_users: list[str] | None = Field(
        None, description="users who may write; unset: anyone authenticated"
    )
    hold: float = Field(600.0, gt=0, description="seconds the alarm stays after the last one")


class UnexpectedWriteRule(Rule):
    """Writes (``write`` events, ``source`` = point id) that should not happen.

    Unexpected: the point is read-only or unknown, the user is not allowed,
    nobody authenticated, or the device saw a write the gateway did not make
    (``detail["origin"] == "external"``).
    """

    SITE_ID = "security.unexpected_write"

    def __init__(self, site: Site, cfg: UnexpectedWriteConfig, reader: EventReader) -> None:
        self._cfg = cfg
        self._reader = reader
        self._points: dict[str, Point] = {p.id: p for p in site.points}
        self._alarms = _Alarms()
        self._alarms.add(self.SITE_ID, site.id, "", "unexpected_write", cfg.priority)
        for d in site.devices:
            self._alarms.add(
                f"{d.id}.unexpected_write", d.id, d.id, "unexpected_write", cfg.priority
            )
        self._last: dict[str, tuple[float, str]] = {}
        self._first = True

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions()

    def _why(self, e: SecurityEvent) -> str | None:
        point = self._points.get(e.source)
        if point is None:
            return f"write to unknown point {e.source!r}"
        if e.detail.get("origin") == "external":
            return f"{point.id} written by someone other than the gateway"
        if point.access != "read_write":
            return f"write to read-only point {point.id} by {e.user or 'anonymous'}"
        if not e.user:
            return f"anonymous write to {point.id}"
        allowed = self._cfg.allowed_users
        if allowed is not None and e.user not in allowed:
            return f"{e.user} is not allowed to write {point.id}"
        return None

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        for e in self._reader.drain():
            if e.kind != "write":
                continue
            why = self._why(e)
            if why is not None:
                point = self._points.get(e.source)
                key = f"{point.device_id}.unexpected_write" if point else self.SITE_ID
                self._last[key] = (e.time, why)
        out = []
        # The first scan reports every alarm; after it, only the alarms with a
        # write within reach can change (one per device would be a Python loop
        # over the site per scan), and each leaves that set once it has cleared.
        keys = list(self._alarms.items if self._first else self._last)
        self._first = False
        for key in keys:
            when, why = self._last.get(key, (float("-inf"), ""))
            active = now - when <= self._cfg.hold
            out.append(
                self._alarms.set(
                    key, active, "UNEXPECTED_WRITE", why or "no unexpected writes", now
                )
            )
            if not active:
                self._last.pop(key, None)
        return _keep(out)


# --- device identity -----------------------------------------------------------------


class DeviceIdentityConfig(_Settings):
    fields: list[str] = Field(default_factory=lambda: list(IDENTITY_FIELDS))


# --- firmware advisories -------------------------------------------------------------


class FirmwareAdvisoryConfig(_Settings):
    file: str = Field(description="advisory file (YAML or JSON), relative to the site file")


class FirmwareAdvisoryRule(Rule):
    """Devices whose firmware — configured, or reported by the device — is listed as
    affected in the advisory file.  The file is re-read when it changes, so a new
    advisory raises its alarms without a restart."""

    def __init__(
        self, site: Site, cfg: FirmwareAdvisoryConfig, reader: EventReader, context: RuleContext
    ) -> None:
        self._path = context.resolve(cfg.file)
        self._reader = reader
        try:
            self._file: AdvisoryFile = load_advisories(self._path)
        except AdvisoryError as exc:  # a bad file stops start-up, at rules.<name>.file
            raise SettingError(str(exc), field=("file",)) from exc
        self._mtime = self._stat()
        self._alarms = _Alarms()
        self._devices: dict[str, Device] = {d.id: d for d in site.devices}
        self._firmware = {d.id: d.info.firmware_version for d in site.devices}
        for d in site.devices:
            self._alarms.add(
                f"{d.id}.firmware_advisory", d.id, d.id, "firmware_advisory", cfg.priority
            )
        self._dirty = True

    def _stat(self) -> float:
        try:
            return self._path.stat().st_mtime
        except OSError:
            return float("nan")

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions()

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        for e in self._reader.drain():
            if e.kind == "device_identity" and e.source in self._firmware:
                fw = e.detail.get("firmware_version")
                if fw and fw != self._firmware[e.source]:
                    self._firmware[e.source] = fw
                    self._dirty = True
        mtime = self._stat()
        if mtime != self._mtime and not math.isnan(mtime):
            try:
                self._file = load_advisories(self._path)
                self._dirty = True
            except ValueError as exc:
                log.error("advisory file not reloaded, keeping the previous one: %s", exc)
            self._mtime = mtime
        if not self._dirty:
            return []
        self._dirty = False
        out = []
        for device_id, device in self._devices.items():
            fw = self._firmware[device_id]
            hits = self._file.matching(device.info.manufacturer, device.info.model, fw)
            alarm_id = f"{device_id}.firmware_advisory"
            if not hits:
                out.append(
                    self._alarms.set(alarm_id, False, "", f"{device_id} firmware not listed", now)
                )
                continue
            first = hits[0]
            fixed = f"; fixed in {first.fixed}" if first.fixed else ""
            more = f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""
            message = (
                f"{device.name or device_id} firmware {fw} affected by {first.id} "
                f"({first.severity}): {first.title}{fixed}{more}"
            )
            out.append(
                self._alarms.set(alarm_id, True, "VULNERABLE", message, now, value=float(len(hits)))
            )
        return _keep(out)


# --- rule types ----------------------------------------------------------------------


class _EventRuleFactory(Protocol):
    """The constructor every event-fed security rule has."""

    def __call__(self, site: Site, cfg: Any, reader: EventReader, /) -> Rule: ...


class _SiteLevelType(RuleType):
    config_model = _NoPointSettings

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        if configs:
            raise SettingError(
                "a site-wide rule: configure it under the site's top-level rules:, not on a point",
                point=configs[0][0].id,
            )
        model = self.site_config_model
        assert model is not None
        cfg = context.site_config if isinstance(context.site_config, model) else model()
        return self._build(site, cfg, context)

    #: The rule of this type; it is made from the site, its settings and an event reader.
    rule_class: ClassVar[_EventRuleFactory]

    def _build(self, site: Site, cfg: BaseModel, context: RuleContext) -> Rule:
        return self.rule_class(site, cfg, context.events.reader())


class FailedLoginsType(_SiteLevelType):
    site_config_model = FailedLoginsConfig
    rule_class = FailedLoginsRule


class UntrustedCertificateType(_SiteLevelType):
    site_config_model = UntrustedCertificateConfig
    rule_class = UntrustedCertificateRule


class UnexpectedWriteType(_SiteLevelType):
    site_config_model = UnexpectedWriteConfig
    rule_class = UnexpectedWriteRule


class DeviceIdentityType(_SiteLevelType):
    """The engine's own identity check (:class:`plantguard.comm.IdentityRule`) with the
    fields and priority of the site file: configuring it replaces the default one."""

    site_config_model = DeviceIdentityConfig

    def _build(self, site: Site, cfg: BaseModel, context: RuleContext) -> Rule:
        assert isinstance(cfg, DeviceIdentityConfig)
        return IdentityRule(
            site, context.events.reader(), fields=cfg.fields, priority=PRIORITY[cfg.priority]
        )


class FirmwareAdvisoryType(_SiteLevelType):
    site_config_model = FirmwareAdvisoryConfig

    def _build(self, site: Site, cfg: BaseModel, context: RuleContext) -> Rule:
        assert isinstance(cfg, FirmwareAdvisoryConfig)
        return FirmwareAdvisoryRule(site, cfg, context.events.reader(), context)


def security_rule_types() -> dict[str, RuleType]:
    """The security rule types by the name they are registered under."""
    return {
        "failed_logins": FailedLoginsType(),
        "untrusted_certificate": UntrustedCertificateType(),
        "unexpected_write": UnexpectedWriteType(),
        "device_identity": DeviceIdentityType(),
        "firmware_advisory": FirmwareAdvisoryType(),
    }
