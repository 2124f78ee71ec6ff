"""Rule-scan rows of the hot-paths table: PlantGuard against the numpy floor.

    python bench/hotpaths_rules.py [--repeats 3]

:func:`measure` returns the rows that ``bench/hotpaths_bench.py`` puts into
``bench/results/hotpaths.json``:

* the full built-in rule set on 100,000 points (every point rule on every
  point, the security rules on a trickle of events; multivariate groups are not
  included — they are measured by ``bench/detect_bench.py``), in ns per point
  and scan;
* of which the forecast;
* the limit rule alone.

Each repeat is one run of :func:`rules_bench.run_once`, where every scan times
every rule and then, interleaved in the same scan, the plain numpy 4-limit check
(the floor), each right after a table update.  Figures are min/median/max over
the repeats; the ratio is taken per repeat (PlantGuard over the floor of the
same run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules_bench import run_once

POINTS = 100_000
SCANS = 40
WARMUP = 110

Spread = dict[str, float]


def _spread(xs: list[float]) -> Spread:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def _row(path: str, mine: list[float], floor: list[float] | None, goal: str) -> dict[str, object]:
    ratio = None if floor is None else [m / f for m, f in zip(mine, floor, strict=True)]
    return {
        "path": path,
        "unit": "ns/point/scan",
        "plantguard": _spread(mine),
        "floor": None if floor is None else _spread(floor),
        "ratio": None if ratio is None else _spread(ratio),
        "goal": goal,
    }


def measure(repeats: int = 3) -> list[dict[str, object]]:
    """The three rule rows, each over ``repeats`` interleaved runs."""
    runs = [run_once(POINTS, SCANS, WARMUP, groups=0) for _ in range(repeats)]
    floor = [r["floor_numpy_4_limit"] for r in runs]
    return [
        _row(
            "full built-in rule set, 100k points, ns/point/scan",
            [r["total_without_multivariate"] for r in runs],
            floor,
            "≤ 100 ns/point/scan for the full set",
        ),
        _row("of which forecast", [r["forecast"] for r in runs], None, "—"),
        _row("limit rule alone", [r["limit"] for r in runs], floor, "≤ 3× the numpy floor"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure(args.repeats)
    print(json.dumps(rows, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
