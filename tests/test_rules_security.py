"""Security rules on constructed event streams, the event bus, and advisory files."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantguard.events import EventBus, SecurityEvent
from plantguard.model import Site
from plantguard.rules import RuleContext
from plantguard.table import ValueTable
from plantguard.testing import RunningSite
from plantguard_rules.advisories import AdvisoryError, load_advisories, version_matches
from plantguard_rules.security import (
    DeviceIdentityConfig,
    FailedLoginsConfig,
    FirmwareAdvisoryConfig,
    UnexpectedWriteConfig,
    UntrustedCertificateConfig,
    security_rule_types,
)

SITE = Site.model_validate(
    {
        "id": "plant",
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": "pump1",
                        "driver": "modbus",
                        "info": {
                            "manufacturer": "Acme",
                            "model": "PX-100",
                            "serial_number": "S1",
                            "firmware_version": "2.3.0",
                        },
                        "points": [
                            {"id": "speed", "access": "read_write"},
                            {"id": "flow"},
                        ],
                    },
                    {"id": "tank1", "driver": "modbus", "info": {"firmware_version": "1.0"}},
                ],
            }
        ],
    }
)
TABLE = ValueTable(SITE.points)


def _rule(name: str, cfg: object, bus: EventBus, base: Path = Path()):  # type: ignore[no-untyped-def]
    ctx = RuleContext(site_config=cfg, base_dir=base, events=bus)  # type: ignore[arg-type]
    return security_rule_types()[name].create(SITE, TABLE, [], ctx)


def test_bus_readers_are_independent_and_count_what_they_missed() -> None:
    bus = EventBus(capacity=3)
    a, b = bus.reader(), bus.reader()
    for i in range(2):
        bus.publish(SecurityEvent("write", source=str(i)))
    assert [e.source for e in a.drain()] == ["0", "1"]
    for i in range(2, 7):
        bus.publish(SecurityEvent("write", source=str(i)))
    assert [e.source for e in b.drain()] == ["4", "5", "6"]
    assert b.missed == 4
    assert [e.source for e in a.drain()] == ["4", "5", "6"]
    assert a.drain() == []


def test_failed_login_burst_from_one_source() -> None:
    bus = EventBus()
    rule = _rule("failed_logins", FailedLoginsConfig(threshold=3, window=60), bus)
    assert [d.id for d in rule.alarms()] == ["security.failed_logins"]
    for t, src in [(0, "10.0.0.7"), (1, "10.0.0.8"), (2, "10.0.0.7")]:
        bus.publish(SecurityEvent("failed_login", source=src, user="admin", time=t))
    [f] = rule.evaluate(TABLE, 3.0)
    assert not f.active  # 2 per source is below 3
    bus.publish(SecurityEvent("failed_login", source="10.0.0.7", user="root", time=4))
    [f] = rule.evaluate(TABLE, 4.0)
    assert (f.active, f.condition) == (True, "BURST")
    assert f.message == "3 failed logins in 60 s from 10.0.0.7 (users: admin, root)"
    assert rule.evaluate(TABLE, 30.0) == []
    [f] = rule.evaluate(TABLE, 61.0)  # the first failure left the window
    assert not f.active


def test_untrusted_certificate_holds_then_clears() -> None:
    bus = EventBus()
    rule = _rule("untrusted_certificate", UntrustedCertificateConfig(hold=100), bus)
    rule.evaluate(TABLE, 0.0)
    bus.publish(
        SecurityEvent(
            "certificate_rejected", source="10.1.1.1", detail={"subject": "CN=hmi"}, time=5
        )
    )
    [f] = rule.evaluate(TABLE, 5.0)
    assert f.active
    assert "CN=hmi" in f.message
    assert rule.evaluate(TABLE, 50.0) == []
    [f] = rule.evaluate(TABLE, 106.0)
    assert not f.active


@pytest.mark.parametrize(
    ("source", "user", "detail", "alarm", "why"),
    [
        ("pump1.flow", "eng", {}, "pump1.unexpected_write", "read-only point pump1.flow"),
        ("pump1.speed", "", {}, "pump1.unexpected_write", "anonymous write"),
        ("pump1.speed", "mallory", {}, "pump1.unexpected_write", "mallory is not allowed"),
        ("pump1.speed", "eng", {"origin": "external"}, "pump1.unexpected_write", "other than"),
        ("nope.x", "eng", {}, "security.unexpected_write", "unknown point"),
    ],
)
def test_unexpected_writes(
    source: str, user: str, detail: dict[str, str], alarm: str, why: str
) -> None:
    bus = EventBus()
    rule = _rule("unexpected_write", UnexpectedWriteConfig(allowed_users=["eng"]), bus)
    rule.evaluate(TABLE, 0.0)
    bus.publish(SecurityEvent("write", source=source, user=user, detail=detail, time=1))
    [f] = rule.evaluate(TABLE, 1.0)
    assert (f.alarm_id, f.active) == (alarm, True)
    assert why in f.message


def test_allowed_write_raises_nothing() -> None:
    bus = EventBus()
    rule = _rule("unexpected_write", UnexpectedWriteConfig(allowed_users=["eng"]), bus)
    rule.evaluate(TABLE, 0.0)
    bus.publish(SecurityEvent("write", source="pump1.speed", user="eng", time=1))
    assert rule.evaluate(TABLE, 1.0) == []


def test_device_identity_and_firmware_changes() -> None:
    bus = EventBus()
    rule = _rule("device_identity", DeviceIdentityConfig(), bus)
    bus.publish(
        SecurityEvent(
            "device_identity",
            source="pump1",
            detail={"serial_number": "S1", "firmware_version": "2.3.0", "model": "PX-100"},
        )
    )
    [f] = rule.evaluate(TABLE, 1.0)
    assert f.alarm_id == "pump1.identity"
    assert not f.active
    bus.publish(
        SecurityEvent("device_identity", source="pump1", detail={"firmware_version": "2.4"})
    )
    [f] = rule.evaluate(TABLE, 2.0)
    assert (f.active, f.condition) == (True, "FIRMWARE_CHANGED")
    assert "firmware_version '2.3.0' → '2.4'" in f.message
    bus.publish(SecurityEvent("device_identity", source="pump1", detail={"serial_number": "S9"}))
    [f] = rule.evaluate(TABLE, 3.0)
    assert f.condition == "IDENTITY_CHANGED"
    # tank1 has no configured serial: its first report becomes the baseline.
    bus.publish(SecurityEvent("device_identity", source="tank1", detail={"serial_number": "T1"}))
    bus.publish(SecurityEvent("device_identity", source="tank1", detail={"serial_number": "T2"}))
    findings = rule.evaluate(TABLE, 4.0)
    assert [(f.alarm_id, f.active) for f in findings] == [
        ("tank1.identity", False),
        ("tank1.identity", True),
    ]


ADVISORIES = """
advisories:
  - id: PGSA-1
    title: Modbus stack overflow
    severity: critical
    manufacturer: acme
    model: "PX-1*"
    affected: ["<2.4.1"]
    fixed: "2.4.1"
  - id: PGSA-2
    title: Weak default password
    affected: ["==1.0.*"]
"""


def test_firmware_advisory_on_configured_and_reported_firmware(tmp_path: Path) -> None:
    (tmp_path / "adv.yaml").write_text(ADVISORIES)
    bus = EventBus()
    rule = _rule("firmware_advisory", FirmwareAdvisoryConfig(file="adv.yaml"), bus, tmp_path)
    findings = {f.alarm_id: f for f in rule.evaluate(TABLE, 1.0)}
    assert findings["pump1.firmware_advisory"].condition == "VULNERABLE"
    assert findings["pump1.firmware_advisory"].message == (
        "pump1 firmware 2.3.0 affected by PGSA-1 (critical): Modbus stack overflow; fixed in 2.4.1"
    )
    assert findings["tank1.firmware_advisory"].active  # any manufacturer, 1.0.*
    bus.publish(
        SecurityEvent("device_identity", source="pump1", detail={"firmware_version": "2.4.1"})
    )
    [f] = rule.evaluate(TABLE, 2.0)
    assert (f.alarm_id, f.active) == ("pump1.firmware_advisory", False)


def test_bad_advisory_file_is_rejected_with_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "adv.yaml"
    path.write_text("advisories:\n  - id: X\n    title: t\n    affected: ['<<1']\n")
    with pytest.raises(AdvisoryError, match=r"advisories\.0\.affected"):
        load_advisories(path)


@pytest.mark.parametrize(
    ("version", "ranges", "expected"),
    [
        ("2.4.0", ["<2.4.1"], True),
        ("2.4.1", ["<2.4.1"], False),
        ("v3.0.5-rc1", [">=3.0,<3.0.7"], True),
        ("3.1", [">=3.0,<3.0.7"], False),
        ("4.1.9", ["==4.1.*"], True),
        ("4.10", ["==4.1.*"], False),
        ("2.0", ["2.0.0"], True),
    ],
)
def test_version_ranges(version: str, ranges: list[str], expected: bool) -> None:
    assert version_matches(version, ranges) is expected


async def test_engine_runs_site_level_security_rules_from_the_default_bus(
    running_site: RunningSite,
) -> None:
    from plantguard.events import publish

    site = (
        "id: plant\nrules:\n  failed_logins: {threshold: 2, window: 60}\n"
        "areas:\n  - id: a\n    devices:\n"
        "      - {id: d, driver: modbus, connection: {host: 127.0.0.1, port: 1}}\n"
    )
    async with running_site(site) as engine:
        import time

        now = time.time()
        for _ in range(2):
            publish(SecurityEvent("failed_login", source="10.9.9.9", user="x", time=now))
        await engine.scan_once()
        journal = engine.store.journal("security.failed_logins")
        assert any(row.condition == "BURST" for row in journal)


def test_failed_logins_count_the_attempts_a_lock_refused() -> None:
    """A login lock publishes one event a second standing for many refusals."""
    bus = EventBus()
    rule = _rule("failed_logins", FailedLoginsConfig(threshold=5, window=60), bus)
    bus.publish(SecurityEvent("failed_login", source="10.0.0.7", user="bob", time=100.0))
    bus.publish(
        SecurityEvent(
            "failed_login", source="10.0.0.7", user="bob", time=101.0, detail={"count": "40"}
        )
    )
    [f] = rule.evaluate(TABLE, 102.0)
    assert f.active
    assert f.value == 41.0
    assert f.message == "41 failed logins in 60 s from 10.0.0.7 (users: bob)"
