"""MQTT ingest benchmark: messages/s the MQTT driver takes in, against the raw client.

Run with ``make bench-mqtt`` (or ``python bench/mqtt_ingest_bench.py --help``).

In one run, against one private Mosquitto (started here on 127.0.0.1, a free port):

* **raw** — an aiomqtt client, as its documentation uses it (``async for message in
  client.messages()``), counting the messages it receives and nothing else;
* **driver** — :class:`plantguard_mqtt.driver.MqttDriver` taking the same messages
  into point values (decode, route, store), as in the gateway;
* for Sparkplug, **raw + decode** — the raw client decoding each payload with
  pysparkplug's ``DData.decode`` (what the driver used to do), and **raw +
  protobuf** — the raw client parsing each payload with the Sparkplug B schema's
  protobuf class and reading every metric's name and value: the floor of the work
  the driver's data path does (it reads a few more fields and stores the values).

Two payloads: one plain number per message (the common IoT sensor), and Sparkplug B
DDATA with 100 metrics (an edge node's report), 100 points mapped.

So that the receiver — not the publisher — sets the rate, the messages are queued
first: each receiver has a persistent session (``clean_session: false``), is away
while they are published (``queue_qos0_messages``, no queue limit), and the clock
runs from its connect to its last message.  Raw and driver passes alternate, three
rounds, each on a fresh queue; min / median / max of each are reported and the
median ratio is the result.  Results go to ``bench/results/mqtt_ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import aiomqtt
import pysparkplug as sp
from bench_broker import start_broker
from google.protobuf.internal import api_implementation  # type: ignore[import-untyped]
from pysparkplug._protobuf import Payload

from plantguard.model import Device
from plantguard_mqtt.driver import MqttDriver
from plantguard_mqtt.models import MqttAddress, MqttConnection

RESULTS = Path(__file__).parent / "results" / "mqtt_ingest.json"
TARGET = 0.8


def start_queueing_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A Mosquitto that queues QoS 0 messages for persistent sessions, without limit."""
    return start_broker(
        directory,
        ["max_queued_messages 0", "max_queued_bytes 0", "queue_qos0_messages true"],
    )


# --- payloads ------------------------------------------------------------------------


def _ms() -> int:
    return int(time.time() * 1000)


def plain_payloads(count: int) -> list[bytes]:
    return [f"{20 + (i % 1000) / 100:.2f}".encode() for i in range(count)]


def sparkplug_payloads(count: int, metrics: int) -> tuple[bytes, bytes, list[bytes]]:
    """NBIRTH, DBIRTH and ``count`` DDATA of ``metrics`` doubles, in sequence."""
    now = _ms()
    names = [f"Line/Sensor{i}" for i in range(metrics)]
    nbirth = sp.NBirth(now, 0, (sp.Metric(now, "bdSeq", sp.DataType.INT64, value=0),))
    birth_metrics = tuple(sp.Metric(now, n, sp.DataType.DOUBLE, value=0.0) for n in names)
    dbirth = sp.DBirth(now, 1, birth_metrics)
    data = []
    for k in range(count):
        values = tuple(
            sp.Metric(now + k, n, sp.DataType.DOUBLE, value=float(k + i))
            for i, n in enumerate(names)
        )
        data.append(sp.DData(now + k, (k + 2) % 256, values).encode())
    return nbirth.encode(), dbirth.encode(), data


# --- the two receivers ---------------------------------------------------------------


async def preload(
    port: int, client_id: str, topic_filter: str, messages: list[tuple[str, bytes]]
) -> None:
    """Make ``client_id``'s persistent session, leave, and queue ``messages`` for it."""
    async with aiomqtt.Client("127.0.0.1", port, client_id=client_id, clean_session=False) as c:
        await c.subscribe(topic_filter, qos=1)
    async with aiomqtt.Client("127.0.0.1", port, max_queued_messages=0) as publisher:
        for topic, payload in messages:
            await publisher.publish(topic, payload, qos=0)
        await publisher.publish("bench/flush", b"", qos=1)  # in order: all before are in


class SparkplugDecoder:
    """Decode as a host must: DDATA with the datatypes (and aliases) of the last DBIRTH."""

    def __init__(self) -> None:
        self.birth: sp.DBirth | None = None

    def __call__(self, topic: str, payload: bytes) -> object:
        kind = topic.split("/")[2]
        if kind == "DBIRTH":
            self.birth = sp.DBirth.decode(payload)
            return self.birth
        if kind == "DDATA":
            return sp.DData.decode(payload, birth=self.birth)
        return sp.NBirth.decode(payload)


def protobuf_floor(topic: str, payload: bytes) -> object:
    """Parse with the schema's class and read each metric's name and value; no more."""
    message = Payload.FromString(payload)
    return [(m.name, getattr(m, m.WhichOneof("value") or "is_null")) for m in message.metrics]


async def receive_raw(
    port: int, client_id: str, count: int, decode: Callable[[str, bytes], object] | None = None
) -> float:
    """Seconds for the raw client to receive ``count`` queued messages."""
    client = aiomqtt.Client("127.0.0.1", port, client_id=client_id, clean_session=False)
    received = 0
    async with client.messages() as messages:
        began = time.perf_counter()
        async with client:
            async for message in messages:
                if decode is not None:
                    assert isinstance(message.payload, bytes)
                    decode(message.topic.value, message.payload)
                received += 1
                if received == count:
                    return time.perf_counter() - began
    raise RuntimeError("the raw client stopped early")


def make_driver(
    port: int, client_id: str, points: list[dict[str, Any]], sparkplug: bool
) -> MqttDriver:
    device = Device.model_validate({"id": "bench", "driver": "mqtt", "points": points})
    connection = MqttConnection.model_validate(
        {
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": client_id,
                "clean_session": False,
            },
            **(
                {"sparkplug": {"group": "bench", "node": "edge", "device": "dev"}}
                if sparkplug
                else {}
            ),
        }
    )
    addresses = {p.id: MqttAddress.model_validate(p.address) for p in device.points}
    return MqttDriver(device, connection, addresses)


async def receive_driver(driver: MqttDriver, count: int) -> float:
    """Seconds for the driver to take ``count`` queued messages into its points."""
    began = time.perf_counter()
    await driver.connect()
    try:
        while driver.statistics["messages"] < count:  # noqa: ASYNC110 (counters, no event)
            await asyncio.sleep(0.002)
        took = time.perf_counter() - began
        if driver.statistics["malformed"]:
            raise RuntimeError(f"the driver refused messages: {driver.faults}")
        return took
    finally:
        await driver.close()


# --- the scenarios -------------------------------------------------------------------


async def run_plain(port: int, count: int, round_no: int) -> dict[str, float]:
    topic = "bench/plain/value"
    queued = [(topic, p) for p in plain_payloads(count)]
    raw_id, driver_id = f"raw-plain-{round_no}", f"driver-plain-{round_no}"
    await preload(port, raw_id, topic, queued)
    raw = await receive_raw(port, raw_id, count)
    await preload(port, driver_id, topic, queued)
    driver = make_driver(port, driver_id, [{"id": "v", "address": {"topic": topic}}], False)
    took = await receive_driver(driver, count)
    return {"raw": count / raw, "driver": count / took}


async def run_sparkplug(port: int, count: int, metrics: int, round_no: int) -> dict[str, float]:
    base = "spBv1.0/bench"
    nbirth, dbirth, data = sparkplug_payloads(count, metrics)
    queued = [(f"{base}/NBIRTH/edge", nbirth), (f"{base}/DBIRTH/edge/dev", dbirth)]
    queued += [(f"{base}/DDATA/edge/dev", d) for d in data]
    total = len(queued)
    ids = {k: f"{k}-sparkplug-{round_no}" for k in ("raw", "decode", "protobuf", "driver")}
    topic_filter = "spBv1.0/bench/+/edge/#"
    await preload(port, ids["raw"], topic_filter, queued)
    raw = await receive_raw(port, ids["raw"], total)
    await preload(port, ids["decode"], topic_filter, queued)
    decoded = await receive_raw(port, ids["decode"], total, decode=SparkplugDecoder())
    await preload(port, ids["protobuf"], topic_filter, queued)
    parsed = await receive_raw(port, ids["protobuf"], total, decode=protobuf_floor)
    await preload(port, ids["driver"], topic_filter, queued)
    points = [{"id": f"s{i}", "address": {"metric": f"Line/Sensor{i}"}} for i in range(metrics)]
    driver = make_driver(port, ids["driver"], points, True)
    # The node's births count as messages of the device too: NBIRTH is the node's.
    took = await receive_driver(driver, total - 1)
    return {
        "raw": total / raw,
        "raw_decode": total / decoded,
        "raw_protobuf": total / parsed,
        "driver": (total - 1) / took,
    }


def _summary(rates: list[float]) -> dict[str, float]:
    return {
        "min": round(min(rates)),
        "median": round(statistics.median(rates)),
        "max": round(max(rates)),
    }


def summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    keys = rounds[0].keys()
    out: dict[str, Any] = {k + "_msgs_per_s": _summary([r[k] for r in rounds]) for k in keys}
    ratios = [r["driver"] / r["raw"] for r in rounds]
    out["driver_vs_raw"] = {
        "min": round(min(ratios), 3),
        "median": round(statistics.median(ratios), 3),
        "max": round(max(ratios), 3),
    }
    if "raw_decode" in keys:
        decode_ratios = [r["driver"] / r["raw_decode"] for r in rounds]
        out["driver_vs_raw_decode"] = round(statistics.median(decode_ratios), 3)
    if "raw_protobuf" in keys:
        floor_ratios = [r["driver"] / r["raw_protobuf"] for r in rounds]
        out["driver_vs_raw_protobuf"] = round(statistics.median(floor_ratios), 3)
    out["target_met"] = out["driver_vs_raw"]["median"] >= TARGET
    out["rounds"] = rounds
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="plantguard-mqtt-bench-"))
    process, port = start_queueing_broker(directory)
    try:
        plain: list[dict[str, float]] = []
        spark: list[dict[str, float]] = []
        for round_no in range(args.rounds):
            plain.append(await run_plain(port, args.messages, round_no))
            spark.append(await run_sparkplug(port, args.sparkplug_messages, args.metrics, round_no))
            print(
                f"round {round_no + 1}: plain {plain[-1]}, sparkplug {spark[-1]}", file=sys.stderr
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "plain_value": {"messages": args.messages, **summarise(plain)},
        "sparkplug_ddata": {
            "messages": args.sparkplug_messages,
            "metrics_per_message": args.metrics,
            **summarise(spark),
        },
        "target": f"driver >= {TARGET:.0%} of the raw client's receive rate (median of rounds)",
        "broker": "private Mosquitto on 127.0.0.1 (queue_qos0_messages, no queue limit)",
        "client": f"aiomqtt {metadata.version('aiomqtt')} over paho-mqtt {metadata.version('paho-mqtt')}",
        "sparkplug_library": f"pysparkplug {metadata.version('pysparkplug')}",
        "protobuf": f"protobuf {metadata.version('protobuf')} ({api_implementation.Type()})",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=30_000, help="plain messages per pass")
    parser.add_argument(
        "--sparkplug-messages", type=int, default=2_000, help="Sparkplug DDATA per pass"
    )
    parser.add_argument("--metrics", type=int, default=100, help="metrics per DDATA")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k in ("plain_value", "sparkplug_ddata")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
