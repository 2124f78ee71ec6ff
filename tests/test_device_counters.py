"""A driver's counters reach the store, ``plantguard stats`` and OPC UA.

A real MQTT device on the shared Mosquitto (127.0.0.1:1883, a topic prefix of its
own) receives a malformed payload; the engine stores the device's counters; a
separate ``plantguard stats --json`` process and a real asyncua client read them.
The upsert itself runs on SQLite and, when configured, on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest
import sqlalchemy as sa
from asyncua.client.client import Client
from asyncua.ua import VariantType
from asyncua_typed import string_id

from plantguard.cli import main
from plantguard.model import Quality
from plantguard.store import Store
from plantguard.testing import RunningSite, free_tcp_port, wait_for
from plantguard_mqtt.driver import MqttDriver
from plantguard_opcua.server import OpcUaService


def _site(prefix: str, opcua: int) -> str:
    return f"""
id: plant
scan_interval: 0.1
poll_groups: {{default: {{interval: 0.05}}}}
services:
  opcua: {{port: {opcua}, security: [none], anonymous: true}}
areas:
  - id: yard
    devices:
      - id: gas1
        driver: mqtt
        connection:
          broker: {{host: 127.0.0.1, port: 1883, reconnect_min: 0.1}}
        points:
          - {{id: co, unit: ppm, address: {{topic: {prefix}/gas1/telemetry, json: $.co}}}}
"""


def _stats_json(db: str) -> dict[str, object]:
    """``plantguard stats --json`` as its own process, reading only the store."""
    done = subprocess.run(
        [sys.executable, "-m", "plantguard", "stats", "--json", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


async def test_malformed_payload_counted_in_stats_and_opcua(
    running_site: RunningSite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"pgtest/{uuid.uuid4().hex}"
    db = str(tmp_path / "counters.db")
    opcua = free_tcp_port()
    async with running_site(_site(prefix, opcua), db=db) as engine:
        driver = engine.drivers["gas1"]
        assert isinstance(driver, MqttDriver)
        await wait_for(lambda: driver.connected)
        co = engine.table.index["gas1.co"]
        async with aiomqtt.Client("127.0.0.1", 1883) as publisher:
            await publisher.publish(f"{prefix}/gas1/telemetry", json.dumps({"co": 12.5}))
            await wait_for(lambda: engine.table.values[co] == 12.5)
            await publisher.publish(f"{prefix}/gas1/telemetry", b"{not json")
            await wait_for(lambda: driver.statistics["malformed"] >= 1)
        await wait_for(lambda: engine.table.quality[co] != Quality.GOOD)

        # What the engine writes every minute, written now; OPC UA refreshed now too.
        await engine.write_counters()
        service = engine.services["opcua"]
        assert isinstance(service, OpcUaService)
        assert service.records is not None
        await service.records.refresh()
        async with Client(f"opc.tcp://127.0.0.1:{opcua}/plantguard") as client:
            ns = await client.get_namespace_index("urn:plantguard")
            node = client.get_node(string_id("plant/yard/gas1/Statistics/Counters#malformed", ns))
            value = await node.read_data_value()
            assert value.Value is not None
            assert value.Value.VariantType is VariantType.UInt64
            assert value.Value.Value >= 1
            assert (await node.read_browse_name()).Name == "malformed"
            folder = client.get_node(string_id("plant/yard/gas1/Statistics", ns))
            under = await folder.get_child(f"{ns}:Counters")
            names = {(await c.read_browse_name()).Name for c in await under.get_children()}
            assert {"messages", "malformed", "not_json", "values"} <= names

    # The stop stored the final counts; a separate process reads them from the store.
    stats = _stats_json(db)
    counters = stats["counters"]
    assert isinstance(counters, dict)
    assert counters["gas1"]["malformed"] >= 1
    assert counters["gas1"]["not_json"] >= 1
    assert counters["gas1"]["messages"] >= 2
    assert counters["gas1"]["values"] >= 1

    assert main(["stats", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "device counters" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("gas1:"))
    assert "malformed" in line
    assert "not_json" in line
    assert "cannot store the device counters" not in caplog.text


async def test_a_failing_store_is_logged_once_and_never_stops_the_engine(
    running_site: RunningSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"pgtest/{uuid.uuid4().hex}"
    db = str(tmp_path / "broken.db")
    async with running_site(_site(prefix, free_tcp_port()), db=db) as engine:
        driver = engine.drivers["gas1"]
        await wait_for(lambda: driver.connected)
        driver_counts = driver.counters()
        assert driver_counts
        assert all(v == 0 for v in driver_counts.values())
        with engine.store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE device_counters"))
        caplog.set_level(logging.ERROR, logger="plantguard.engine")
        await engine.write_counters()
        await engine.write_counters()
        failures = [r for r in caplog.records if "cannot store the device counters" in r.message]
        assert len(failures) == 1
        assert "device_counters" in failures[0].getMessage()
        co = engine.table.index["gas1.co"]
        async with aiomqtt.Client("127.0.0.1", 1883) as publisher:  # the engine goes on
            await publisher.publish(f"{prefix}/gas1/telemetry", json.dumps({"co": 4.0}))
            await wait_for(lambda: engine.table.values[co] == 4.0)
    failures = [r for r in caplog.records if "cannot store the device counters" in r.message]
    assert len(failures) == 1  # the stop's write failed too, not logged again


def test_upsert_counters(store_target: str) -> None:
    store = Store(store_target)
    try:
        records = store.records
        assert records.device_counters() == {}
        records.record_counters("dev1", {}, since=100.0, now=101.0)  # nothing to write
        records.record_counters("dev1", {"messages": 3, "malformed": 1}, since=100.0, now=160.0)
        records.record_counters("dev2", {"messages": 2**40}, since=100.0, now=160.0)
        records.record_counters("dev1", {"messages": 7, "offline": 2}, since=100.0, now=220.0)
        assert records.device_counters() == {
            "dev1": {"malformed": 1, "messages": 7, "offline": 2},
            "dev2": {"messages": 2**40},
        }
        # A restart counts from zero again: the new start time replaces the old one.
        records.record_counters("dev1", {"messages": 1}, since=300.0, now=301.0)
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT name, value, since, updated_at FROM device_counters "
                    "WHERE device_id = 'dev1' ORDER BY name"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("malformed", 1, 100.0, 160.0),
            ("messages", 1, 300.0, 301.0),
            ("offline", 2, 100.0, 220.0),
        ]
    finally:
        store.close()
