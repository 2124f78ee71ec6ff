"""Device identification (43/14) into basic information, and identity changes as
security findings through the engine."""

from __future__ import annotations

import pytest

from plantguard.alarms import AlarmState
from plantguard.comm import IdentityWatch
from plantguard.model import Site
from plantguard.testing import RunningSite, wait_for
from plantguard_modbus.testing import make_device, make_driver, pymodbus_server
from plantguard_modbus.testserver import MiniModbusServer, UnitImage

pytestmark = pytest.mark.integration

POINTS = [{"id": "v", "address": {"register": 0, "type": "uint16"}}]


async def test_identify_reads_regular_objects_from_the_minimal_server() -> None:
    server = MiniModbusServer()
    server.set_identity(
        1, {0: "Acme Valves", 1: "AV-300", 2: "2.4.1", 3: "https://acme.example", 5: "AV-300 DN50"}
    )
    async with server:
        driver = make_driver(make_device(POINTS), host="127.0.0.1", port=server.port)
        identity = await driver.identify()
        await driver.close()
    assert identity == {
        "vendor_name": "Acme Valves",
        "product_code": "AV-300",
        "revision": "2.4.1",
        "vendor_url": "https://acme.example",
        "model_name": "AV-300 DN50",
    }
    assert driver.identity == identity


async def test_identify_reads_pymodbus_identity() -> None:
    identity = {"VendorName": "Pymodbus Works", "ProductCode": "PM", "MajorMinorRevision": "3.16"}
    async with pymodbus_server(UnitImage(), identity=identity) as port:
        driver = make_driver(make_device(POINTS), host="127.0.0.1", port=port)
        got = await driver.identify()
        await driver.close()
    assert got["vendor_name"] == "Pymodbus Works"
    assert got["product_code"] == "PM"
    assert got["revision"] == "3.16"


async def test_device_without_identification_is_asked_once() -> None:
    server = MiniModbusServer()  # no identity objects: answers exception 1
    async with server:
        driver = make_driver(make_device(POINTS), host="127.0.0.1", port=server.port)
        assert await driver.identify() == {}
        assert await driver.identify() == {}
        assert (await driver.read(driver.device.points)).values.tolist() == [0.0]
        await driver.close()
    assert server.requests[(1, 0x2B)] == 2, "regular, then basic, then never again"


def test_identity_watch_compares_with_basic_information_and_first_report() -> None:
    site = Site.model_validate(
        {
            "id": "s",
            "areas": [
                {
                    "id": "a",
                    "devices": [
                        {"id": "v1", "driver": "modbus", "info": {"manufacturer": "Acme Valves"}},
                        {"id": "v2", "driver": "modbus"},
                    ],
                }
            ],
        }
    )
    watch = IdentityWatch(site)
    assert {d.kind for d in watch.alarms()} == {"security"}
    watch.record("v1", {"vendor_name": "Acme Valves", "revision": "1.0"}, 1.0)
    watch.record("v2", {"vendor_name": "Other", "product_code": "X", "revision": "1.0"}, 1.0)
    first = watch.evaluate(None, 1.0)  # type: ignore[arg-type]
    assert [(f.alarm_id, f.active) for f in first] == [
        ("v1.identity", False),
        ("v2.identity", False),
    ]
    assert watch.info["v2"].manufacturer == "Other"
    assert watch.info["v2"].firmware_version == "1.0"
    assert watch.info["v1"].manufacturer == "Acme Valves"

    watch.record("v1", {"vendor_name": "Fake Valves", "revision": "1.0"}, 2.0)
    watch.record("v2", {"vendor_name": "Other", "product_code": "X", "revision": "6.6.6"}, 2.0)
    (f1, f2) = watch.evaluate(None, 2.0)  # type: ignore[arg-type]
    assert f1.active
    assert (f1.condition, f1.message) == (
        "IDENTITY_CHANGED",
        "v1 identity changed: manufacturer 'Acme Valves' → 'Fake Valves'",
    )
    assert f2.active
    assert f2.condition == "FIRMWARE_CHANGED"
    assert "firmware_version '1.0' → '6.6.6'" in f2.message
    assert watch.evaluate(None, 3.0) == []  # type: ignore[arg-type]


SITE = """
id: t
poll_groups:
  default: {{interval: 0.1}}
scan_interval: 0.05
store: {{history: {{flush_interval: 0.1}}}}
areas:
  - id: a
    devices:
      - id: valve
        driver: modbus
        info: {{manufacturer: Acme Valves, firmware_version: "2.4.1"}}
        connection: {{host: 127.0.0.1, port: {port}, timeout: 0.3, retries: 0}}
        points:
          - {{id: v, address: {{register: 0, type: uint16}}}}
"""


async def test_firmware_change_after_reconnect_raises_a_security_alarm(
    running_site: RunningSite,
) -> None:
    server = MiniModbusServer()
    server.set_identity(1, {0: "Acme Valves", 1: "AV-300", 2: "2.4.1"})
    await server.start()
    port = server.port
    try:
        async with running_site(SITE.format(port=port)) as engine:
            alarms = engine.alarms
            assert alarms.definitions["valve.identity"].kind == "security"
            await wait_for(lambda: engine.identity.reported.get("valve", {}).get("revision"))
            assert alarms.status["valve.identity"].state is AlarmState.NORMAL
            assert engine.identity.info["valve"].model == "AV-300"

            # the device goes away and comes back with other firmware
            await server.stop()
            await wait_for(lambda: alarms.status["valve.comm"].state is AlarmState.UNACK)
            server = MiniModbusServer(port=port)
            server.set_identity(1, {0: "Acme Valves", 1: "AV-300", 2: "9.9.9"})
            await server.start()
            await wait_for(
                lambda: alarms.status["valve.identity"].state is AlarmState.UNACK, timeout=20
            )
            status = alarms.status["valve.identity"]
            assert "firmware_version '2.4.1' → '9.9.9'" in status.message
            assert status.condition == "FIRMWARE_CHANGED"
    finally:
        await server.stop()


async def test_configured_security_rule_owns_the_identity_alarm(running_site: RunningSite) -> None:
    """With the ``device_identity`` security rule in the site file, the engine declares
    ``<device>.identity`` once (that rule's) and feeds it the reported identity."""
    server = MiniModbusServer()
    server.set_identity(1, {0: "Acme Valves", 1: "AV-300", 2: "3.0.0"})
    async with server:
        site = SITE.format(port=server.port) + "rules:\n  device_identity: {}\n"
        async with running_site(site) as engine:
            owners = [r for r in engine.rules if any(d.id == "valve.identity" for d in r.alarms())]
            assert len(owners) == 1
            assert owners[0] is not engine.identity
            await wait_for(lambda: engine.alarms.status["valve.identity"].state is AlarmState.UNACK)
            assert (
                "firmware_version '2.4.1' → '3.0.0'"
                in engine.alarms.status["valve.identity"].message
            )
