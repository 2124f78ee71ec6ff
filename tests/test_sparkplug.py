"""The gateway as a Sparkplug B edge node, checked as a Sparkplug host would see it.

A real engine (simulated plant over real Modbus TCP) publishes to the real Mosquitto
on 127.0.0.1:1883, each test under a group id of its own; the store-and-forward test
runs a Mosquitto of its own so that it can stop and restart it.  What PlantGuard
publishes is decoded twice, by code PlantGuard's encoder does not use:

* pysparkplug's public payload classes (``NBirth.decode`` …, which resolve DDATA
  aliases against the DBIRTH) — PlantGuard builds its messages with the schema's
  protobuf classes directly, not with these;
* a protobuf decoder built in this module from the field numbers of the official
  ``sparkplug_b.proto`` (Eclipse Tahu) in a descriptor pool of its own, which reads
  what pysparkplug's classes ignore: metric properties (unit, range, quality) and
  the ``is_historical`` flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from mqtt_broker import PrivateBroker, make_certificates
from pysparkplug import DataType, DBirth, DCmd, DData, Metric, NBirth, NCmd, NDeath
from test_mqtt_discovery import bounded_site, cancel_task, within

from plantguard.build import StartError
from plantguard.config import ConfigError
from plantguard.events import default_bus
from plantguard.model import Quality
from plantguard.testing import RunningSite, free_tcp_port, wait_for
from plantguard_mqtt_publish.plugin import MqttPublishService
from plantguard_mqtt_publish.quality import SPARKPLUG_QUALITY
from plantguard_sim.plant import PlantModel
from plantguard_sim.server import SimServer

BROKER = ("127.0.0.1", 1883)

# --- an independent decoder from the official schema ----------------------------------

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bytes": _F.TYPE_BYTES,
}
#: sparkplug_b.proto (Tahu): message → (name, number, type, repeated); nested messages
#: are named ``.spbtest.Payload.X``.  Dataset, template and extension values are left
#: out: they are unknown fields to this decoder and PlantGuard sends none.
_SCHEMA: dict[str, list[tuple[str, int, str, bool]]] = {
    "PropertyValue": [
        ("type", 1, "uint32", False),
        ("is_null", 2, "bool", False),
        ("int_value", 3, "uint32", False),
        ("long_value", 4, "uint64", False),
        ("float_value", 5, "float", False),
        ("double_value", 6, "double", False),
        ("boolean_value", 7, "bool", False),
        ("string_value", 8, "string", False),
    ],
    "PropertySet": [("keys", 1, "string", True), ("values", 2, "PropertyValue", True)],
    "MetaData": [
        ("is_multi_part", 1, "bool", False),
        ("content_type", 2, "string", False),
        ("size", 3, "uint64", False),
        ("seq", 4, "uint64", False),
        ("file_name", 5, "string", False),
        ("file_type", 6, "string", False),
        ("md5", 7, "string", False),
        ("description", 8, "string", False),
    ],
    "Metric": [
        ("name", 1, "string", False),
        ("alias", 2, "uint64", False),
        ("timestamp", 3, "uint64", False),
        ("datatype", 4, "uint32", False),
        ("is_historical", 5, "bool", False),
        ("is_transient", 6, "bool", False),
        ("is_null", 7, "bool", False),
        ("metadata", 8, "MetaData", False),
        ("properties", 9, "PropertySet", False),
        ("int_value", 10, "uint32", False),
        ("long_value", 11, "uint64", False),
        ("float_value", 12, "float", False),
        ("double_value", 13, "double", False),
        ("boolean_value", 14, "bool", False),
        ("string_value", 15, "string", False),
        ("bytes_value", 16, "bytes", False),
    ],
}
_PAYLOAD = [
    ("timestamp", 1, "uint64", False),
    ("metrics", 2, "Metric", True),
    ("seq", 3, "uint64", False),
    ("uuid", 4, "string", False),
    ("body", 5, "bytes", False),
]


def _add_fields(message: Any, fields: list[tuple[str, int, str, bool]]) -> None:
    for name, number, kind, repeated in fields:
        f = message.field.add(name=name, number=number)
        f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
        if kind in _SCALARS:
            f.type = _SCALARS[kind]
        else:
            f.type = _F.TYPE_MESSAGE
            f.type_name = f".spbtest.Payload.{kind}"


def _payload_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="spbtest/sparkplug_b.proto", package="spbtest", syntax="proto2"
    )
    payload = proto.message_type.add(name="Payload")
    _add_fields(payload, _PAYLOAD)
    for name, fields in _SCHEMA.items():
        _add_fields(payload.nested_type.add(name=name), fields)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("spbtest.Payload"))


PAYLOAD = _payload_class()

_PROPERTY_FIELDS = ("int_value", "long_value", "double_value", "string_value", "boolean_value")


@dataclass
class Raw:
    """One metric as the independent decoder reads it."""

    name: str
    alias: int
    timestamp: int
    historical: bool
    is_null: bool
    properties: dict[str, object]
    description: str


def decode_raw(payload: bytes) -> tuple[int | None, list[Raw]]:
    """(seq, metrics) of a Sparkplug payload, without pysparkplug."""
    message = PAYLOAD.FromString(payload)
    metrics = []
    for m in message.metrics:
        props: dict[str, object] = {}
        for key, value in zip(m.properties.keys, m.properties.values, strict=True):
            props[key] = next(
                (getattr(value, f) for f in _PROPERTY_FIELDS if value.HasField(f)), None
            )
        metrics.append(
            Raw(
                m.name,
                m.alias,
                m.timestamp,
                m.is_historical,
                m.is_null,
                props,
                m.metadata.description,
            )
        )
    return (message.seq if message.HasField("seq") else None), metrics


# --- a Sparkplug host: subscribe, collect, decode -------------------------------------


@dataclass
class Host:
    """Everything published under one group id, in arrival order."""

    group: str
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    births: dict[str, DBirth] = field(default_factory=dict)

    def of(self, kind: str, device: str | None = None) -> list[bytes]:
        return [
            p
            for t, p in self.messages
            if t.split("/")[2] == kind and (device is None or t.split("/")[-1] == device)
        ]

    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]

    def data(self, device: str) -> Iterator[Metric]:
        """Every DDATA metric of ``device`` with its name, decoded against the last DBIRTH
        before it (pysparkplug resolves the aliases)."""
        birth: DBirth | None = None
        for topic, payload in self.messages:
            parts = topic.split("/")
            if parts[-1] != device:
                continue
            if parts[2] == "DBIRTH":
                birth = DBirth.decode(payload)
            elif parts[2] == "DDATA" and birth is not None:
                yield from DData.decode(payload, birth=birth).metrics

    def values(self, device: str, name: str) -> list[object]:
        return [m.value for m in self.data(device) if m.name == name]


@pytest.fixture
def running_site(running_site: RunningSite) -> RunningSite:
    return bounded_site(running_site)


@contextlib.asynccontextmanager
async def sparkplug_host(group: str, port: int = BROKER[1]) -> AsyncIterator[Host]:
    host = Host(group)

    async def collect(client: aiomqtt.Client) -> None:
        async with client.messages() as messages:
            await client.subscribe(f"spBv1.0/{group}/#", qos=1)
            ready.set()
            async for message in messages:
                assert isinstance(message.payload, bytes)
                host.messages.append((message.topic.value, message.payload))

    ready = asyncio.Event()
    async with aiomqtt.Client(BROKER[0], port, client_id=f"host-{uuid.uuid4().hex}") as client:
        task = asyncio.create_task(collect(client))
        try:
            async with within(10, f"subscribing to spBv1.0/{group}/#"):
                await ready.wait()
            yield host
        finally:
            await cancel_task(task, f"the Sparkplug host of {group}")


async def send(topic: str, payload: bytes, port: int = BROKER[1]) -> None:
    async with aiomqtt.Client(BROKER[0], port, client_id=f"cmd-{uuid.uuid4().hex}") as client:
        await client.publish(topic, payload, qos=1)


def ack_command(alarm: str, user: str) -> bytes:
    now = int(time.time() * 1000)
    return DCmd(
        timestamp=now,
        metrics=(
            Metric(now, "Command/User", DataType.STRING, value=user),
            Metric(now, f"Alarms/{alarm}/Acknowledge", DataType.BOOLEAN, value=True),
        ),
    ).encode(include_dtypes=True)


def write_command(point: str, value: bool, user: str) -> bytes:
    now = int(time.time() * 1000)
    return DCmd(
        timestamp=now,
        metrics=(
            Metric(now, "Command/User", DataType.STRING, value=user),
            Metric(now, point, DataType.BOOLEAN, value=value),
        ),
    ).encode(include_dtypes=True)


def rebirth_command() -> bytes:
    now = int(time.time() * 1000)
    metric = Metric(now, "Node Control/Rebirth", DataType.BOOLEAN, value=True)
    return NCmd(timestamp=now, metrics=(metric,)).encode(include_dtypes=True)


def unique_group() -> str:
    return f"pgtest-{uuid.uuid4().hex[:10]}"


def site_yaml(
    sim: int, group: str, *, port: int = BROKER[1], dead: int | None = None, extra: str = ""
) -> str:
    dead_device = (
        f"""
      - id: dead1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {dead}, unit: 1, timeout: 0.3}}
        points:
          - {{id: flow, unit: m³/h, address: {{register: 0}}}}
"""
        if dead
        else ""
    )
    return f"""
id: plant
name: Test plant
poll_groups: {{default: {{interval: 0.2}}}}
store: {{history: {{flush_interval: 0.2}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  mqtt_publish:
    broker: {{host: 127.0.0.1, port: {port}, keepalive: 5, reconnect_interval: 0.3}}
    sparkplug:
      group_id: {group}
      edge_node_id: gw1
      deadbands: {{pump1.current: 1000}}
{extra}
    roles: {{op: operator, watcher: viewer}}
areas:
  - id: yard
    devices:
      - id: pump1
        name: Transfer pump
        category: pump
        info: {{manufacturer: Acme, model: P-100, serial_number: SN1, firmware_version: "2.1"}}
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 1}}
        points:
          - {{id: current, name: Motor current, unit: A, range: [0, 40], address: {{register: 0}}}}
          - {{id: bearing_temp, unit: °C, range: [0, 120], address: {{register: 4}}}}
          - {{id: running, data_type: bool, access: read_write, address: {{register: 6}}}}
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - id: level
            unit: "%"
            range: [0, 100]
            address: {{register: 0}}
            rules: {{limit: {{h: 10, priority: high}}}}
{dead_device}"""


def _birth_metrics(payload: bytes) -> dict[str, Metric]:
    return {m.name: m for m in DBirth.decode(payload).metrics if m.name}


# --- tests ---------------------------------------------------------------------------


async def test_births_carry_every_point_with_its_engineering_data(
    running_site: RunningSite,
) -> None:
    group = unique_group()
    async with sparkplug_host(group) as host, running_site(site_yaml(free_tcp_port(), group)):
        await wait_for(lambda: len(host.of("DBIRTH")) >= 2)
        nbirth = NBirth.decode(host.of("NBIRTH")[0])
        assert nbirth.seq == 0
        node = {m.name: m for m in nbirth.metrics}
        assert node["bdSeq"].datatype is DataType.INT64
        assert node["bdSeq"].value == 0
        assert node["Node Control/Rebirth"].value is False
        assert node["Properties/Site"].value == "Test plant"
        # Births come first, in site order, with consecutive sequence numbers.
        assert host.topics()[:3] == [
            f"spBv1.0/{group}/NBIRTH/gw1",
            f"spBv1.0/{group}/DBIRTH/gw1/pump1",
            f"spBv1.0/{group}/DBIRTH/gw1/tank1",
        ]

        pump = _birth_metrics(host.of("DBIRTH", "pump1")[0])
        assert pump["current"].datatype is DataType.DOUBLE
        assert pump["running"].datatype is DataType.BOOLEAN
        assert pump["Properties/Manufacturer"].value == "Acme"
        assert pump["Properties/SoftwareRevision"].value == "2.1"
        seq, raw = decode_raw(host.of("DBIRTH", "pump1")[0])
        assert seq == 1
        by_name = {m.name: m for m in raw}
        current = by_name["current"]
        assert current.properties["engUnit"] == "A"
        assert (current.properties["engLow"], current.properties["engHigh"]) == (0.0, 40.0)
        assert current.properties["readOnly"] == "true"
        assert by_name["running"].properties["readOnly"] == "false"
        assert current.description == "Motor current"
        # Born before the first poll (waiting for initial data, OPC DA 0x20: a null value)
        # or after it (Good, 192, a value).
        assert (current.properties["Quality"], current.is_null) in {(0x20, True), (192, False)}
        assert by_name["bearing_temp"].properties["engUnit"] == "°C"

        tank = _birth_metrics(host.of("DBIRTH", "tank1")[0])
        assert tank["Alarms/level.limit/Priority"].value == 700
        for name in ("Active", "Acked", "Shelved", "Acknowledge"):
            assert tank[f"Alarms/level.limit/{name}"].datatype is DataType.BOOLEAN

        # The first poll reports every point with its value and Good quality (192).
        await wait_for(lambda: any(isinstance(v, float) for v in host.values("tank1", "level")))
        level = next(v for v in host.values("tank1", "level") if isinstance(v, float))
        assert 50.0 < level < 70.0
        qualities = [m.properties.get("Quality") for m in reports(host, "tank1", "level")]
        assert [q for q in qualities if q is not None][-1] == 192

    seqs = [decode_raw(p)[0] for t, p in host.messages if "DEATH" not in t]
    assert seqs == [i % 256 for i in range(len(seqs))]


async def test_deadband_holds_back_small_changes(running_site: RunningSite) -> None:
    group = unique_group()
    async with sparkplug_host(group) as host, running_site(site_yaml(free_tcp_port(), group)):
        await wait_for(lambda: len(host.values("pump1", "bearing_temp")) >= 5)
    # bearing_temp (no deadband) moves with the simulated noise at every poll;
    # current (deadband 1000 A) is reported once, when its quality became Good.
    assert len(set(host.values("pump1", "bearing_temp"))) >= 5
    assert len([m for m in reports(host, "pump1", "current") if not m.is_null]) == 1


async def test_an_unreachable_device_is_dead_until_it_answers(running_site: RunningSite) -> None:
    group = unique_group()
    dead_port = free_tcp_port()
    yaml = site_yaml(free_tcp_port(), group, dead=dead_port)
    async with sparkplug_host(group) as host, running_site(yaml):
        await wait_for(lambda: host.of("DDEATH", "dead1"))
        death = host.topics().index(f"spBv1.0/{group}/DDEATH/gw1/dead1")
        born = decode_raw(host.of("DBIRTH", "dead1")[0])[1]
        # Born waiting for its first answer (0x20) or already without a link (0x08, 0x18).
        assert next(m for m in born if m.name == "flow").properties["Quality"] in {0x20, 8, 0x18}
        # The other devices report on; the dead one says nothing until it is back.
        await wait_for(lambda: len(host.of("DDATA", "pump1")) >= 3)
        assert host.of("DDATA", "dead1") == []
        server = SimServer(PlantModel(seed=1, scenario="none"), host="127.0.0.1", port=dead_port)
        await server.start()
        try:
            await wait_for(lambda: len(host.of("DBIRTH", "dead1")) == 2, timeout=20)
        finally:
            await server.stop()
    rebirth = host.topics().index(f"spBv1.0/{group}/DBIRTH/gw1/dead1", death)
    assert rebirth > death
    flow = [m for m in decode_raw(host.messages[rebirth][1])[1] if m.name == "flow"]
    assert flow[0].properties["Quality"] == 192
    assert not flow[0].is_null
    comm = _birth_metrics(host.messages[rebirth][1])["Alarms/comm/Active"]
    assert comm.datatype is DataType.BOOLEAN


async def test_rebirth_on_node_control_and_bad_commands_are_survived(
    running_site: RunningSite,
) -> None:
    group = unique_group()
    async with sparkplug_host(group) as host, running_site(site_yaml(free_tcp_port(), group)):
        await wait_for(lambda: len(host.of("DBIRTH")) == 2)
        await send(f"spBv1.0/{group}/NCMD/gw1", b"\x12\x10abc")  # truncated protobuf
        await send(f"spBv1.0/{group}/DCMD/gw1/pump1", b"not protobuf at all")
        await send(f"spBv1.0/{group}/DCMD/gw1/nosuchdevice", ack_command("x", "op"))
        await send(f"spBv1.0/{group}/NCMD/gw1", rebirth_command())
        await wait_for(lambda: len(host.of("NBIRTH")) == 2 and len(host.of("DBIRTH")) == 4)
    second = host.messages.index((f"spBv1.0/{group}/NBIRTH/gw1", host.of("NBIRTH")[1]))
    rebirth = NBirth.decode(host.messages[second][1])
    assert rebirth.seq == 0
    assert {m.name: m.value for m in rebirth.metrics}["bdSeq"] == 0  # same connection
    assert decode_raw(host.messages[second + 1][1])[0] == 1
    assert host.messages[second + 1][0].endswith("/DBIRTH/gw1/pump1")


async def test_alarm_states_and_acknowledge_by_dcmd_with_the_mapped_role(
    running_site: RunningSite,
) -> None:
    group = unique_group()
    alarm = "tank1.level.limit"
    async with (
        sparkplug_host(group) as host,
        running_site(site_yaml(free_tcp_port(), group)) as engine,
    ):
        await wait_for(lambda: True in host.values("tank1", "Alarms/level.limit/Active"))
        assert host.values("tank1", "Alarms/level.limit/Acked")[-1] is False

        topic = f"spBv1.0/{group}/DCMD/gw1/tank1"
        for user in ("watcher", "stranger", ""):  # a viewer, an unmapped user, nobody
            await send(topic, ack_command("level.limit", user))
        await send(topic, ack_command("level.limit", "op"))
        await wait_for(lambda: True in host.values("tank1", "Alarms/level.limit/Acked"))
        status = engine.alarms.status[alarm]
        assert status.state.acknowledged
        assert status.last_user == "op"
        assert engine.store is not None
        journal = [t for t in engine.store.journal(alarm) if t.action == "acknowledge"]
        assert [t.user for t in journal] == ["op"]


async def test_point_writes_by_dcmd_go_through_the_engines_write_path(
    running_site: RunningSite,
) -> None:
    group = unique_group()
    reader = default_bus().reader()
    async with (
        sparkplug_host(group) as host,
        running_site(site_yaml(free_tcp_port(), group)) as engine,
    ):
        running = engine.table.index["pump1.running"]
        await wait_for(lambda: engine.table.values[running] == 1.0)
        topic = f"spBv1.0/{group}/DCMD/gw1/pump1"
        await send(topic, write_command("running", False, "watcher"))  # a viewer
        await send(topic, write_command("current", True, "op"))  # a read-only point
        await send(topic, write_command("running", False, "op"))
        await wait_for(lambda: engine.table.values[running] == 0.0)
        await wait_for(lambda: False in host.values("pump1", "running"))
    traced = [(e.source, e.user, e.detail["outcome"]) for e in reader.drain() if e.kind == "write"]
    assert traced == [
        ("pump1.running", "watcher", "denied"),
        ("pump1.current", "op", "read-only"),
        ("pump1.running", "op", "written"),
    ]


async def test_births_wait_for_the_primary_host_application(running_site: RunningSite) -> None:
    group = unique_group()
    host_id = f"scada-{uuid.uuid4().hex[:8]}"
    state = f"spBv1.0/STATE/{host_id}"
    yaml = site_yaml(free_tcp_port(), group, extra=f"      primary_host_id: {host_id}")

    async def say(online: bool) -> None:
        payload = json.dumps({"online": online, "timestamp": int(time.time() * 1000)})
        async with aiomqtt.Client(*BROKER, client_id=f"scada-{uuid.uuid4().hex}") as scada:
            await scada.publish(state, payload.encode(), qos=1, retain=True)

    try:
        async with sparkplug_host(group) as host, running_site(yaml) as engine:
            service = engine.services["mqtt_publish"]
            assert isinstance(service, MqttPublishService)
            node = service.edge_node
            assert node is not None
            await wait_for(lambda: node.waiting_for_host)
            await send(state, b"not json")  # ignored
            await wait_for(lambda: engine.table.quality[0] == 0)  # the plant is polled …
            assert host.of("NBIRTH") == []  # … but nobody is born without the host
            await say(True)
            await wait_for(lambda: len(host.of("NBIRTH")) == 1)
            await say(False)
            await wait_for(lambda: len(host.of("NDEATH")) == 1)
            point = engine.table.index["pump1.bearing_temp"]
            seen = {float(engine.table.values[point])}
            while len(seen) < 10:  # samples the host misses
                await asyncio.sleep(0.2)
                seen.add(float(engine.table.values[point]))
            await say(True)
            await wait_for(lambda: any(m.historical for m in _raw(host)), timeout=20)
    finally:
        # No retained STATE left behind.
        async with aiomqtt.Client(*BROKER, client_id=f"clear-{uuid.uuid4().hex}") as c:
            await c.publish(state, b"", qos=1, retain=True)
    births = [NBirth.decode(p) for p in host.of("NBIRTH")]
    bd_seqs = [int({m.name: m.value for m in b.metrics}["bdSeq"]) for b in births]  # type: ignore[arg-type]
    death = NDeath.decode(host.of("NDEATH")[0]).bd_seq_metric.value
    assert death == bd_seqs[0]
    assert bd_seqs[1] == bd_seqs[0] + 1  # a new connection
    assert len([m for m in _raw(host) if m.historical]) >= 5


async def test_store_and_forward_while_the_broker_is_away(
    running_site: RunningSite, tmp_path: Path
) -> None:
    port = free_tcp_port()
    group = unique_group()
    with PrivateBroker(tmp_path / "broker", port=port) as broker:
        async with running_site(site_yaml(free_tcp_port(), group, port=port)) as engine:
            async with sparkplug_host(group, port) as host:
                await wait_for(lambda: len(host.values("pump1", "bearing_temp")) >= 2)
            broker.stop()
            away = time.time()
            point = engine.table.index["pump1.bearing_temp"]
            seen = {float(engine.table.values[point])}
            while len(seen) < 15:  # the plant goes on while the broker is away
                await asyncio.sleep(0.2)
                seen.add(float(engine.table.values[point]))
            back = time.time()
            broker.start()
            async with sparkplug_host(group, port) as host:
                await wait_for(lambda: any(m.historical for m in _raw(host)), timeout=20)
                births = [NBirth.decode(p) for p in host.of("NBIRTH")]
    bd_seq = {m.name: m.value for m in births[0].metrics}["bdSeq"]
    assert isinstance(bd_seq, int)
    assert bd_seq >= 1  # a new connection
    historical = [m for m in _raw(host) if m.historical]
    stamps = [m.timestamp / 1000 for m in historical if m.alias == _alias(host, "bearing_temp")]
    assert stamps == sorted(stamps)  # in order
    assert len([s for s in stamps if away + 0.3 < s < back - 0.3]) >= 5
    # Forwarded and live messages interleave, numbered in the order the broker got them.
    seqs = [decode_raw(p)[0] for t, p in host.messages if "DEATH" not in t]
    assert all((b - a) % 256 == 1 for a, b in itertools.pairwise(seqs))  # type: ignore[operator]


def reports(host: Host, device: str, name: str) -> list[Raw]:
    """Every report of a metric, in the DBIRTHs and DDATAs of its device, in arrival order."""
    found = []
    alias = _alias(host, name, device)
    for topic, payload in host.messages:
        parts = topic.split("/")
        if parts[-1] == device and parts[2] in ("DBIRTH", "DDATA"):
            found += [m for m in decode_raw(payload)[1] if m.alias == alias]
    return found


def _raw(host: Host) -> list[Raw]:
    return [m for p in host.of("DDATA", "pump1") for m in decode_raw(p)[1]]


def _alias(host: Host, name: str, device: str = "pump1") -> int:
    birth = decode_raw(host.of("DBIRTH", device)[0])[1]
    return next(m.alias for m in birth if m.name == name)


async def test_tls_with_a_client_certificate_and_a_password(
    running_site: RunningSite, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "pki")
    group = unique_group()
    broker = PrivateBroker(tmp_path / "broker", certificates=certs, users={"line1": "s3cret"})
    tls = (
        f"tls: {{ca_file: {certs.ca}, cert_file: {certs.client_cert}, "
        f"key_file: {certs.client_key}}}"
    )
    yaml = site_yaml(free_tcp_port(), group, port=broker.port).replace(
        "reconnect_interval: 0.3}",
        f"reconnect_interval: 0.3, username: line1, password: s3cret, {tls}}}",
    )
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(certs.client_cert, certs.client_key)
    with broker:
        async with (
            aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                username="line1",
                password="s3cret",
                tls_context=context,
                client_id=f"host-{uuid.uuid4().hex}",
            ) as client,
            client.messages() as messages,
        ):
            await client.subscribe(f"spBv1.0/{group}/#")
            async with running_site(yaml), within(20, "the first message over TLS"):
                message = await anext(aiter(messages))
    assert message.topic.value == f"spBv1.0/{group}/NBIRTH/gw1"
    assert isinstance(message.payload, bytes)
    assert NBirth.decode(message.payload).seq == 0


@pytest.mark.parametrize(
    ("tls", "wrong"),
    [
        ("{cert_file: CERT}", "key_file"),
        ("{ca_file: /nonexistent/ca.pem}", "/nonexistent/ca.pem is not a file"),
    ],
)
async def test_tls_files_are_checked_before_start(
    running_site: RunningSite, tmp_path: Path, tls: str, wrong: str
) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("")
    yaml = site_yaml(free_tcp_port(), unique_group()).replace(
        "reconnect_interval: 0.3}",
        f"reconnect_interval: 0.3, tls: {tls.replace('CERT', str(cert))}}}",
    )
    with pytest.raises(ConfigError, match=wrong):
        async with running_site(yaml):
            pass


async def test_a_deadband_for_no_point_stops_the_start(running_site: RunningSite) -> None:
    yaml = site_yaml(free_tcp_port(), unique_group()).replace("pump1.current: 1000", "pump9.x: 1")
    with pytest.raises(StartError, match=r"deadbands names 'pump9.x'"):
        async with running_site(yaml):
            pass


def test_quality_codes_are_opc_da_codes() -> None:
    """Good is 192, Uncertain 64–127 (0x40 and its sub-states), Bad below 64."""
    assert SPARKPLUG_QUALITY[Quality.GOOD] == 192
    for quality in Quality:
        code = int(SPARKPLUG_QUALITY[quality])
        if quality.is_bad:
            assert code < 0x40, quality
        elif not quality.is_good:
            assert 0x40 <= code < 0x80, quality
    assert SPARKPLUG_QUALITY[Quality.BAD_NOT_CONNECTED] == 0x08
    assert SPARKPLUG_QUALITY[Quality.BAD_COMMUNICATION_ERROR] == 0x18


def test_the_independent_decoder_reads_the_official_field_numbers() -> None:
    """The test's own schema agrees with pysparkplug on a payload pysparkplug encodes."""
    now = 1_700_000_000_000
    payload = DData(
        timestamp=now,
        seq=7,
        metrics=(Metric(now, "x", DataType.DOUBLE, value=1.5, alias=9, is_historical=True),),
    ).encode(include_dtypes=True)
    seq, (metric,) = decode_raw(payload)
    assert (seq, metric.name, metric.alias, metric.timestamp) == (7, "x", 9, now)
    assert metric.historical
    assert not metric.is_null
    assert not math.isnan(PAYLOAD.FromString(payload).metrics[0].double_value)
    with pytest.raises(Exception):  # noqa: B017, PT011 - protobuf's DecodeError
        decode_raw(b"\x12\x10abc")
