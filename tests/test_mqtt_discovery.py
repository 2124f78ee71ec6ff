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
import pytest

from plantguard.engine import Engine
from plantguard.testing import RunningSite, free_tcp_port, wait_for

BROKER = ("127.0.0.1", 1883)
#: Seconds a gateway may take to start, or to stop (the publishers' stop is bounded by
#: about twice the client timeout, 2 × 30 s at the default keepalive).
SITE_BOUND = 80.0
#: Seconds a helper task may take to end once cancelled.
CANCEL_BOUND = 10.0


async def cancel_task(task: asyncio.Task[Any], what: str) -> None:
    """Cancel a helper task and wait for it, bounded; the cancel is repeated because on
    Python 3.11 aiomqtt's ``asyncio.wait_for`` can swallow one (CPython gh-86296)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_BOUND
    while not task.done():
        if loop.time() > deadline:
            pytest.fail(f"{what} did not end within {CANCEL_BOUND} s of being cancelled")
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        with contextlib.suppress(aiomqtt.MqttError):
            task.result()


@contextlib.asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail the test with a message naming ``what`` if the block takes longer."""
    bound = asyncio.timeout(seconds)
    try:
        async with bound:
            yield
    except TimeoutError:
        if bound.expired():
            pytest.fail(f"{what} did not finish within {seconds} s")
        raise


def bounded_site(running_site: RunningSite) -> RunningSite:
    """``running_site`` whose start and stop each fail the test after ``SITE_BOUND`` s
    instead of waiting until the whole test times out."""

    @contextlib.asynccontextmanager
    async def run(site_yaml: str, *, db: str | None = None) -> AsyncIterator[Engine]:
        site = running_site(site_yaml, db=db)
        async with within(SITE_BOUND, "the gateway's start"):
            engine = await site.__aenter__()
        try:
            yield engine
        except BaseException as exc:
            async with within(SITE_BOUND, "the gateway's stop"):
                suppressed = await site.__aexit__(type(exc), exc, exc.__traceback__)
            if not suppressed:
                raise
        else:
            async with within(SITE_BOUND, "the gateway's stop"):
                await site.__aexit__(None, None, None)

    return run


@pytest.fixture
def running_site(running_site: RunningSite) -> RunningSite:
    return bounded_site(running_site)


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
        try:
            async with within(10, f"subscribing to {filters}"):
                await ready.wait()
            yield seen
        finally:
            await cancel_task(task, f"the watcher of {filters}")


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


async def test_a_cancel_the_session_swallowed_is_repeated() -> None:
    """aiomqtt's ``wait_for`` on Python 3.11 can drop a cancel (CPython gh-86296); the
    stop cancels again, so it ends, and one that never ends is given up within the bound."""
    from plantguard.plugin import cancel_and_wait

    swallowed: list[bool] = []

    async def swallows_once() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.append(True)
        await asyncio.Event().wait()

    once = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    await cancel_and_wait(once, what="a test task")
    assert swallowed == [True]
    assert once.cancelled()

    stubborn_until = asyncio.Event()

    async def stubborn() -> None:
        while not stubborn_until.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task, what="a test task", timeout=0.3)
    assert not task.done()
    stubborn_until.set()
    await cancel_and_wait(task, what="a test task")
    assert task.done()


async def test_a_stop_disconnects_cleanly_and_is_bounded() -> None:
    """A session that fails is retried; a stop ends the loop with a clean disconnect
    (the Will is not sent)."""
    from plantguard_mqtt_publish.connection import make_client, run_connected, stop_connection
    from plantguard_mqtt_publish.options import BrokerOptions

    topic = f"hatest{uuid.uuid4().hex[:8]}/will"
    broker = BrokerOptions(host=BROKER[0], port=BROKER[1], reconnect_interval=0.05)
    sessions = 0

    async def session(client: aiomqtt.Client) -> None:
        nonlocal sessions
        sessions += 1
        if sessions == 1:
            raise RuntimeError("a defect in the first session")
        await asyncio.Event().wait()

    stop = asyncio.Event()
    will = aiomqtt.Will(topic, b"gone", qos=1, retain=False)
    async with watch(topic) as seen:
        task = asyncio.create_task(
            run_connected(
                broker,
                lambda: make_client(broker, f"stoptest-{uuid.uuid4().hex}", will),
                session,
                on_lost=lambda: None,
                what="a test connection",
                stop=stop,
            )
        )
        await wait_for(lambda: sessions == 2)
        await stop_connection(task, stop, broker, what="a test connection")
        assert task.done()
        assert not task.cancelled()
        assert task.exception() is None
        await asyncio.sleep(0.3)
    assert topic not in seen.latest
