"""Command start-up: ``plantguard trend …`` and ``plantguard --version``, whole processes.

What an engineer waits for is the whole command, interpreter start included, so
each side is a fresh process timed from spawn to exit:

* ``plantguard trend tank1.level --db DB --since … --until …`` printing a day of
  one-second samples (86,400 rows of one point), against a plain script doing the
  same read with ``sqlite3`` and printing the same lines;
* ``plantguard --version`` against ``python -c pass`` (the interpreter alone).

Sides alternate within each repeat (which goes first alternates too), after one
untimed warm-up run of each, so disk caches and byte-code are warm for both.
Byte-code is cached as on an installed system even where the environment says
``PYTHONDONTWRITEBYTECODE`` (it is kept in the run's temporary directory through
``PYTHONPYCACHEPREFIX``): otherwise every run would compile PlantGuard's sources.
``measure(repeats)`` returns the rows of ``bench/hotpaths_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plantguard.model import Point
from plantguard.store import Store

__all__ = ["measure"]

Json = dict[str, Any]

POINT = "tank1.level"
SAMPLES = 86_400
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SINCE = "2026-01-01T00:00:00+00:00"
UNTIL = "2026-01-02T00:00:00+00:00"

#: The floor of the trend command: the same read and the same lines, nothing else.
PLAIN_TREND = """\
import datetime as dt
import sqlite3
import sys

db, point, since, until = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
(key,) = con.execute("SELECT key FROM points WHERE point_id = ?", (point,)).fetchone()
rows = con.execute(
    "SELECT time, value, quality FROM history WHERE point_key = ? AND time >= ? AND time < ? "
    "ORDER BY time",
    (key, since, until),
).fetchall()
write = sys.stdout.write
for t, v, q in rows:
    write(f"{dt.datetime.fromtimestamp(t).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}  {v:12.4f}  q={q}\\n")
print(f"{len(rows)} samples of {point}", file=sys.stderr)
"""


def _plantguard() -> list[str]:
    """The installed ``plantguard`` script beside this interpreter (what users type)."""
    script = Path(sys.executable).with_name("plantguard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plantguard"]


def make_store(db: Path) -> None:
    """A store with :data:`SAMPLES` one-second samples of :data:`POINT` from :data:`T0`."""
    store = Store(str(db))
    try:
        keys = store.register_points([Point(id=POINT, device_id="tank1", unit="m")])
        t = T0 + np.arange(SAMPLES, dtype=np.float64)
        values = 5.0 + np.sin(np.arange(SAMPLES) / 600.0)
        store.write_history(
            np.full(SAMPLES, keys[POINT], dtype=np.int64), t, values, np.zeros(SAMPLES, np.uint8)
        )
    finally:
        store.close()


def _environment(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cwd / "pycache"), "PYTHONWARNINGS": "ignore"}


def timed(argv: Sequence[str], cwd: Path) -> float:
    """Seconds from spawn to exit of ``argv`` (stdout discarded); a failure raises."""
    env = _environment(cwd)
    began = time.perf_counter()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    took = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-500:]}")
    return took


def spread(values: Sequence[float], digits: int = 3) -> Json:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def side_by_side(
    plantguard: Sequence[str], floor: Sequence[str], cwd: Path, repeats: int
) -> tuple[list[float], list[float]]:
    """Both commands ``repeats`` times, alternating (and alternating which goes first)."""
    timed(plantguard, cwd)  # warm-up: byte-code, page cache
    timed(floor, cwd)
    pg: list[float] = []
    base: list[float] = []
    for rep in range(repeats):
        order = [(plantguard, pg), (floor, base)]
        for argv, out in order if rep % 2 == 0 else reversed(order):
            out.append(timed(argv, cwd))
    return pg, base


def row(path: str, pg: list[float], floor: list[float], goal: str) -> Json:
    ratios = [p / f for p, f in zip(pg, floor, strict=True)]
    return {
        "path": path,
        "unit": "s",
        "plantguard": spread(pg),
        "floor": spread(floor),
        "ratio": spread(ratios, 2),
        "goal": goal,
    }


def measure(repeats: int = 3) -> list[Json]:
    """The trend-command and --version rows, each side ``repeats`` times, interleaved."""
    with tempfile.TemporaryDirectory(prefix="hotpaths-cli-") as tmp:
        cwd = Path(tmp)
        db = cwd / "plant.db"
        make_store(db)
        script = cwd / "plain_trend.py"
        script.write_text(PLAIN_TREND, encoding="utf-8")
        until = T0 + SAMPLES
        trend = [*_plantguard(), "trend", POINT, "--db", str(db), "--since", SINCE]
        trend += ["--until", UNTIL]
        plain = [sys.executable, str(script), str(db), POINT, str(T0), str(until)]
        trend_pg, trend_floor = side_by_side(trend, plain, cwd, repeats)
        version_pg, version_floor = side_by_side(
            [*_plantguard(), "--version"], [sys.executable, "-c", "pass"], cwd, repeats
        )
    return [
        row(
            f"`plantguard trend …` whole command ({SAMPLES:,} rows of one point), s",
            trend_pg,
            trend_floor,
            "≤ 1.5× the plain script",
        ),
        row("`plantguard --version`, s", version_pg, version_floor, "≤ 0.25 s"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.repeats), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
