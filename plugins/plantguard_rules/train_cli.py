"""``plantguard train``: fit a site's models from the store's recorded history.

For every ``multivariate`` point group the group's history is read from the
store, aligned on a common time grid (each point's last good sample at each
grid time — sample-and-hold, as the live value table holds it), and the
group's model is fitted — by the automatic choice of
:mod:`plantguard_rules.autofit` unless the group names a ``method``, the same
choice ``plantguard detect fit`` makes — and the model file goes where the rule
will look for it.  For every point with an ``ewma`` or
``cusum`` rule, the normal mean and spread are written to the drift model file.
Train on a period of normal operation (``--start``/``--end``): the models learn
whatever they are shown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plantguard.plugin import CommandContext, ConfigError, Store

from .autofit import fit_group
from .base import FloatArray
from .drift import DEFAULT_MODEL, DRIFT_FORMAT
from .multivariate import GroupConfig, MultivariateConfig, MultivariateSiteConfig, model_path
from .mvmodels import FitError
from .progress import Progress

__all__ = ["align", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="site file")
    parser.add_argument("--db", default=None, help="store (default: the site's store.url)")
    parser.add_argument(
        "--hours", type=float, default=24.0, help="train on the last HOURS of history"
    )
    parser.add_argument("--end", type=float, default=None, help="end of the period (epoch s)")
    parser.add_argument("--step", type=float, default=None, help="grid step in s (default: scan)")


def align(
    trends: Sequence[tuple[FloatArray, FloatArray, np.ndarray[Any, np.dtype[np.uint8]]]],
    start: float,
    end: float,
    step: float,
) -> FloatArray:
    """Rows on a grid ``start..end`` (step ``step``) with each series' last good sample;
    rows where any series has no good sample yet are dropped."""
    grid = np.arange(start, end, step)
    cols = []
    for times, values, quality in trends:
        good = (quality < 128) & np.isfinite(values)
        t, v = times[good], values[good]
        pos = np.searchsorted(t, grid, side="right") - 1
        cols.append(np.where(pos >= 0, v[np.maximum(pos, 0)] if v.size else np.nan, np.nan))
    x = np.column_stack(cols) if cols else np.empty((grid.size, 0))
    rows: FloatArray = x[np.all(np.isfinite(x), axis=1)]
    return rows


def run(args: argparse.Namespace, context: CommandContext) -> int:
    try:
        loaded = context.load_site(args.site)  # with the CLI's own plugin host
    except ConfigError as exc:
        print(f"plantguard train: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    site = loaded.site
    base = args.site.parent
    groups: dict[str, list[str]] = {}
    for pid, cfg in loaded.rule_configs.get("multivariate", ()):
        if isinstance(cfg, MultivariateConfig):
            groups.setdefault(cfg.group, []).append(pid)
    site_cfg = loaded.site_rule_configs.get("multivariate")
    settings = site_cfg.groups if isinstance(site_cfg, MultivariateSiteConfig) else {}
    drift: dict[str, list[str]] = {}
    for name in ("ewma", "cusum"):
        for pid, cfg in loaded.rule_configs.get(name, ()):
            drift.setdefault(getattr(cfg, "model", DEFAULT_MODEL), []).append(pid)
    if not groups and not drift:
        print("plantguard train: no multivariate, ewma or cusum rules in the site", file=sys.stderr)
        return 2
    end = args.end if args.end is not None else time.time()
    start = end - args.hours * 3600
    step = args.step or site.scan_interval
    # Training reads history: it opens the existing store, never makes one (a typo in
    # --db is a StoreError with one line, not a new empty database).
    store = Store(args.db or site.store.url, existing_only=True)
    period = _Period(start, end, step)
    try:
        progress = Progress(len(groups) + len(drift))
        failures = sum(
            not _train_group(
                store,
                period,
                base,
                group=g,
                pids=pids,
                cfg=settings.get(g, GroupConfig()),
                progress=progress,
            )
            for g, pids in groups.items()
        )
        failures += sum(
            not _train_drift(store, period, base / path, pids, progress)
            for path, pids in drift.items()
        )
    finally:
        store.close()
    return 1 if failures else 0


@dataclass(frozen=True, slots=True)
class _Period:
    start: float
    end: float
    step: float


def _train_group(
    store: Store,
    period: _Period,
    base: Path,
    *,
    group: str,
    pids: list[str],
    cfg: GroupConfig,
    progress: Progress,
) -> bool:
    trends = [store.trend(p, period.start, period.end) for p in pids]
    x = align([(t.time, t.value, t.quality) for t in trends], period.start, period.end, period.step)
    out = base / model_path(group, cfg)
    trained_on = {"store": store.url, "start": period.start, "end": period.end, "step": period.step}
    try:
        fit = fit_group(
            x,
            pids,
            cfg.method,
            limits=cfg.limits,
            smoothing=cfg.smoothing,
            hold=cfg.hold,
            far=cfg.far,
            trained_on=trained_on,
        )
    except FitError as exc:
        progress.step(f"group {group}: {exc}")
        return False
    model = fit.model
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model.dumps(), encoding="utf-8")
    checked = model.options.get("checked")
    note = (
        " (warning: no candidate limit holds from one half of the period to the other; "
        "the largest is used)"
        if checked is not None and not checked["holds"] and fit.auto is None
        else ""
    )
    if fit.warning is not None:
        note += f" (warning: {fit.warning})"
    if fit.auto is not None:
        note += f" (chosen: {fit.auto.why})"
    progress.step(f"group {group}: {x.shape[0]} rows -> {out}{note}")
    return True


def _train_drift(
    store: Store, period: _Period, out: Path, pids: list[str], progress: Progress
) -> bool:
    stats: dict[str, dict[str, float]] = {}
    for pid in pids:
        t = store.trend(pid, period.start, period.end)
        v = t.value[(t.quality < 128) & np.isfinite(t.value)]
        if v.size >= 10:
            stats[pid] = {"mean": float(v.mean()), "sigma": float(v.std(ddof=1)), "n": v.size}
    document = {
        "format": DRIFT_FORMAT,
        "trained_on": {
            "store": store.url,
            "start": period.start,
            "end": period.end,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "points": stats,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    missing = len(pids) - len(stats)
    note = f" ({missing} without enough history)" if missing else ""
    progress.step(f"drift baselines: {len(stats)} points -> {out}{note}")
    return missing == 0
