"""The MQTT device driver against the real Mosquitto at 127.0.0.1:1883: values from
plain and JSON payloads with their source times, the Last Will raising the engine's
comm-loss alarm, writes through the engine's role-checked path reaching the command
topic, bad payloads that never stop the driver, staleness, and site-file errors.

Every test uses its own topic prefix, so tests (and other users of the broker) never
see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from plantguard.alarms import AlarmState
from plantguard.auth import Principal, Role
from plantguard.build import check_site
from plantguard.config import ConfigError, LoadedSite, load_site
from plantguard.drivers import DriverError
from plantguard.host import PluginHost
from plantguard.model import Quality
from plantguard.probe import probe_site
from plantguard.testing import RunningSite, wait_for
from plantguard.writes import WriteDenied
from plantguard_mqtt.broker import POOL
from plantguard_mqtt.driver import MqttDriver
from plantguard_mqtt.plugin import MqttDriverType

BROKER = "{host: 127.0.0.1, port: 1883, reconnect_min: 0.1}"
GOOD = Quality.GOOD


@pytest.fixture
def prefix() -> str:
    return f"pgtest/{uuid.uuid4().hex}"


@pytest.fixture
async def publisher() -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        yield client


def _site(prefix: str, *, stale: float | None = None) -> str:
    stale_line = f"\n          stale_after: {stale}" if stale else ""
    return f"""
id: plant
scan_interval: 0.1
poll_groups: {{default: {{interval: 0.05}}, other: {{interval: 0.07}}}}
areas:
  - id: yard
    devices:
      - id: gas1
        name: Gas detector 1
        driver: mqtt
        connection:
          broker: {BROKER}
          will: {{topic: {prefix}/gas1/status, payload: offline}}
          timestamp: $.ts{stale_line}
        points:
          - {{id: co, unit: ppm, address: {{topic: {prefix}/gas1/telemetry, json: $.co}}}}
          - {{id: o2, unit: "%", scale: 0.1, address: {{topic: {prefix}/gas1/telemetry, json: "$.gas['o2']"}}}}
          - {{id: temp, poll_group: other, address: {{topic: {prefix}/gas1/temp}}}}
          - id: fan
            data_type: bool
            access: read_write
            address: {{topic: {prefix}/gas1/fan, command_topic: {prefix}/gas1/fan/set}}
          - id: setpoint
            access: read_write
            address:
              topic: {prefix}/gas1/sp
              command_topic: {prefix}/gas1/sp/set
              command: '{{"setpoint": {{value}}}}'
"""


def _driver(load: Callable[[str], LoadedSite], text: str, device: str = "gas1") -> MqttDriver:
    loaded = load(text)
    dev = next(d for d in loaded.site.devices if d.id == device)
    return MqttDriverType().create(dev, loaded.connections[device], loaded.addresses[device])


async def test_engine_end_to_end_values_will_alarm_and_writes(
    running_site: RunningSite, prefix: str, publisher: aiomqtt.Client
) -> None:
    async with running_site(_site(prefix)) as engine:
        table, alarms = engine.table, engine.alarms
        at = table.index
        driver = engine.drivers["gas1"]
        assert isinstance(driver, MqttDriver)
        await wait_for(lambda: driver.connected)

        # A JSON payload: two points from one message, the payload's time as source time.
        body = {"co": 12.5, "gas": {"o2": 209}, "ts": 1_700_000_000_500}
        await publisher.publish(f"{prefix}/gas1/telemetry", json.dumps(body))
        await publisher.publish(f"{prefix}/gas1/temp", b"21.5")
        await wait_for(lambda: table.quality[at["gas1.temp"]] == GOOD)
        await wait_for(lambda: table.quality[at["gas1.co"]] == GOOD)
        assert table.values[at["gas1.co"]] == 12.5
        assert table.values[at["gas1.o2"]] == pytest.approx(20.9)  # scale 0.1
        assert table.source_time[at["gas1.co"]] == pytest.approx(1_700_000_000.5)
        assert table.values[at["gas1.temp"]] == 21.5
        assert table.quality[at["gas1.fan"]] == Quality.BAD_WAITING_FOR_INITIAL_DATA
        await wait_for(lambda: alarms.status["gas1.comm"].state is AlarmState.NORMAL)

        # The Last Will: the device is offline at once, every point Bad (not connected),
        # in both of its poll groups.
        await publisher.publish(f"{prefix}/gas1/status", b"offline")
        await wait_for(lambda: alarms.status["gas1.comm"].state is AlarmState.UNACK)
        assert alarms.status["gas1.comm"].message == "Communication with Gas detector 1 lost"
        slots = table.indices(["gas1.co", "gas1.temp", "gas1.fan"])
        assert (table.quality[slots] == Quality.BAD_NOT_CONNECTED).all()
        assert table.values[at["gas1.co"]] == 12.5, "the last value is kept"
        assert driver.statistics["offline"] == 1

        # Back: its status says so; values flow again and the alarm returns to normal.
        await publisher.publish(f"{prefix}/gas1/status", b"online")
        await publisher.publish(f"{prefix}/gas1/temp", b"22")
        await wait_for(lambda: table.values[at["gas1.temp"]] == 22.0)
        await wait_for(lambda: alarms.status["gas1.comm"].state is AlarmState.RTN_UNACK)

        # A write goes through the engine's role check, then to the command topic.
        listener = aiomqtt.Client("127.0.0.1", 1883)
        async with listener, listener.messages() as received:
            await listener.subscribe(f"{prefix}/gas1/+/set", qos=1)
            with pytest.raises(WriteDenied):
                await engine.write_point("gas1.fan", 1.0, Principal("vic", Role.VIEWER))
            await engine.write_point("gas1.fan", 1.0, Principal("olga", Role.OPERATOR))
            await engine.write_point("gas1.setpoint", 42.5, Principal("olga", Role.OPERATOR))
            first = await asyncio.wait_for(received.__anext__(), 5)
            second = await asyncio.wait_for(received.__anext__(), 5)
        assert (first.topic.value, first.payload) == (f"{prefix}/gas1/fan/set", b"1")
        assert second.topic.value == f"{prefix}/gas1/sp/set"
        assert isinstance(second.payload, bytes)
        assert json.loads(second.payload) == {"setpoint": 42.5}
        assert driver.statistics["commands"] == 2
    assert len(POOL) == 0, "the engine's stop closed the shared client"


async def test_bad_payloads_make_points_bad_logged_once_and_counted(
    load_site_text: Callable[[str], LoadedSite],
    prefix: str,
    publisher: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plantguard_mqtt")
    driver = _driver(load_site_text, _site(prefix))
    points = driver.device.points
    co, temp = 0, 2
    await driver.connect()
    try:
        telemetry = f"{prefix}/gas1/telemetry"
        for _ in range(3):
            await publisher.publish(telemetry, b"{not json")
        await wait_for(lambda: driver.statistics["not_json"] == 3)
        result = await driver.read(points)
        assert result.quality[co] == Quality.BAD
        assert "is not JSON" in driver.faults["gas1.co"]
        said = [r for r in caplog.records if "point gas1.co is Bad" in r.getMessage()]
        assert len(said) == 1, "the reason is logged once per point, not per message"

        await publisher.publish(telemetry, json.dumps({"gas": {"o2": 1}}))
        await wait_for(lambda: driver.statistics["no_value"] == 1)
        result = await driver.read(points)
        assert result.quality[co] == Quality.BAD_CONFIGURATION_ERROR
        assert driver.faults["gas1.co"] == f"{telemetry}: no $.co in the payload"
        assert result.quality[1] == GOOD, "the other point of the message is fine"

        await publisher.publish(telemetry, json.dumps({"co": "high", "gas": 5}))
        await wait_for(lambda: driver.statistics["not_a_number"] == 1)
        assert driver.faults["gas1.co"] == f"{telemetry}: 'high', not a number"
        assert driver.faults["gas1.o2"].endswith("no $.gas.o2: the int 5 there")

        await publisher.publish(telemetry, b'{"co": NaN, "gas": {"o2": [1]}}')
        await publisher.publish(f"{prefix}/gas1/temp", b"warm")
        await wait_for(lambda: driver.statistics["not_a_number"] == 4)
        assert driver.faults["gas1.temp"] == f"{prefix}/gas1/temp: payload b'warm' is not a number"
        assert driver.faults["gas1.o2"].endswith("a list, not a number")
        assert driver.statistics["malformed"] == 3 + 1 + 1 + 1 + 3

        # The driver kept going: good values make the points Good again.
        await publisher.publish(telemetry, json.dumps({"co": 3, "gas": {"o2": 200}, "ts": "x"}))
        await publisher.publish(f"{prefix}/gas1/temp", b"true")
        await wait_for(lambda: not driver.faults)
        result = await driver.read(points)
        assert result.quality[co] == GOOD
        assert result.values[co] == 3.0
        assert result.values[temp] == 1.0
        assert driver.statistics["bad_timestamps"] == 1, "a bad timestamp keeps the value"
        again = [r for r in caplog.records if "point gas1.co is Good again" in r.getMessage()]
        assert len(again) == 1
    finally:
        await driver.close()


async def test_values_older_than_stale_after_are_uncertain(
    load_site_text: Callable[[str], LoadedSite], prefix: str, publisher: aiomqtt.Client
) -> None:
    driver = _driver(load_site_text, _site(prefix, stale=0.3))
    points = driver.device.points
    await driver.connect()
    try:
        await publisher.publish(f"{prefix}/gas1/temp", b"20")
        await wait_for(lambda: driver.statistics["values"] == 1)
        assert (await driver.read(points)).quality[2] == GOOD
        await asyncio.sleep(0.4)
        result = await driver.read(points)
        assert result.quality[2] == Quality.UNCERTAIN_LAST_USABLE
        assert result.values[2] == 20.0
        await publisher.publish(f"{prefix}/gas1/temp", b"21")
        await wait_for(lambda: driver.statistics["values"] == 2)
        assert (await driver.read(points)).quality[2] == GOOD
    finally:
        await driver.close()


async def test_wildcard_topics_and_devices_share_one_client(
    load_site_text: Callable[[str], LoadedSite], prefix: str, publisher: aiomqtt.Client
) -> None:
    text = f"""
id: plant
areas:
  - id: yard
    devices:
      - id: a
        driver: mqtt
        connection: {{broker: {BROKER}}}
        points:
          - {{id: any_room, address: {{topic: "{prefix}/+/temp"}}}}
          - {{id: deep, address: {{topic: "{prefix}/deep/#", json: "$[1]"}}}}
      - id: b
        driver: mqtt
        connection: {{broker: {BROKER}}}
        points: [{{id: level, address: {{topic: "{prefix}/tank/level"}}}}]
"""
    loaded = load_site_text(text)
    kind = MqttDriverType()
    drivers = [
        kind.create(d, loaded.connections[d.id], loaded.addresses[d.id])
        for d in loaded.site.devices
    ]
    a, b = drivers
    for driver in drivers:
        await driver.connect()
    try:
        assert len(POOL) == 1, "one client for the broker, whatever the number of devices"
        await publisher.publish(f"{prefix}/kitchen/temp", b"19")
        await publisher.publish(f"{prefix}/deep/x/y", b"[0, 7]")
        await publisher.publish(f"{prefix}/tank/level", b"3.5")
        await publisher.publish(f"{prefix}/kitchen/hall/temp", b"99")  # + is one level
        await wait_for(lambda: b.statistics["values"] == 1 and a.statistics["values"] == 2)
        assert (await a.read(a.device.points)).values.tolist() == [19.0, 7.0]
        assert (await b.read(b.device.points)).values.tolist() == [3.5]
        await asyncio.sleep(0.1)
        assert a.statistics["messages"] == 2
    finally:
        for driver in drivers:
            await driver.close()
    assert len(POOL) == 0


async def test_writes_the_driver_refuses(
    load_site_text: Callable[[str], LoadedSite], prefix: str
) -> None:
    driver = _driver(load_site_text, _site(prefix))
    co, fan = driver.device.points[0], driver.device.points[3]
    with pytest.raises(DriverError, match="read-only"):
        await driver.write(co, 1.0)
    with pytest.raises(DriverError, match="not connected"):
        await driver.write(fan, 1.0)
    with pytest.raises(DriverError, match="not a finite number"):
        await driver.write(fan, float("inf"))
    with pytest.raises(DriverError, match="not connected"):
        await driver.read(driver.device.points)


async def test_probe_waits_for_messages_and_shows_raw_values(
    plantguard_host: PluginHost,
    load_site_text: Callable[[str], LoadedSite],
    prefix: str,
    publisher: aiomqtt.Client,
) -> None:
    text = f"""
id: plant
areas:
  - id: yard
    devices:
      - id: meter
        driver: mqtt
        connection: {{broker: {{host: 127.0.0.1, timeout: 2}}}}
        points:
          - {{id: flow, scale: 0.1, address: {{topic: {prefix}/flow}}}}
          - {{id: temp, address: {{topic: {prefix}/env, json: $.t}}}}
          - {{id: silent, address: {{topic: {prefix}/never}}}}
"""
    probing = asyncio.create_task(probe_site(load_site_text(text), plantguard_host, timeout=8))
    while not probing.done():  # devices speak when they like: keep talking until it is over
        await publisher.publish(f"{prefix}/flow", b"125")
        await publisher.publish(f"{prefix}/env", b'{"t": 21.5}')
        await asyncio.sleep(0.1)
    (report,) = probing.result()
    assert report.answered
    assert report.error == ""
    flow, temp, silent = report.points
    assert (flow.value, flow.quality, temp.value, temp.quality) == (12.5, GOOD, 21.5, GOOD)
    assert flow.raw is not None
    assert (flow.raw.address, flow.raw.type, flow.raw.raw) == (f"{prefix}/flow", "number", 125.0)
    assert temp.raw is not None
    assert (temp.raw.address, temp.raw.type) == (f"{prefix}/env $.t", "json")
    assert silent.quality == Quality.BAD_WAITING_FOR_INITIAL_DATA
    assert silent.raw is None


# --- the site file -------------------------------------------------------------------


def _issues(host: PluginHost, tmp_path: Path, text: str) -> list[str]:
    host.start()
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        check_site(load_site(site, host), host)
    return [str(i).removeprefix(f"{site}:") for i in info.value.issues]


DEVICE = """\
id: plant
areas:
  - id: yard
    devices:
      - id: d
        driver: mqtt
        connection:
          broker: {host: 127.0.0.1%s}
        points:
          - id: p
            address: %s
"""


@pytest.mark.parametrize(
    ("broker", "address", "expected"),
    [
        (
            "",
            "{topic: 'a/#/b'}",
            "11: areas[0].devices[0].points[0].address.topic: Value error, "
            "topic filter 'a/#/b': # must be a whole level, and the last",
        ),
        (
            "",
            "{topic: a, json: '$.a[x'}",
            "11: areas[0].devices[0].points[0].address.json: Value error, "
            "JSON path '$.a[x' does not parse at '[x'",
        ),
        (
            "",
            "{topic: a, command_topic: a/+/set}",
            "11: areas[0].devices[0].points[0].address.command_topic: Value error, topic "
            "'a/+/set' has a wildcard (+ or #); wildcards are for filters",
        ),
        (
            "",
            "{json: $.a}",
            "11: areas[0].devices[0].points[0].address: Value error, give topic (plain or "
            "JSON payloads) or metric (Sparkplug B)",
        ),
        (
            "",
            "{metric: Pressure}",
            "11: areas[0].devices[0].points[0].address.metric: a metric is read from a "
            "Sparkplug B device: set connection.sparkplug (group, node and device), "
            "or give topic instead",
        ),
        (
            "",
            "{topic: a, command_topic: a/set}",
            "11: areas[0].devices[0].points[0].address.command_topic: command_topic is set "
            "but the point is read-only: set access: read_write",
        ),
        (
            ", username: gw, password: hunter2",
            "{topic: a}",
            "8: areas[0].devices[0].connection.broker: Value error, the password is not "
            "written in the site file: name it with password_env (an environment variable) "
            "or password_file",
        ),
        (
            ", username: gw, password_env: PLANTGUARD_TEST_UNSET_VARIABLE",
            "{topic: a}",
            "8: areas[0].devices[0].connection.broker.password_env: cannot read the broker "
            "password: environment variable PLANTGUARD_TEST_UNSET_VARIABLE is not set",
        ),
        (
            ", tls: {cafile: /nonexistent/ca.pem}",
            "{topic: a}",
            "8: areas[0].devices[0].connection.broker.tls.cafile: cannot load "
            "/nonexistent/ca.pem: [Errno 2] No such file or directory",
        ),
    ],
)
def test_site_file_errors_name_line_and_field(
    plantguard_host: PluginHost, tmp_path: Path, broker: str, address: str, expected: str
) -> None:
    assert _issues(plantguard_host, tmp_path, DEVICE % (broker, address)) == [expected]


def test_a_writable_point_needs_a_command_topic(
    plantguard_host: PluginHost, tmp_path: Path
) -> None:
    text = DEVICE.replace("- id: p\n", "- id: p\n            access: read_write\n")
    assert _issues(plantguard_host, tmp_path, text % ("", "{topic: a}")) == [
        "12: areas[0].devices[0].points[0].address.command_topic: a writable point needs "
        "command_topic "
        "(where writes are published)"
    ]
