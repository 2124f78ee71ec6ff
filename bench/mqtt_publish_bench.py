"""Sparkplug B publishing benchmark: DDATA/s at 10,000 changing points, against the raw client.

Run with ``make bench-mqtt`` (or ``python bench/mqtt_publish_bench.py --help``).

In one run, against one private Mosquitto (started here on 127.0.0.1, a free port),
100 devices × 100 points (10,000 points, every one changing every round):

* **raw** — an aiomqtt client publishing ready-made DDATA payloads of the same size
  (QoS 0), one per device per round: the client library's publish rate, no encoding;
* **raw + encode** — the same client encoding each device's 100 changed values with
  pysparkplug's ``DData`` (by alias) before publishing: the library's own floor for
  the same work;
* **plantguard** — the edge node of :mod:`plantguard_mqtt_publish` fed through the
  engine's value-listener path: each round writes 10,000 new values into the value
  table and tells the node's listener, and the node's publish loop applies the
  deadband, maps quality and encodes and publishes one DDATA per device.

Passes alternate (raw, raw + encode, plantguard), three rounds; min / median / max
of each; the result is the ratio of medians.  Results go to
``bench/results/mqtt_publish.json``.  The engine here is a stand-in holding the real
site model and value table (the real engine's polling would dominate the time);
everything from the listener on is the shipped code.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
from bench_broker import start_broker
from pysparkplug import DataType, DData, Metric

from plantguard.plugin import Quality, Site, ValuesListener, ValueTable
from plantguard_mqtt_publish import payloads
from plantguard_mqtt_publish.catalogue import build_catalogue
from plantguard_mqtt_publish.edge_node import EdgeNode
from plantguard_mqtt_publish.options import BrokerOptions, MqttPublishOptions, SparkplugOptions

RESULTS = Path(__file__).parent / "results" / "mqtt_publish.json"
TARGET = 0.8


def make_site(devices: int, points: int) -> Site:
    return Site.model_validate(
        {
            "id": "bench",
            "areas": [
                {
                    "id": "a",
                    "devices": [
                        {
                            "id": f"d{d:03d}",
                            "driver": "bench",
                            "points": [
                                {"id": f"p{p:03d}", "unit": "bar", "range": [0, 10]}
                                for p in range(points)
                            ],
                        }
                        for d in range(devices)
                    ],
                }
            ],
        }
    )


class _Alarms:
    """No alarms: the benchmark is about point values."""

    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}
        self.status: dict[str, Any] = {}


class BenchEngine:
    """The parts of the engine a service sees, around the real site model and table."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.table = ValueTable(site.points)
        self.alarms = _Alarms()
        self.store = None
        self.listeners: list[ValuesListener] = []

    def on_values(self, listener: ValuesListener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    async def write_point(self, point_id: str, value: float, principal: object) -> None:
        raise NotImplementedError

    async def update(self, rng: np.random.Generator) -> None:
        n = len(self.table)
        idx = np.arange(n, dtype=np.intp)
        values = rng.uniform(0.0, 10.0, n)
        quality = np.full(n, Quality.GOOD, dtype=np.uint8)
        changed = self.table.update(idx, values, quality, time.time())
        for listener in self.listeners:
            await listener(changed)


async def run_plantguard(port: int, site: Site, rounds: int, seed: int) -> float:
    """Metrics/s, messages/s of the edge node over ``rounds`` rounds of every point changing."""
    engine = BenchEngine(site)
    rng = np.random.default_rng(seed)
    options = MqttPublishOptions(
        broker=BrokerOptions(port=port),
        sparkplug=SparkplugOptions(group_id="bench", edge_node_id=f"pg{seed}"),
    )
    assert options.sparkplug is not None
    node = EdgeNode(options, options.sparkplug)
    await node.start(engine)  # type: ignore[arg-type]
    devices = len(site.devices)
    try:
        while node.published < 1 + devices:  # births  # noqa: ASYNC110 - polled counter
            await asyncio.sleep(0.01)
        await engine.update(rng)  # first values (quality changes) out of the way
        target = node.published + devices
        while node.published < target:  # noqa: ASYNC110 - yield until the loop published
            await asyncio.sleep(0)
        start = time.perf_counter()
        for _ in range(rounds):
            target = node.published + devices
            await engine.update(rng)
            while node.published < target:  # noqa: ASYNC110 - yield until the loop published
                await asyncio.sleep(0)
        return rounds * devices / (time.perf_counter() - start)
    finally:
        await node.stop()


def ddata(values: npt.NDArray[np.float64], seq: int) -> bytes:
    now = int(time.time() * 1000)
    metrics = tuple(
        Metric(now, None, DataType.DOUBLE, value=float(v), alias=3 + i)
        for i, v in enumerate(values.tolist())
    )
    return DData(timestamp=now, seq=seq, metrics=metrics).encode()


async def run_raw(port: int, site: Site, rounds: int, seed: int, *, encode: bool) -> float:
    """Messages/s of the raw client (``encode``: encoding each DDATA with pysparkplug first)."""
    rng = np.random.default_rng(seed)
    devices = site.devices
    per_device = len(devices[0].points)
    ready = [ddata(rng.uniform(0.0, 10.0, per_device), i) for i in range(len(devices))]
    topics = [f"spBv1.0/bench/DDATA/raw{seed}/{d.id}" for d in devices]
    async with aiomqtt.Client("127.0.0.1", port, client_id=f"raw{seed}-{encode}") as client:
        start = time.perf_counter()
        seq = 0
        for _ in range(rounds):
            values = rng.uniform(0.0, 10.0, (len(devices), per_device))
            for k, topic in enumerate(topics):
                payload = ddata(values[k], seq) if encode else ready[k]
                seq = (seq + 1) % 256
                await client.publish(topic, payload, qos=0)
        return rounds * len(devices) / (time.perf_counter() - start)


def sizes_and_encoding(site: Site) -> dict[str, float]:
    """Bytes on the wire per metric (DDATA) and per point (DBIRTH), and the time the edge
    node's encoder takes for one 100-metric DDATA: what the paper estimate of
    docs/scale-out.md multiplies out."""
    engine = BenchEngine(site)
    catalogue = build_catalogue(site, engine.table.index, [])
    device = catalogue.devices[0]
    n = device.index.size
    rng = np.random.default_rng(0)
    values, quality = rng.uniform(0.0, 10.0, n), np.zeros(n, np.uint8)
    stamps = np.full(n, int(time.time() * 1000), np.int64)
    positions = np.arange(n, dtype=np.intp)

    def encode() -> bytes:
        return payloads.device_data(
            device, positions, values, quality, stamps, seq=1, timestamp_ms=int(stamps[0])
        )

    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(500):
            encode()
        runs.append((time.perf_counter() - start) / 500 * 1e6)
    birth = payloads.device_birth(device, values, quality, {}, seq=1, timestamp_ms=1)
    return {
        "ddata_bytes_per_metric": round(len(encode()) / n, 1),
        "dbirth_bytes_per_point": round(len(birth) / n, 1),
        "encode_us_per_ddata_median": round(statistics.median(runs), 1),
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    site = make_site(args.devices, args.points)
    results: dict[str, list[float]] = {"raw": [], "raw_encode": [], "plantguard": []}
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            for r in range(args.repeats):
                results["raw"].append(await run_raw(port, site, args.rounds, r, encode=False))
                results["raw_encode"].append(await run_raw(port, site, args.rounds, r, encode=True))
                results["plantguard"].append(await run_plantguard(port, site, args.rounds, r))
                print(
                    f"repeat {r + 1}: raw {results['raw'][-1]:.0f}, raw+encode "
                    f"{results['raw_encode'][-1]:.0f}, plantguard {results['plantguard'][-1]:.0f}"
                    " DDATA/s"
                )
        finally:
            broker.terminate()
            broker.wait(10)
    medians = {k: statistics.median(v) for k, v in results.items()}
    points = args.devices * args.points
    return {
        "ddata_per_s": {k: _summary(v) for k, v in results.items()},
        "points_per_s_median": {k: round(v * args.points) for k, v in medians.items()},
        "plantguard_vs_raw": round(medians["plantguard"] / medians["raw"], 3),
        "plantguard_vs_raw_per_repeat": [
            round(p / r, 3) for p, r in zip(results["plantguard"], results["raw"], strict=True)
        ],
        "plantguard_vs_raw_encode": round(medians["plantguard"] / medians["raw_encode"], 3),
        "targets_met": {
            "plantguard_at_least_80_percent_of_raw": medians["plantguard"] / medians["raw"]
            >= TARGET,
            "plantguard_at_least_80_percent_of_raw_encode": medians["plantguard"]
            / medians["raw_encode"]
            >= TARGET,
        },
        "wire": sizes_and_encoding(site),
        "setup": {
            "points": points,
            "devices": args.devices,
            "points_per_ddata": args.points,
            "rounds_per_measurement": args.rounds,
            "repeats": args.repeats,
            "qos": 0,
            "broker": "Mosquitto (own process, 127.0.0.1), no subscriber",
        },
        "machine": {
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            name: metadata.version(name)
            for name in ("plantguard", "aiomqtt", "paho-mqtt", "pysparkplug", "protobuf", "numpy")
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--points", type=int, default=100, help="points per device")
    parser.add_argument("--rounds", type=int, default=50, help="rounds per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("ddata_per_s", "plantguard_vs_raw")}, indent=1))


if __name__ == "__main__":
    main()
