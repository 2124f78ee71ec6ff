"""Prediction benchmark: warning lead time and false warnings of the forecast rule.

    python bench/prediction_bench.py

Two sources of slow drifts, both replayed through :class:`ForecastRule` over a
value table, one sample per second:

* **constructed signals** with known crossing times: linear drifts towards a
  limit of 90 at rates from 0.5 to 6 %/h of span with Gaussian noise, plus
  series that stay flat or drift away (they never cross and must not warn);
* **the simulator's** slowly warming pump bearing (``pump1.bearing_temp`` of
  :class:`plantguard_sim.plant.PlantModel`), against limits below its
  asymptote (it crosses) and above it (it never crosses: any warning is false).

Reported: the share of crossings warned in advance, the median warning lead
time (crossing time − first warning), and the false-warning rate (share of
never-crossing series that raised a warning).  Results go to
``bench/results/prediction.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from plantguard.model import Point
from plantguard.table import ValueTable
from plantguard_rules.forecast import ForecastConfig, ForecastRule
from plantguard_sim.plant import PlantModel

HORIZON = 900.0  # warn 15 min ahead
CONFIG = {"horizon": HORIZON, "window": 600.0, "samples": 30, "confidence": 0.9}


def replay(series: np.ndarray[Any, Any], limits: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """First warning time per series (inf if none); series is (n, T), 1 s apart."""
    n, steps = series.shape
    points = [Point(id=f"s.p{i}", device_id="s") for i in range(n)]
    table = ValueTable(points)
    rule = ForecastRule(
        table,
        [
            (p, ForecastConfig(limit=float(lim), **CONFIG))
            for p, lim in zip(points, limits, strict=True)
        ],
    )
    first = np.full(n, np.inf)
    idx = np.arange(n)
    quality = np.zeros(n, dtype=np.uint8)
    for t in range(steps):
        table.update(idx, series[:, t], quality, float(t))
        for f in rule.evaluate(table, float(t)):
            if f.active:
                i = int(f.alarm_id.split(".p")[1].split(".")[0])
                first[i] = min(first[i], t)
    return first


def summarise(
    first: np.ndarray[Any, Any], crossing: np.ndarray[Any, Any], steps: int
) -> dict[str, Any]:
    """``crossing``: true crossing time (may lie beyond the data, inf for never).

    A warning is *in advance* when it precedes the crossing; it is *false* when
    the true crossing is more than twice the horizon after it (or never comes).
    """
    crosses = crossing < steps
    warned = np.isfinite(first)
    in_advance = crosses & warned & (first < crossing)
    lead = crossing[in_advance] - first[in_advance]
    with np.errstate(invalid="ignore"):
        false = warned & ((crossing - first) > 2 * HORIZON)
    quiet = ~np.isfinite(crossing)
    return {
        "crossing_series": int(crosses.sum()),
        "warned_in_advance_pct": 100 * float(in_advance.sum() / max(crosses.sum(), 1)),
        "median_lead_s": float(np.median(lead)) if lead.size else None,
        "lead_p10_p90_s": [float(np.percentile(lead, 10)), float(np.percentile(lead, 90))]
        if lead.size
        else None,
        "series": int(first.size),
        "false_warning_pct": 100 * float(false.mean()),
        "never_crossing_series": int(quiet.sum()),
        "never_crossing_warned_pct": 100 * float(warned[quiet].mean()) if quiet.any() else None,
    }


def constructed(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    steps, n_drift, n_flat = 10800, 120, 80
    t = np.arange(steps, dtype=np.float64)
    rates = rng.uniform(15, 60, n_drift) / 3600  # units per second: 30 units in 30–120 min
    start = rng.uniform(1200, 3000, n_drift)
    base, limit = 60.0, 90.0
    drift = base + np.maximum(t[None, :] - start[:, None], 0) * rates[:, None]
    flat = np.full((n_flat, steps), base)
    flat[n_flat // 2 :] -= np.maximum(t[None, :] - 2000, 0) * 0.002  # drifting away
    series = np.vstack([drift, flat]) + rng.normal(0, 0.5, (n_drift + n_flat, steps))
    crossing = np.concatenate([start + (limit - base) / rates, np.full(n_flat, np.inf)])
    return summarise(replay(series, np.full(n_drift + n_flat, limit)), crossing, steps)


def simulator() -> dict[str, Any]:
    plant = PlantModel(seed=3, scenario="none")
    t = np.arange(0.0, 5400.0)
    temp = plant.series("pump1.bearing_temp", t)
    limits = np.array([60.0, 61.0, 62.0, 63.0, 65.0, 66.0])
    # The model's warm-up curve is 55 + 9 (1 − e^(−t/900)) (+ a 0.4 °C oscillation).
    asymptote = 64.0
    crossing = np.array(
        [900.0 * np.log(9.0 / (asymptote - lim)) if lim < asymptote else np.inf for lim in limits]
    )
    series = np.tile(temp, (limits.size, 1))
    return {**summarise(replay(series, limits), crossing, t.size), "limits": limits.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    results = {"config": CONFIG, "constructed": constructed(), "simulator": simulator()}
    for name in ("constructed", "simulator"):
        r = results[name]
        print(
            f"{name}: {r['warned_in_advance_pct']:.0f} % of {r['crossing_series']} crossings "
            f"warned in advance, median lead {r['median_lead_s']} s (horizon {HORIZON:g} s); "
            f"false warnings {r['false_warning_pct']:.1f} % of {r['series']} series; "
            f"{r['never_crossing_warned_pct']} % of {r['never_crossing_series']} never-crossing "
            "series warned"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prediction.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
