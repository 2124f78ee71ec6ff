"""Sparkplug B devices through the MQTT driver, on the real Mosquitto at 127.0.0.1:1883:
births and data (with aliases) become point values with the metric's time, NDEATH
(of this session's bdSeq) and DDEATH take the device offline at once, a wrong
sequence number or a truncated payload makes points Bad, is counted and asks the
node for a rebirth, and writes go out as DCMD in the metric's datatype.

Payloads are built and read with pysparkplug's payload classes, as an edge node and
a host would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiomqtt
import numpy as np
import pysparkplug as sp
import pytest

from plantguard.alarms import AlarmState
from plantguard.config import LoadedSite
from plantguard.drivers import DriverError
from plantguard.model import Quality
from plantguard.testing import RunningSite, wait_for
from plantguard_mqtt.driver import MqttDriver
from plantguard_mqtt.plugin import MqttDriverType

D = sp.DataType
GOOD = Quality.GOOD


def _ms() -> int:
    return int(time.time() * 1000)


def _m(
    name: str | None, datatype: sp.DataType, value: object, alias: int | None = None
) -> sp.Metric:
    return sp.Metric(_ms(), name, datatype, value=value, alias=alias)  # type: ignore[arg-type]


class EdgeNode:
    """A Sparkplug B edge node publishing with its own sequence numbers."""

    def __init__(self, client: aiomqtt.Client, group: str, node: str) -> None:
        self.client, self.group, self.node = client, group, node
        self.seq = 0

    def _next(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    async def send(self, kind: str, payload: bytes, device: str | None = None) -> None:
        topic = f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")
        await self.client.publish(topic, payload)

    async def nbirth(self, bd_seq: int, uptime: float) -> None:
        self.seq = 0
        metrics = (_m("bdSeq", D.INT64, bd_seq), _m("Uptime", D.DOUBLE, uptime))
        await self.send("NBIRTH", sp.NBirth(_ms(), self._next(), metrics).encode())

    async def dbirth(self, device: str) -> None:
        metrics = (
            _m("Pressure", D.FLOAT, 2.5, alias=1),
            _m("Motor/Speed", D.INT32, 100, alias=2),
            _m("Label", D.STRING, "press", alias=3),
        )
        await self.send("DBIRTH", sp.DBirth(_ms(), self._next(), metrics).encode(), device)

    async def ddata(
        self, device: str, metrics: tuple[sp.Metric, ...], seq: int | None = None
    ) -> None:
        number = self._next() if seq is None else seq
        await self.send("DDATA", sp.DData(_ms(), number, metrics).encode(), device)

    async def ddeath(self, device: str) -> None:
        await self.send("DDEATH", sp.DDeath(_ms(), self._next()).encode(), device)

    async def ndeath(self, bd_seq: int) -> None:
        await self.send("NDEATH", sp.NDeath(_ms(), _m("bdSeq", D.INT64, bd_seq)).encode())


@pytest.fixture
def group() -> str:
    return f"pgtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client() -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", 1883) as c:
        yield c


def _site(group: str) -> str:
    spark = f"group: {group}, node: edge1, rebirth_interval: 0.05"
    return f"""
id: plant
scan_interval: 0.1
poll_groups: {{default: {{interval: 0.05}}}}
areas:
  - id: hall
    devices:
      - id: edge
        driver: mqtt
        connection:
          broker: {{host: 127.0.0.1, reconnect_min: 0.1}}
          sparkplug: {{{spark}}}
        points: [{{id: uptime, address: {{metric: Uptime}}}}]
      - id: press1
        name: Press 1
        driver: mqtt
        connection:
          broker: {{host: 127.0.0.1, reconnect_min: 0.1}}
          sparkplug: {{{spark}, device: press1}}
        points:
          - {{id: pressure, unit: bar, address: {{metric: Pressure}}}}
          - {{id: speed, data_type: int, access: read_write, address: {{metric: Motor/Speed}}}}
          - {{id: label, address: {{metric: Label}}}}
"""


def _drivers(load: Callable[[str], LoadedSite], text: str) -> dict[str, MqttDriver]:
    loaded = load(text)
    kind = MqttDriverType()
    return {
        d.id: kind.create(d, loaded.connections[d.id], loaded.addresses[d.id])
        for d in loaded.site.devices
    }


class Commands:
    """What the gateway sends to the node, collected by a task (a cancelled ``__anext__``
    would end aiomqtt's message iterator)."""

    def __init__(self, messages: AsyncIterator[aiomqtt.Message]) -> None:
        self.queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(messages))

    async def _pump(self, messages: AsyncIterator[aiomqtt.Message]) -> None:
        async for message in messages:
            self.queue.put_nowait(message)

    async def next(self) -> aiomqtt.Message:
        return await asyncio.wait_for(self.queue.get(), 5)

    async def drain(self) -> None:
        """Forget what was sent, once nothing more comes for a moment."""
        with contextlib.suppress(TimeoutError):
            while True:
                await asyncio.wait_for(self.queue.get(), 0.3)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _rebirth(message: aiomqtt.Message) -> bool:
    assert isinstance(message.payload, bytes)
    metrics = sp.NCmd.decode(message.payload).metrics
    return [(m.name, m.value) for m in metrics] == [("Node Control/Rebirth", True)]


@dataclass
class Plant:
    """The edge node, the gateway's two drivers (node and device) and what the gateway sends."""

    node: EdgeNode
    edge: MqttDriver
    press: MqttDriver
    commands: Commands


@pytest.fixture
async def plant(
    load_site_text: Callable[[str], LoadedSite], group: str, client: aiomqtt.Client
) -> AsyncIterator[Plant]:
    """Drivers connected, the node born (bdSeq 5) with its device press1."""
    drivers = _drivers(load_site_text, _site(group))
    async with client.messages() as messages:
        commands = Commands(messages)
        await client.subscribe(f"spBv1.0/{group}/NCMD/edge1")
        await client.subscribe(f"spBv1.0/{group}/DCMD/edge1/#")
        for driver in drivers.values():
            await driver.connect()
        try:
            # Knowing nothing of the node, the driver asks it for its births.
            first = await commands.next()
            assert first.topic.value == f"spBv1.0/{group}/NCMD/edge1"
            assert _rebirth(first)
            node = EdgeNode(client, group, "edge1")
            await node.nbirth(bd_seq=5, uptime=10.0)
            await node.dbirth("press1")
            await wait_for(lambda: drivers["press1"].statistics["values"] == 2)
            yield Plant(node, drivers["edge"], drivers["press1"], commands)
        finally:
            await commands.stop()
            for driver in drivers.values():
                await driver.close()


async def test_births_and_data_give_values_with_their_times(plant: Plant) -> None:
    press, node = plant.press, plant.node
    result = await press.read(press.device.points)
    assert result.values[:2].tolist() == [2.5, 100.0]
    assert result.quality.tolist() == [GOOD, GOOD, Quality.BAD]
    assert press.faults["press1.label"] == "Sparkplug metric 'Label': a STRING metric, not a number"
    assert (await plant.edge.read(plant.edge.device.points)).values.tolist() == [10.0]

    # Data by alias only, with the metric's own time as source time.
    stamp = 1_700_000_000_250
    await node.ddata("press1", (sp.Metric(stamp, None, D.FLOAT, value=3.0, alias=1),))
    await wait_for(lambda: press.statistics["values"] == 3)
    result = await press.read(press.device.points)
    assert result.values[0] == 3.0
    assert np.asarray(result.source_time)[0] == pytest.approx(1_700_000_000.25)


async def test_wrong_sequence_and_truncated_payloads_make_points_bad_and_ask_rebirth(
    plant: Plant,
) -> None:
    press, node = plant.press, plant.node
    # A message out of sequence: dropped, its points Bad, counted, rebirth requested.
    await node.ddata("press1", (_m("Pressure", D.FLOAT, 9.0),), seq=node.seq + 2)
    await wait_for(lambda: press.statistics["sequence_errors"] == 1)
    assert _rebirth(await plant.commands.next())
    result = await press.read(press.device.points)
    assert result.quality[0] == Quality.BAD
    assert result.values[0] == 2.5, "the dropped value is not taken"
    assert "sequence number 4, 2 was expected" in press.faults["press1.pressure"]
    assert press.statistics["rebirth_requests"] >= 1
    assert plant.edge.statistics["sequence_errors"] == 1, "a node's count, for all its devices"
    node.seq = 5

    # A truncated protobuf: every point of the device Bad, the driver carries on.
    good = sp.DData(_ms(), 5, (_m("Pressure", D.FLOAT, 4.0),)).encode()
    await node.send("DDATA", good[: len(good) // 2], "press1")
    await wait_for(lambda: press.statistics["bad_payload"] == 1)
    assert (await press.read(press.device.points)).quality[1] == Quality.BAD
    assert "undecodable Sparkplug DDATA of edge1/press1" in press.faults["press1.speed"]
    await node.ddata("press1", (_m("Pressure", D.FLOAT, 4.0), _m("Motor/Speed", D.INT32, 7)))
    await wait_for(lambda: "press1.pressure" not in press.faults)
    result = await press.read(press.device.points)
    assert result.values[:2].tolist() == [4.0, 7.0]
    assert result.quality[:2].tolist() == [GOOD, GOOD]
    assert press.statistics["malformed"] == 2 + 1  # the label's births, and the bad payload


async def test_writes_are_dcmd_in_the_metrics_datatype(plant: Plant, group: str) -> None:
    press = plant.press
    await plant.commands.drain()
    await press.write(press.device.points[1], 250.0)
    command = await plant.commands.next()
    assert command.topic.value == f"spBv1.0/{group}/DCMD/edge1/press1"
    assert isinstance(command.payload, bytes)
    (metric,) = sp.DCmd.decode(command.payload).metrics
    assert (metric.name, metric.datatype, metric.value) == ("Motor/Speed", D.INT32, 250)
    label = press.device.points[2].model_copy(update={"access": "read_write"})
    with pytest.raises(DriverError, match="not writable as a number"):
        await press.write(label, 1.0)


async def test_ddeath_and_this_sessions_ndeath_take_devices_offline(plant: Plant) -> None:
    press, edge, node = plant.press, plant.edge, plant.node
    # DDEATH: the device is offline at once, its node is not.
    await node.ddeath("press1")
    await wait_for(lambda: not press.connected)
    assert edge.connected
    with pytest.raises(DriverError, match="DDEATH of edge1/press1"):
        await press.connect()
    await node.dbirth("press1")
    async with asyncio.timeout(5):  # the same task, as the engine's poll: it waits
        await press.connect()  # and returns as soon as the device is back
    assert press.connected

    # An NDEATH of an earlier session is ignored; this session's takes all offline.
    taken = press.statistics["values"]
    await node.ndeath(bd_seq=4)
    await node.ddata("press1", (_m("Pressure", D.FLOAT, 5.0),))
    await wait_for(lambda: press.statistics["values"] > taken)
    assert press.connected
    await node.ndeath(bd_seq=5)
    await wait_for(lambda: not press.connected and not edge.connected)
    assert press.statistics["offline"] == 2
    assert edge.statistics["offline"] == 1


async def test_engine_raises_comm_loss_on_ndeath(
    running_site: RunningSite, group: str, client: aiomqtt.Client
) -> None:
    node = EdgeNode(client, group, "edge1")
    async with running_site(_site(group)) as engine:
        table, alarms = engine.table, engine.alarms
        await wait_for(lambda: engine.drivers["press1"].connected)
        await node.nbirth(bd_seq=1, uptime=1.0)
        await node.dbirth("press1")
        at = table.index["press1.pressure"]
        await wait_for(lambda: table.quality[at] == GOOD)
        assert table.values[at] == 2.5
        await wait_for(lambda: alarms.status["press1.fault"].state is AlarmState.UNACK)
        assert "press1.label: Sparkplug metric 'Label'" in alarms.status["press1.fault"].message
        await node.ndeath(bd_seq=1)
        await wait_for(lambda: alarms.status["press1.comm"].state is AlarmState.UNACK)
        await wait_for(lambda: alarms.status["edge.comm"].state is AlarmState.UNACK)
        assert table.quality[at] == Quality.BAD_NOT_CONNECTED
        await node.nbirth(bd_seq=2, uptime=2.0)
        await node.dbirth("press1")
        await wait_for(lambda: table.quality[at] == GOOD)
        await wait_for(lambda: alarms.status["press1.comm"].state is AlarmState.RTN_UNACK)
