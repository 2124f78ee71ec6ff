"""Where one gateway's limits are: start-up, scan and publish costs by site size.

For sites of N points (100 devices of N/100 points, a limit alarm on every tenth
point), measures on this machine, in one process:

* parsing and validating the site file (YAML, core schema, driver and rule schemas);
* building the engine (rules, alarm manager, store registration);
* one rule scan over the whole table;
* building the OPC UA address space (points and alarm conditions);
* publishing a full table of new values to OPC UA (no client subscribed).

Writes ``bench/results/scale.json``.  Timings vary with the machine's load: run
on a quiet machine, and read the figures as orders of magnitude.

    python bench/scale_bench.py [--sizes 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from plantguard.config import parse_site
from plantguard.engine import Engine
from plantguard.host import default_host
from plantguard.store import Store

RESULTS = Path(__file__).with_name("results") / "scale.json"


def site_text(points: int, devices: int = 100) -> str:
    per_device = points // devices
    site: dict[str, Any] = {
        "id": "scale",
        "services": {"opcua": {"port": 0, "security": ["none"], "anonymous": True}},
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": f"d{i}",
                        "driver": "modbus",
                        "connection": {"host": "127.0.0.1", "port": 1, "unit": 1},
                        "points": [
                            {
                                "id": f"p{j}",
                                "unit": "bar",
                                "range": [0, 100],
                                "address": {"register": 2 * j},
                                **(
                                    {"rules": {"limit": {"h": 80, "hh": 90}}} if j % 10 == 0 else {}
                                ),
                            }
                            for j in range(per_device)
                        ],
                    }
                    for i in range(devices)
                ],
            }
        ],
    }
    return yaml.safe_dump(site)


async def measure(points: int, workdir: Path) -> dict[str, float]:
    host = default_host()
    text = site_text(points)
    t0 = time.perf_counter()
    loaded = parse_site(text, "scale", host)
    t1 = time.perf_counter()
    store = Store(str(workdir / f"scale-{points}.db"))
    t2 = time.perf_counter()
    engine = Engine(loaded, host, store)
    t3 = time.perf_counter()
    table = engine.table
    n = len(table)
    table.update(
        np.arange(n),
        np.random.default_rng(1).uniform(0, 100, n),
        np.zeros(n, np.uint8),
        time.time(),
    )
    await engine.scan_once()
    scans = []
    for _ in range(5):
        table.update(
            np.arange(n),
            np.random.default_rng(2).uniform(0, 100, n),
            np.zeros(n, np.uint8),
            time.time(),
        )
        s = time.perf_counter()
        await engine.scan_once()
        scans.append(time.perf_counter() - s)
    service = engine.services["opcua"]
    s = time.perf_counter()
    await service.start(engine)
    opcua_start = time.perf_counter() - s
    listener = engine._listeners[0]  # the OPC UA publisher
    values = np.random.default_rng(3).uniform(0, 100, n)
    table.update(np.arange(n), values, np.zeros(n, np.uint8), time.time())
    s = time.perf_counter()
    await listener(np.arange(n))
    publish = time.perf_counter() - s
    await service.stop()
    store.close()
    return {
        "points": n,
        "alarms": len(engine.alarms.definitions),
        "parse_validate_s": round(t1 - t0, 3),
        "store_open_s": round(t2 - t1, 3),
        "engine_build_s": round(t3 - t2, 3),
        "scan_ms_median": round(1000 * float(np.median(scans)), 3),
        "scan_ns_per_point": round(1e9 * float(np.median(scans)) / n, 1),
        "opcua_start_s": round(opcua_start, 2),
        "opcua_publish_values_per_s": round(n / publish),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            row = asyncio.run(measure(size, Path(tmp)))
            rows.append(row)
            print(json.dumps(row))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "rows": rows,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
