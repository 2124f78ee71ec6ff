"""Scan cost of the full built-in rule set on 100,000 points, in ns per point per scan.

    python bench/rules_bench.py [--points 100000] [--scans 40] [--repeats 3]

Every point carries every per-point rule (limit with deadband and delays, rate,
stuck, stale, range, EWMA, CUSUM, forecast); the points also form multivariate
groups of 10 (a trained dPCA model each, on ``--groups`` of them) and the five
security rules run on a trickle of events.  Each scan writes a new random-walk
sample into every slot (the worst case: every statistical rule has a new sample
to count), then evaluates all rules as the engine does.  Reported per rule and
in total: the mean over measured scans (forecast refits included, amortised)
and the spread over repeats.  The forecast buffers a sample every 10 s and updates
every point's running least-squares sums then (4 such scans in the 40 measured).

Side by side in the same scans, interleaved: the plain numpy floor under the
limit rule — four comparisons of the value array against four limit arrays
giving a level per point — timed right after a table update, as the rules are.
``total`` is every rule; ``total_without_multivariate`` the point and security
rules (multivariate groups are sized by ``--groups``; ``--groups 0`` leaves them
out).  Results go to ``bench/results/rules.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from plantguard.events import EventBus, SecurityEvent
from plantguard.model import Point, Site
from plantguard.rules import Rule, RuleContext
from plantguard.table import ValueTable
from plantguard_rules.drift import CusumConfig, CusumRule, EwmaConfig, EwmaRule
from plantguard_rules.forecast import ForecastConfig, ForecastRule
from plantguard_rules.limits import LimitConfig, LimitRule
from plantguard_rules.multivariate import (
    MultivariateConfig,
    MultivariateRuleType,
)
from plantguard_rules.mvmodels import RECOMMENDED, fit_model
from plantguard_rules.rate import RateConfig, RateRule
from plantguard_rules.security import (
    DeviceIdentityConfig,
    FailedLoginsConfig,
    UnexpectedWriteConfig,
    UntrustedCertificateConfig,
    security_rule_types,
)
from plantguard_rules.sensor_range import RangeConfig, RangeRule
from plantguard_rules.stale import StaleConfig, StaleRule
from plantguard_rules.stuck import StuckConfig, StuckRule


def build(n: int, groups: int, workdir: Path) -> tuple[ValueTable, dict[str, Rule], EventBus]:
    points = [
        Point(id=f"d{i // 100}.p{i}", device_id=f"d{i // 100}", range=(0.0, 100.0))
        for i in range(n)
    ]
    table = ValueTable(points)
    rules: dict[str, Rule] = {
        "limit": LimitRule(
            table,
            [
                (p, LimitConfig(hh=95, h=90, l=10, ll=5, deadband=1, on_delay=2, off_delay=2))
                for p in points
            ],
        ),
        "rate": RateRule(table, [(p, RateConfig(rise=120, fall=120, window=5)) for p in points]),
        "stuck": StuckRule(table, [(p, StuckConfig(duration=600, tolerance=1e-6)) for p in points]),
        "stale": StaleRule(table, [(p, StaleConfig(max_age=30)) for p in points]),
        "range": RangeRule(table, [(p, RangeConfig(margin=0.02)) for p in points]),
        "ewma": EwmaRule(table, [(p, EwmaConfig(target=50, sigma=5)) for p in points]),
        "cusum": CusumRule(table, [(p, CusumConfig(target=50, sigma=5)) for p in points]),
        "forecast": ForecastRule(
            table, [(p, ForecastConfig(limit=90, window=300, samples=30)) for p in points]
        ),
    }
    rng = np.random.default_rng(0)
    site = Site.model_validate(
        {
            "id": "bench",
            "areas": [{"id": "a", "devices": [{"id": f"d{j}", "driver": "x"} for j in range(5)]}],
        }
    )
    if groups:
        train = rng.normal(50, 5, (400, 10))
        model = fit_model(train, [f"v{j}" for j in range(10)], RECOMMENDED)
        configs = []
        for g in range(groups):
            members = points[g * 10 : g * 10 + 10]
            model.variables = [p.id for p in members]
            (workdir / "models").mkdir(exist_ok=True)
            (workdir / "models" / f"multivariate-g{g}.json").write_text(model.dumps())
            configs += [(p, MultivariateConfig(group=f"g{g}")) for p in members]
        rules["multivariate"] = MultivariateRuleType().create(
            site, table, configs, RuleContext(base_dir=workdir)
        )
    bus = EventBus()
    security = {
        "failed_logins": FailedLoginsConfig(),
        "untrusted_certificate": UntrustedCertificateConfig(),
        "unexpected_write": UnexpectedWriteConfig(),
        "device_identity": DeviceIdentityConfig(),
    }
    types = security_rule_types()
    for name, cfg in security.items():
        rules[name] = types[name].create(site, table, [], RuleContext(site_config=cfg, events=bus))
    return table, rules, bus


def numpy_floor(
    values: np.ndarray[Any, np.dtype[np.float64]],
    limits: tuple[np.ndarray[Any, np.dtype[np.float64]], ...],
) -> np.ndarray[Any, np.dtype[np.int8]]:
    """The plain numpy 4-limit check: level per point from four comparisons."""
    hh, h, lo, ll = limits
    level: np.ndarray[Any, np.dtype[np.int8]] = (
        (values >= h).view(np.int8)
        + (values >= hh).view(np.int8)
        - (values <= lo).view(np.int8)
        - (values <= ll).view(np.int8)
    )
    return level


def run_once(n: int, scans: int, warmup: int, groups: int) -> dict[str, float]:
    """One run: ns per point per scan of every rule, their totals and the floor."""
    with tempfile.TemporaryDirectory() as tmp:
        table, rules, bus = build(n, groups, Path(tmp))
    rng = np.random.default_rng(1)
    idx = np.arange(n)
    values = rng.uniform(30, 70, n)
    quality = np.zeros(n, dtype=np.uint8)
    limits = tuple(np.full(n, x) for x in (95.0, 90.0, 10.0, 5.0))
    spent = dict.fromkeys(rules, 0.0)
    floor = 0.0
    for s in range(warmup + scans):
        now = 1000.0 + s
        values += rng.normal(0, 0.5, n)
        np.clip(values, 0, 100, out=values)
        table.update(idx, values, quality, now)
        bus.publish(SecurityEvent("failed_login", source="10.0.0.1", time=now))
        for name, rule in rules.items():
            t0 = time.perf_counter_ns()
            rule.evaluate(table, now)
            if s >= warmup:
                spent[name] += time.perf_counter_ns() - t0
        # The floor, interleaved: after a table update too (same samples again), so
        # that it meets the value array as the first rule does.
        table.update(idx, values, quality, now)
        t0 = time.perf_counter_ns()
        numpy_floor(table.values, limits)
        if s >= warmup:
            floor += time.perf_counter_ns() - t0
    per_point = {name: ns / scans / n for name, ns in spent.items()}
    per_point["total"] = sum(per_point.values())
    per_point["total_without_multivariate"] = sum(
        v for k, v in per_point.items() if k not in ("total", "multivariate")
    )
    per_point["floor_numpy_4_limit"] = floor / scans / n
    return per_point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument(
        "--warmup",
        type=int,
        default=110,
        help="scans before measuring (fills the forecast buffers)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--groups", type=int, default=1000, help="multivariate groups of 10")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    runs = [
        run_once(args.points, args.scans, args.warmup, args.groups) for _ in range(args.repeats)
    ]
    summary: dict[str, Any] = {}
    print(f"{args.points} points, {args.scans} scans × {args.repeats} repeats (ns/point/scan)")
    for name in runs[0]:
        xs = [r[name] for r in runs]
        summary[name] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
        print(f"  {name:22s} {statistics.median(xs):8.1f}  (min {min(xs):.1f}, max {max(xs):.1f})")
    ms = summary["total"]["median"] * args.points / 1e6
    print(f"  one scan of all rules ≈ {ms:.1f} ms")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.json").write_text(
        json.dumps(
            {
                "points": args.points,
                "scans": args.scans,
                "groups": args.groups,
                "ns_per_point_scan": summary,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
