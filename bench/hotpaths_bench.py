"""The hot paths of issue 17, each against the plain floor under it, in one run.

``make bench-hotpaths`` runs this.  Every row of the issue's table is measured
here, side by side: each measure module times PlantGuard and its floor
interleaved, ``--repeats`` times (three by default), and reports min / median /
max of both and of their ratio.

==========================  ==============================================================
module                      rows
==========================  ==============================================================
``hotpaths_rules``          the full built-in rule set and the limit rule, ns/point/scan
``hotpaths_history``        history writes (SQLite, PostgreSQL) and the trend read
``hotpaths_cli``            ``plantguard trend …`` whole command, ``plantguard --version``
``hotpaths_latency``        alarm latency, Modbus write → OPC UA event (p50, p99)
==========================  ==============================================================

Each module has ``measure(repeats) -> list[row]`` with a row being
``{"path", "unit", "plantguard": {"min", "median", "max"}, "floor": {...} | None,
"ratio": {...} | None, "goal"}`` (extra keys are kept).  A module that fails or is
missing is recorded as such in the results and makes the run exit with status 1,
after the others have run.  Results: ``bench/results/hotpaths.json`` and a
readable ``hotpaths.md`` beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
#: The measure modules, in the order of the issue's table.
MODULES = ("hotpaths_rules", "hotpaths_history", "hotpaths_cli", "hotpaths_latency")


def run_module(name: str, repeats: int) -> tuple[list[Json], str | None]:
    """The rows of one measure module, or the reason it gave none."""
    print(f"{name}: measuring ({repeats} repeats) …", flush=True)
    began = time.perf_counter()
    try:
        module = importlib.import_module(name)
        rows: list[Json] = list(module.measure(repeats))
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return [], f"module {name} not found"
    except Exception:
        traceback.print_exc()
        return [], traceback.format_exc(limit=3).strip().splitlines()[-1]
    for row in rows:
        row.setdefault("module", name)
    print(f"{name}: {len(rows)} rows in {time.perf_counter() - began:.0f} s", flush=True)
    return rows, None


def _figure(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _spread(spread: Json | None) -> str:
    if not spread:
        return "—"
    return " / ".join(_figure(spread.get(k)) for k in ("min", "median", "max"))


def markdown(result: Json) -> str:
    lines = [
        "# Hot paths against their floors (issue 17)",
        "",
        f"{result['generated']}, {result['machine']}; {result['repeats']} repeats, "
        "PlantGuard and floor interleaved; figures are min / median / max.",
        "",
        "| path | PlantGuard | floor, same run | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['path']} | {_spread(row.get('plantguard'))} | {_spread(row.get('floor'))} "
            f"| {_spread(row.get('ratio'))} | {row.get('goal', '')} |"
        )
    if result["failed"]:
        lines += ["", "Not measured:", ""]
        lines += [f"- `{name}`: {why}" for name, why in result["failed"].items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--only", nargs="+", choices=MODULES, help="measure these modules only (default: all)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "hotpaths.json")
    args = parser.parse_args(argv)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    rows: list[Json] = []
    failed: dict[str, str] = {}
    for name in args.only or MODULES:
        got, why = run_module(name, args.repeats)
        rows += got
        if why is not None:
            failed[name] = why
    result: Json = {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "repeats": args.repeats,
        "rows": rows,
        "failed": failed,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
    text = markdown(result)
    args.output.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
