"""Alarm latency of the whole gateway: a Modbus write → the OPC UA alarm event.

What is measured is what an operator sees: a real Modbus TCP server
(``python -m plantguard_modbus.testserver``), the real ``plantguard run`` process
polling it every :data:`POLL_INTERVAL` s, and here a real asyncua client
subscribed to the events of the Server object (i=2253) beside a Modbus client.
Each activation writes a float32 above a point's HH limit (function 16) and
times the alarm's event; the value is then written back to 0 and the return to
normal awaited, and a random pause de-phases the next write from the poll cycle,
so the writes fall uniformly over it.  The floor is the poll interval itself: a
value written just after a poll cannot be seen before the next one.

``measure(repeats)`` returns the rows of ``bench/hotpaths_bench.py``: one gateway
run per repeat (``--activations`` writes each), p50 and p99 of each run.
Everything binds to 127.0.0.1; both processes are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from asyncua.client.client import Client
from opcua_bench import (
    AlarmEvents,
    ModbusWriter,
    alarm_event_filter,
    modbus_clear,
    start_modbus_server,
    stop_process,
)

from plantguard.testing import free_tcp_port

__all__ = ["POLL_INTERVAL", "measure"]

Json = dict[str, Any]

HOST = "127.0.0.1"
POLL_INTERVAL = 0.5
#: One point per activation of a run: a point raised and cleared again and again would
#: be reported as chattering (≥ 3 times a minute), which is not what is measured here.
POINTS = 40
#: The OPC UA subscription's publishing interval (ms) the client asks for.
PUBLISH_MS = 100
ACTIVATIONS = 40
PYTHON = sys.executable


def site_text(modbus_port: int, opcua_port: int, db: Path) -> str:
    """One Modbus device of :data:`POINTS` float32 points with H/HH limits, polled
    every :data:`POLL_INTERVAL` s; OPC UA without security for the bench client."""
    site: Json = {
        "id": "latency",
        "store": {"url": str(db)},
        "poll_groups": {"default": {"interval": POLL_INTERVAL}},
        "services": {"opcua": {"port": opcua_port, "security": ["none"], "anonymous": True}},
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": "d0",
                        "driver": "modbus",
                        "connection": {"host": HOST, "port": modbus_port, "unit": 1},
                        "points": [
                            {
                                "id": f"p{j}",
                                "unit": "bar",
                                "range": [0, 100],
                                "address": {"register": 2 * j},
                                "rules": {"limit": {"h": 80, "hh": 90}},
                            }
                            for j in range(POINTS)
                        ],
                    }
                ],
            }
        ],
    }
    return str(yaml.safe_dump(site, sort_keys=False))


async def _connect(endpoint: str, gateway: subprocess.Popen[str], timeout: float) -> Client:
    """A client connected to the gateway once it serves (it is retried until then)."""
    deadline = time.monotonic() + timeout
    while True:
        if gateway.poll() is not None:
            raise RuntimeError(f"plantguard run exited with status {gateway.returncode}")
        client = Client(endpoint, timeout=4.0)
        try:
            await client.connect()
        except (OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not serve {endpoint}: {exc}") from exc
            await asyncio.sleep(0.5)
        else:
            return client


async def _activations(
    endpoint: str, modbus_port: int, gateway: subprocess.Popen[str], count: int, seed: int
) -> tuple[list[float], int]:
    """Raise latencies (s) of ``count`` activations, and how many raised no event."""
    client = await _connect(endpoint, gateway, 120.0)
    try:
        sub = await client.create_subscription(PUBLISH_MS, None, queue_maxsize=0)
        await sub.subscribe_events(client.nodes.server, evfilter=alarm_event_filter())
        events = AlarmEvents()
        consumer = asyncio.create_task(events.consume(sub))
        modbus = await ModbusWriter.open(modbus_port)
        await asyncio.sleep(2 * POLL_INTERVAL + 1.0)  # polled, the start-up events are in
        events.clear()
        rng = random.Random(seed)
        raised: list[float] = []
        missed = 0
        timeout = 10 * POLL_INTERVAL + 5.0
        for k in range(count):
            point = k % POINTS
            written = await modbus.write(2 * point, 95.0)
            got = await events.wait(f"d0.p{point}", True, timeout)
            if got is None:
                missed += 1
            else:
                raised.append(got - written)
            await modbus.write(2 * point, 0.0)
            await events.wait(f"d0.p{point}", False, timeout)
            await asyncio.sleep(rng.uniform(0.0, POLL_INTERVAL))  # de-phase from the poll
        await modbus.close()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        return raised, missed
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), timeout=10)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0…1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_once(activations: int, seed: int) -> Json:
    """One gateway run: ``activations`` writes; p50/p99/max raise latency in ms."""
    with tempfile.TemporaryDirectory(prefix="hotpaths-latency-") as tmp:
        workdir = Path(tmp)
        modbus, modbus_port = start_modbus_server(workdir)
        gateway: subprocess.Popen[str] | None = None
        try:
            modbus_clear(modbus_port, 2 * POINTS)
            opcua_port = free_tcp_port()
            site = workdir / "site.yaml"
            site.write_text(site_text(modbus_port, opcua_port, workdir / "gw.db"), "utf-8")
            gateway = subprocess.Popen(
                [PYTHON, "-m", "plantguard", "--log-level", "warning", "run", str(site), "--quiet"],
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            endpoint = f"opc.tcp://{HOST}:{opcua_port}/plantguard"
            raised, missed = asyncio.run(
                _activations(endpoint, modbus_port, gateway, activations, seed)
            )
        finally:
            if gateway is not None:
                stop_process(gateway)
            stop_process(modbus)
    ms = [1000 * x for x in raised]
    return {
        "activations": activations,
        "missed": missed,
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms, default=float("nan")),
    }


def _spread(values: list[float]) -> Json:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def measure(repeats: int = 3, activations: int = ACTIVATIONS) -> list[Json]:
    """The two latency rows (p50, p99) of ``repeats`` gateway runs, against the poll interval."""
    runs = [run_once(activations, seed=11 + rep) for rep in range(repeats)]
    for rep, run in enumerate(runs, 1):
        print(
            f"  alarm latency run {rep}: p50 {run['p50_ms']:.0f} ms, p99 {run['p99_ms']:.0f} ms, "
            f"max {run['max_ms']:.0f} ms, missed {run['missed']}/{run['activations']}",
            file=sys.stderr,
            flush=True,
        )
    poll_ms = 1000 * POLL_INTERVAL
    floor = {"min": poll_ms, "median": poll_ms, "max": poll_ms}
    rows = []
    for key, label, goal in (
        ("p50_ms", "p50", "—"),
        ("p99_ms", "p99", f"p99 ≤ poll + 100 ms ({poll_ms + 100:.0f} ms)"),
    ):
        values = [float(run[key]) for run in runs]
        spread = _spread(values)
        rows.append(
            {
                "path": f"alarm latency {label}, Modbus write → OPC UA event "
                f"(poll {poll_ms:.0f} ms), ms",
                "unit": "ms",
                "plantguard": spread,
                "floor": floor,
                "ratio": {k: round(v / poll_ms, 3) for k, v in spread.items()},
                "goal": goal,
                "missed": sum(int(run["missed"]) for run in runs),
                "activations": sum(int(run["activations"]) for run in runs),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--activations", type=int, default=ACTIVATIONS)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.repeats, args.activations), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
