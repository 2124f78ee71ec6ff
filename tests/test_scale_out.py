"""Scale-out, shown: three gateway processes, one broker, one PostgreSQL, one subscriber.

Three ``plantguard run`` processes (each its own simulated plant, site file and
PostgreSQL schema) are Sparkplug edge nodes of one group on the real Mosquitto.
One subscriber — a minimal Sparkplug host application — sees every device of all
three, each node's births in order (NBIRTH, then its DBIRTHs, before any of its
DDATA), and when one gateway is killed (SIGKILL: no goodbye), the broker publishes
its NDEATH (the Last Will, with the bdSeq of its NBIRTH) within 1.5 keep-alives;
the host then takes that node's devices as Bad, as Sparkplug hosts do, and the
node's Home Assistant availability topic says ``offline``.  The other two go on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from pysparkplug import DBirth, NBirth, NDeath
from test_mqtt_discovery import clear_retained, watch, within
from test_sparkplug import Host, sparkplug_host

from plantguard.store import database_url
from plantguard.testing import free_tcp_port, wait_for

POSTGRES = os.environ.get(
    "PLANTGUARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PLANTGUARD = Path(sys.executable).parent / "plantguard"
KEEPALIVE = 2
GATEWAYS = 3


def site(index: int, tag: str, sim: int) -> str:
    return f"""
id: line{index}
poll_groups: {{default: {{interval: 0.5}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  mqtt_publish:
    broker: {{host: 127.0.0.1, port: 1883, keepalive: {KEEPALIVE}}}
    sparkplug: {{group_id: scale-{tag}, edge_node_id: line{index}-{tag}}}
    homeassistant: {{prefix: scale{tag}}}
areas:
  - id: area{index}
    devices:
      - id: l{index}pump
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 1}}
        points:
          - {{id: current, unit: A, address: {{register: 0}}}}
          - {{id: bearing_temp, unit: °C, address: {{register: 4}}}}
      - id: l{index}tank
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, unit: "%", address: {{register: 0}}}}
"""


#: Every device of the three sites.
EXPECTED = {f"l{i}{d}" for i in range(1, GATEWAYS + 1) for d in ("pump", "tank")}


@dataclass
class Gateway:
    name: str
    process: asyncio.subprocess.Process
    log: Path


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    """A PostgreSQL schema per gateway (created here, dropped after)."""
    base = database_url(POSTGRES)
    names = [f"scale_out_{uuid.uuid4().hex[:8]}_{i}" for i in range(1, GATEWAYS + 1)]
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:  # fails the test if PostgreSQL is unreachable
            for name in names:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        separator = "&" if "?" in base else "?"
        yield [f"{base}{separator}options=-csearch_path%3D{name}" for name in names]
    finally:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


@dataclass
class HostView:
    """What a Sparkplug host application makes of the messages: device → Good or Bad."""

    quality: dict[str, str] = field(default_factory=dict)
    node_devices: dict[str, list[str]] = field(default_factory=dict)
    node_bd_seq: dict[str, int] = field(default_factory=dict)

    def apply(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        kind, node = parts[2], parts[3]
        if kind == "NBIRTH":
            metrics = {m.name: m.value for m in NBirth.decode(payload).metrics}
            bd_seq = metrics["bdSeq"]
            assert isinstance(bd_seq, int)
            self.node_bd_seq[node] = bd_seq
            self.node_devices[node] = []
        elif kind == "DBIRTH":
            DBirth.decode(payload)
            self.node_devices[node].append(parts[4])
            self.quality[parts[4]] = "Good"
        elif kind == "NDEATH" and NDeath.decode(
            payload
        ).bd_seq_metric.value == self.node_bd_seq.get(node):
            for device in self.node_devices.get(node, ()):
                self.quality[device] = "Bad"


async def start_gateways(tag: str, schemas: list[str], workdir: Path) -> list[Gateway]:
    gateways = []
    for i in range(1, GATEWAYS + 1):
        path = workdir / f"line{i}.yaml"
        path.write_text(site(i, tag, free_tcp_port()))
        log = workdir / f"line{i}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                str(PLANTGUARD),
                "run",
                str(path),
                "--db",
                schemas[i - 1],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        gateways.append(Gateway(f"line{i}-{tag}", process, log))
    return gateways


async def stop_gateways(gateways: list[Gateway]) -> None:
    for gw in gateways:
        if gw.process.returncode is None:
            gw.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(gw.process.wait(), 20)
            except TimeoutError:
                gw.process.kill()
                async with within(10, f"the end of the killed {gw.name}"):
                    await gw.process.wait()


def check_births(host: Host, gateways: list[Gateway]) -> HostView:
    """Every device of every gateway is born, each node's births first and in site order."""
    view = HostView()
    for topic, payload in host.messages:
        view.apply(topic, payload)
    assert set(view.quality) == EXPECTED
    assert set(view.quality.values()) == {"Good"}
    for i, gw in enumerate(gateways, start=1):
        mine = [t.split("/")[2:] for t in host.topics() if t.split("/")[3] == gw.name]
        kinds = [parts[0] for parts in mine]
        assert kinds[:3] == ["NBIRTH", "DBIRTH", "DBIRTH"]
        assert [p[-1] for p in mine[1:3]] == [f"l{i}pump", f"l{i}tank"]
        assert "BIRTH" not in "".join(kinds[3:])
    return view


def check_schemas(schemas: list[str]) -> None:
    """Each gateway wrote its own schema of the one database."""
    engine = sa.create_engine(database_url(POSTGRES))
    try:
        with engine.connect() as conn:
            for i, url in enumerate(schemas, start=1):
                schema = url.rsplit("%3D", 1)[1]
                devices = conn.execute(
                    sa.text(f'SELECT DISTINCT device_id FROM "{schema}".points ORDER BY 1')
                ).scalars()
                assert list(devices) == [f"l{i}pump", f"l{i}tank"]
    finally:
        engine.dispose()


async def test_three_gateways_one_broker_one_database(schemas: list[str], tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    group = f"scale-{tag}"
    statuses = [f"plantguard/line{i}-{tag}/status" for i in range(1, GATEWAYS + 1)]
    gateways: list[Gateway] = []
    try:
        async with sparkplug_host(group) as host, watch(*statuses) as status:
            gateways = await start_gateways(tag, schemas, tmp_path)

            def all_reporting() -> bool:
                for gw in gateways:
                    if gw.process.returncode is not None:
                        pytest.fail(f"{gw.name} exited: {gw.log.read_text()[-2000:]}")
                devices = {t.split("/")[-1] for t in host.topics() if "/DDATA/" in t}
                return len(devices) == 2 * GATEWAYS

            await wait_for(all_reporting, timeout=60)
            view = check_births(host, gateways)

            victim = gateways[1]
            victim.process.send_signal(signal.SIGKILL)  # no goodbye: only the Will speaks
            async with within(10, f"the end of the killed {victim.name}"):
                await victim.process.wait()
            killed = time.monotonic()
            death = f"spBv1.0/{group}/NDEATH/{victim.name}"
            # The broker notices the silence after 1.5 keep-alives at most, then sends the Will.
            await wait_for(lambda: death in host.topics(), timeout=1.5 * KEEPALIVE + 2)
            noticed = time.monotonic() - killed
            for topic, payload in host.messages:
                if topic == death:
                    view.apply(topic, payload)
            assert view.quality == {
                **dict.fromkeys(EXPECTED, "Good"),
                "l2pump": "Bad",
                "l2tank": "Bad",
            }
            await wait_for(lambda: status.latest.get(statuses[1]) == b"offline", timeout=5)
            # The other two go on reporting.
            before = len(host.messages)
            await wait_for(
                lambda: (
                    {t.split("/")[-1] for t, _ in host.messages[before:]} >= {"l1tank", "l3tank"}
                )
            )
            print(f"NDEATH {noticed:.1f} s after the kill (keep-alive {KEEPALIVE} s)")
    finally:
        await stop_gateways(gateways)
        nodes = (f"plantguard/line{i}-{tag}/#" for i in range(1, GATEWAYS + 1))
        await clear_retained(f"scale{tag}/#", *nodes)
    check_schemas(schemas)
