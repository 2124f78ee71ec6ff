"""Modbus acquisition benchmark: planner vs one request per point vs the raw ceiling.

Run with ``make bench-modbus`` (or ``python bench/modbus_bench.py --help``).

In one run, against the same server, with the same pymodbus client:

* **planner** — ``ModbusDriver.read`` of a 10,000-point map (mixed 16/32-bit
  types, contiguous): block requests, decoding, scaling and quality, as a poll does;
* **naive** — the same driver reading one point per request;
* **ceiling** — the driver's own client reading the map's registers in
  125-register blocks back to back, with no decoding at all.

The server is :mod:`plantguard_modbus.testserver` in its own process (on the
machine's other core), because pymodbus' server costs more CPU per request than
the client under test.  Ceiling and planner passes alternate (one full pass of
each, in turn) so drift in machine load hits both alike; each round reports the
two rates, and the medians over the rounds are the results.  Results go to
``bench/results/modbus.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from plantguard.model import Device, Point
from plantguard_modbus.driver import ModbusDriver
from plantguard_modbus.testing import make_driver

RESULTS = Path(__file__).parent / "results" / "modbus.json"
TYPES = ("float32", "uint16", "int32", "int16")  # 1.5 registers per point on average
WIDTH = {"float32": 2, "uint16": 1, "int32": 2, "int16": 1}


def build_device(points: int) -> tuple[Device, int]:
    """A device with ``points`` contiguous points of mixed types; returns it and its registers."""
    specs: list[dict[str, Any]] = []
    register = 0
    for i in range(points):
        kind = TYPES[i % len(TYPES)]
        specs.append({"id": f"p{i}", "address": {"register": register, "type": kind}})
        register += WIDTH[kind]
    device = Device.model_validate({"id": "bench", "driver": "modbus", "points": specs})
    return device, register


def start_server() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "plantguard_modbus.testserver", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"benchmark server did not start: {line!r}")
    return process, int(line)


async def paired_rates(
    driver: ModbusDriver, points: tuple[Point, ...], registers: int, seconds: float
) -> tuple[float, float]:
    """(planner, ceiling) points/s, alternating one pass of each so both see the same load."""
    client = driver._client
    starts = [(first, min(125, registers - first)) for first in range(0, registers, 125)]
    planner_time = ceiling_time = 0.0
    passes = 0
    clock = time.perf_counter
    while planner_time + ceiling_time < seconds:
        t0 = clock()
        for first, count in starts:
            await client.read_holding_registers(first, count=count, device_id=1)
        t1 = clock()
        result = await driver.read(points)
        t2 = clock()
        ceiling_time += t1 - t0
        planner_time += t2 - t1
        passes += 1
    assert (result.quality == 0).all()
    return passes * len(points) / planner_time, passes * len(points) / ceiling_time


async def naive_rate(driver: ModbusDriver, points: tuple[Point, ...], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for point in points[done % len(points) : done % len(points) + 200]:
            await driver.read((point,))
            done += 1
    return done / elapsed


async def run(args: argparse.Namespace, port: int) -> dict[str, Any]:
    device, registers = build_device(args.points)
    driver = make_driver(device, host="127.0.0.1", port=port, timeout=5, retries=0)
    await driver.connect()
    points = device.points
    try:
        await paired_rates(driver, points, registers, 0.3)  # warm up: plan, connection
        ceilings, planners = [], []
        for _ in range(args.rounds):
            planner, ceiling = await paired_rates(driver, points, registers, args.seconds)
            planners.append(planner)
            ceilings.append(ceiling)
        naive = await naive_rate(driver, points, args.seconds)
        blocks = len(driver._plans[tuple(p.id for p in points)].blocks)
    finally:
        await driver.close()
    planner, ceiling = statistics.median(planners), statistics.median(ceilings)
    return {
        "planner_points_per_s": round(planner),
        "naive_points_per_s": round(naive),
        "ceiling_points_per_s": round(ceiling),
        "planner_vs_naive": round(planner / naive, 1),
        "planner_vs_ceiling": round(planner / ceiling, 3),
        "targets_met": {
            "planner_at_least_90_percent_of_ceiling": planner >= 0.9 * ceiling,
            "planner_at_least_50x_naive": planner >= 50 * naive,
        },
        "rounds": {
            "planner": [round(r) for r in planners],
            "ceiling": [round(r) for r in ceilings],
        },
        "map": {
            "points": len(points),
            "registers": registers,
            "types": list(TYPES),
            "planner_requests_per_poll": blocks,
            "ceiling_requests_per_poll": math.ceil(registers / 125),
        },
        "server": "plantguard_modbus.testserver (own process), Modbus TCP on 127.0.0.1",
        "client": "pymodbus AsyncModbusTcpClient (one request in flight)",
        "seconds_per_measurement": args.seconds,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.machine(),
            "python": platform.python_version(),
        },
        "versions": {
            name: metadata.version(name) for name in ("plantguard", "pymodbus", "numpy", "pydantic")
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating passes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    process, port = start_server()
    try:
        results = asyncio.run(run(args, port))
    finally:
        process.terminate()
        process.wait(timeout=5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        f"planner {results['planner_points_per_s']:,} points/s · "
        f"naive {results['naive_points_per_s']:,} points/s · "
        f"ceiling {results['ceiling_points_per_s']:,} points/s · "
        f"planner/naive {results['planner_vs_naive']}× · "
        f"planner/ceiling {results['planner_vs_ceiling']:.1%}  → {args.out}"
    )


if __name__ == "__main__":
    main()
