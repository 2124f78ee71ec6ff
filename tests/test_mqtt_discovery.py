"""Home Assistant MQTT discovery as the gateway publishes it to the real Mosquitto.

Each test uses a discovery prefix and node id of its own and clears the retained
messages it leaves.  That HA itself accepts these configs is checked in the HA
test environment (integrations/homeassistant/tests/test_mqtt_discovery.py,
against HA's own MQTT platform schemas); here: what is published, where, when
it is removed, and that a button press acknowledges through the alarm manager
with the role of the broker user Home Assistant connects as.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from plantguard.testing import RunningSite, free_tcp_port, wait_for

BROKER = ("127.0.0.1", 1883)


@dataclass
class Retained:
    """The newest payload of every topic under some filters (retained ones first)."""

    latest: dict[str, bytes] = field(default_factory=dict)
    history: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def configs(self, prefix: str) -> dict[str, dict[str, Any]]:
        return {
            t: json.loads(p) for t, p in self.latest.items() if t.startswith(prefix + "/") and p
        }

    def json(self, topic: str) -> Any:
        return json.loads(self.latest[topic])


@contextlib.asynccontextmanager
async def watch(*filters: str) -> AsyncIterator[Retained]:
    seen = Retained()
    ready = asyncio.Event()

    async def collect(client: aiomqtt.Client) -> None:
        async with client.messages() as messages:
            for topic in filters:
                await client.subscribe(topic, qos=1)
            ready.set()
            async for message in messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                seen.latest[message.topic.value] = payload
                seen.history.append((message.topic.value, payload, message.retain))

    async with aiomqtt.Client(*BROKER, client_id=f"watch-{uuid.uuid4().hex}") as client:
        task = asyncio.create_task(collect(client))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def clear_retained(*filters: str) -> None:
    """Remove what the test left retained on the shared broker."""
    async with watch(*filters) as seen:
        await asyncio.sleep(0.5)
    async with aiomqtt.Client(*BROKER, client_id=f"clear-{uuid.uuid4().hex}") as client:
        for topic, payload in seen.latest.items():
            if payload:
                await client.publish(topic, b"", qos=1, retain=True)


def site_yaml(
    sim: int, prefix: str, node: str, *, with_tank: bool = True, user_role: str = "operator"
) -> str:
    """A site whose id is ``node`` (the node id of discovery without Sparkplug)."""
    tank = f"""
      - id: tank1
        name: Buffer tank
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, unit: "%", address: {{register: 0}}, rules: {{limit: {{h: 10}}}}}}
          - {{id: pressure, unit: bar, address: {{register: 2}}}}
"""
    return f"""
id: {node}
poll_groups: {{default: {{interval: 0.2}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  mqtt_publish:
    broker: {{host: 127.0.0.1, port: 1883, reconnect_interval: 0.3}}
    sparkplug: null
    homeassistant: {{prefix: {prefix}, command_user: ha}}
    roles: {{ha: {user_role}}}
areas:
  - id: yard
    devices:
      - id: pump1
        name: Transfer pump
        info: {{manufacturer: Acme, model: P-100, serial_number: SN1, firmware_version: "2.1"}}
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 1}}
        points:
          - {{id: current, name: Motor current, unit: A, address: {{register: 0}}}}
          - {{id: bearing_temp, unit: °C, address: {{register: 4}}}}
          - {{id: running, data_type: bool, address: {{register: 6}}}}
{tank if with_tank else ""}"""


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"hatest{tag}", f"gw{tag}"


async def test_discovery_configs_states_and_availability(running_site: RunningSite) -> None:
    prefix, node = names()
    try:
        async with (
            watch(f"{prefix}/#", f"plantguard/{node}/#") as seen,
            running_site(site_yaml(free_tcp_port(), prefix, node)),
        ):
            state = f"plantguard/{node}/pump1/state"
            await wait_for(lambda: state in seen.latest and seen.json(state)["current"] is not None)
            await wait_for(lambda: f"plantguard/{node}/tank1/alarms" in seen.latest)
            configs = seen.configs(prefix)
            assert seen.latest[f"plantguard/{node}/status"] == b"online"
            assert seen.latest[f"plantguard/{node}/pump1/availability"] == b"online"
        # A clean stop says offline (the Will covers the unclean ones).
        assert seen.latest[f"plantguard/{node}/status"] == b"offline"
    finally:
        await clear_retained(f"{prefix}/#", f"plantguard/{node}/#")

    current = configs[f"{prefix}/sensor/{node}/pump1_current/config"]
    assert current["unit_of_measurement"] == "A"
    assert current["device_class"] == "current"
    assert current["state_class"] == "measurement"
    assert current["state_topic"] == f"plantguard/{node}/pump1/state"
    assert current["name"] == "Motor current"
    assert current["device"] == {
        "identifiers": [f"plantguard_{node}_pump1"],
        "name": "Transfer pump",
        "manufacturer": "Acme",
        "model": "P-100",
        "serial_number": "SN1",
        "sw_version": "2.1",
        "suggested_area": "yard",
    }
    assert [a["topic"] for a in current["availability"]] == [
        f"plantguard/{node}/status",
        f"plantguard/{node}/pump1/availability",
    ]
    temp = configs[f"{prefix}/sensor/{node}/pump1_bearing_temp/config"]
    assert temp["device_class"] == "temperature"
    assert temp["unit_of_measurement"] == "°C"
    assert "device_class" not in configs[f"{prefix}/sensor/{node}/tank1_level/config"]
    assert f"{prefix}/binary_sensor/{node}/pump1_running/config" in configs

    alarm = configs[f"{prefix}/binary_sensor/{node}/tank1_level_limit/config"]
    assert alarm["device_class"] == "problem"
    assert alarm["state_topic"] == f"plantguard/{node}/tank1/alarms"
    button = configs[f"{prefix}/button/{node}/tank1_level_limit_ack/config"]
    assert button["command_topic"] == f"plantguard/{node}/command/acknowledge"
    assert button["payload_press"] == "tank1.level.limit"
    unique = [c["unique_id"] for c in configs.values()]
    assert len(unique) == len(set(unique))

    values = seen.json(f"plantguard/{node}/pump1/state")
    assert set(values) == {"current", "bearing_temp", "running"}
    assert values["running"] is True


async def test_a_button_press_acknowledges_with_the_mapped_role(running_site: RunningSite) -> None:
    prefix, node = names()
    alarm = "tank1.level.limit"
    yaml = site_yaml(free_tcp_port(), prefix, node)
    try:
        async with watch(f"plantguard/{node}/#") as seen, running_site(yaml) as engine:
            alarms = f"plantguard/{node}/tank1/alarms"
            await wait_for(
                lambda: alarms in seen.latest and seen.json(alarms)["level.limit"]["active"]
            )
            assert seen.json(alarms)["level.limit"]["acknowledged"] is False
            async with aiomqtt.Client(*BROKER, client_id=f"ha-{uuid.uuid4().hex}") as ha:
                await ha.publish(f"plantguard/{node}/command/acknowledge", b"no.such.alarm")
                await ha.publish(f"plantguard/{node}/command/acknowledge", alarm.encode())
            await wait_for(lambda: seen.json(alarms)["level.limit"]["acknowledged"])
            assert engine.alarms.status[alarm].last_user == "ha"
    finally:
        await clear_retained(f"{prefix}/#", f"plantguard/{node}/#")


async def test_a_viewer_cannot_acknowledge(running_site: RunningSite) -> None:
    prefix, node = names()
    alarm = "tank1.level.limit"
    yaml = site_yaml(free_tcp_port(), prefix, node, user_role="viewer")
    try:
        async with watch(f"plantguard/{node}/#") as seen, running_site(yaml) as engine:
            alarms = f"plantguard/{node}/tank1/alarms"
            await wait_for(
                lambda: alarms in seen.latest and seen.json(alarms)["level.limit"]["active"]
            )
            async with aiomqtt.Client(*BROKER, client_id=f"ha-{uuid.uuid4().hex}") as ha:
                await ha.publish(f"plantguard/{node}/command/acknowledge", alarm.encode(), qos=1)
            await asyncio.sleep(1.0)  # the refusal leaves nothing to wait for
            assert not engine.alarms.status[alarm].state.acknowledged
            assert seen.json(alarms)["level.limit"]["acknowledged"] is False
    finally:
        await clear_retained(f"{prefix}/#", f"plantguard/{node}/#")


async def test_configs_of_a_device_that_left_the_site_are_removed(
    running_site: RunningSite,
) -> None:
    prefix, node = names()
    sim = free_tcp_port()
    both = site_yaml(sim, prefix, node)
    pump_only = site_yaml(sim, prefix, node, with_tank=False)
    try:
        async with watch(f"{prefix}/#") as seen:
            async with running_site(both):
                await wait_for(lambda: any("tank1" in t for t in seen.configs(prefix)))
                await asyncio.sleep(0.5)
            before = set(seen.configs(prefix))
            async with running_site(pump_only):
                await wait_for(lambda: not any("tank1" in t for t in seen.configs(prefix)))
            after = set(seen.configs(prefix))
        tank_topics = {t for t in before if "/tank1_" in t}
        # level, pressure; each alarm (limit, and comm, fault, identity that every
        # device has) with its button
        assert len(tank_topics) == 2 + 2 * 4
        assert after == before - tank_topics
        removals = [t for t, p, _ in seen.history if not p]
        assert sorted(removals) == sorted(tank_topics)
        # What a newcomer (Home Assistant starting now) finds retained on the broker.
        async with watch(f"{prefix}/#") as fresh:
            await asyncio.sleep(0.5)
        assert set(fresh.configs(prefix)) == after
    finally:
        await clear_retained(f"{prefix}/#", f"plantguard/{node}/#")
