"""Forecast of time to limit: "tank level will reach HH in about 12 minutes".

An operator can prevent what they see coming.  For each configured point the
rule keeps the last ``window`` seconds as ``samples`` evenly spaced values,
fits a robust linear trend (Huber M-estimation by iteratively reweighted least
squares: a few spikes do not tilt the line) and projects it to the limit.  The
prediction interval of the regression (``confidence``, Student t) turns into an
interval for the crossing time: earliest when the upper band reaches the
limit, latest when the lower band does.

A warning is raised when the trend is significant in the limit's direction and
the expected crossing is within ``horizon`` seconds; it clears when the
expected crossing moves beyond 1.25 × ``horizon`` (hysteresis), the trend
stops being significant, or the value reaches the limit (the limit alarm takes
over).  The limit is a number or the name of one of the point's own ``limit``
rule settings (``hh``, ``h``, ``l``, ``ll``).

Work per scan is one comparison per point; the fit runs, vectorised, only for
the points that took a new buffer sample in that scan.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    AlarmDefinition,
    Finding,
    Point,
    PriorityName,
    Rule,
    SettingError,
    ValueTable,
)

from .base import FloatArray, PointAlarms, PointRuleType, usable
from .stats import f_ppf

__all__ = ["ForecastConfig", "ForecastRule", "ForecastRuleType", "TrendFit", "fit_trend"]

npt_bool = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]

_HUBER_C = 1.345
_ITERATIONS = 3


@functools.lru_cache(maxsize=1024)
def _t_quantile(p: float, dof: float) -> float:
    """Student t quantile for ``p`` in (0.5, 1) via the F distribution (cached)."""
    return math.sqrt(f_ppf(2 * p - 1, 1, dof))


def _t_quantiles(p: float, dof: FloatArray) -> FloatArray:
    values, inverse = np.unique(dof, return_inverse=True)
    table = np.array([_t_quantile(p, float(d)) for d in values])
    out: FloatArray = table[inverse.reshape(dof.shape)]
    return out


@dataclass(frozen=True, slots=True)
class TrendFit:
    """Robust straight lines for several series at once (one row each).

    Times are relative to each row's newest sample: ``level`` is the fitted value
    now, ``slope`` per second; ``tbar`` and ``sxx`` give the interval's widening.
    """

    level: FloatArray
    slope: FloatArray
    scale: FloatArray
    tbar: FloatArray
    sxx: FloatArray
    n: FloatArray

    def half_width(self, h: FloatArray, confidence: float) -> FloatArray:
        """Half width of the prediction interval ``h`` seconds ahead (rows × horizons)."""
        q = _t_quantiles((1 + confidence) / 2, np.maximum(self.n - 2, 1))
        d = h - self.tbar[:, None]
        var = 1 + 1 / self.n[:, None] + d * d / self.sxx[:, None]
        width: FloatArray = (q * self.scale)[:, None] * np.sqrt(var)
        return width

    def predict(
        self, h: FloatArray, confidence: float
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(low, centre, high) ``h`` seconds ahead; ``h`` is rows × horizons or horizons."""
        h = np.broadcast_to(h, (self.level.size, np.shape(h)[-1]))
        centre = self.level[:, None] + self.slope[:, None] * h
        w = self.half_width(h, confidence)
        return centre - w, centre, centre + w

    def significant(self, confidence: float) -> npt_bool:
        """Rows whose slope differs from zero at ``confidence`` (two-sided)."""
        q = _t_quantiles((1 + confidence) / 2, np.maximum(self.n - 2, 1))
        se = self.scale / np.sqrt(self.sxx)
        result: npt_bool = np.abs(self.slope) > q * se
        return result

    def crossing(
        self, limit: FloatArray, rising: npt_bool, confidence: float, max_h: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(expected, earliest, latest) seconds until ``limit``; inf when not within ``max_h``.

        Earliest: where the upper edge of the prediction band reaches a rising limit;
        latest: where the lower edge does (mirrored for a falling limit).  Solved in
        closed form: the band edge is ``centre(h) ± c·√(A + (h − d)²/S)``.
        """
        sign = np.where(rising, 1.0, -1.0)
        gap = sign * (self.level - limit)  # < 0 while short of the limit
        rate = sign * self.slope
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.where(rate > 0, -gap / rate, np.inf)
        eta = np.where(eta >= 0, eta, np.inf)
        c = _t_quantiles((1 + confidence) / 2, np.maximum(self.n - 2, 1)) * self.scale
        geometry = (1 + 1 / self.n, self.tbar, self.sxx)
        early = _band_reaches(gap, rate, c, geometry, upper=True)
        late = _band_reaches(gap, rate, c, geometry, upper=False)
        return (
            np.where(eta <= max_h, eta, np.inf),
            np.where(early <= max_h, early, np.inf),
            np.where(late <= max_h, late, np.inf),
        )


def _band_reaches(
    gap: FloatArray,
    rate: FloatArray,
    c: FloatArray,
    geometry: tuple[FloatArray, FloatArray, FloatArray],
    *,
    upper: bool,
) -> FloatArray:
    """Smallest ``h ≥ 0`` with ``gap + rate·h ± c·√(A + (h−d)²/S) ≥ 0`` (inf if none)."""
    big_a, d, big_s = geometry
    s = 1.0 if upper else -1.0
    start = gap + s * c * np.sqrt(big_a + d * d / big_s)
    # (gap + rate h)² = c² (A + (h − d)²/S), a quadratic q2 h² + q1 h + q0 = 0
    c2 = c * c
    q2 = rate * rate - c2 / big_s
    q1 = 2 * gap * rate + 2 * c2 * d / big_s
    q0 = gap * gap - c2 * big_a - c2 * d * d / big_s
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.sqrt(q1 * q1 - 4 * q2 * q0)
        roots = np.stack([(-q1 - disc) / (2 * q2), (-q1 + disc) / (2 * q2), -q0 / q1])
    linear = np.abs(q2) < 1e-300
    roots[:2, linear] = np.nan
    roots[2, ~linear] = np.nan
    # A root belongs to this edge when the centre is on the right side of the limit.
    centre_gap = gap + rate * roots
    valid = (roots >= 0) & np.isfinite(roots) & (s * centre_gap <= 0 if upper else centre_gap >= 0)
    first = np.min(np.where(valid, roots, np.inf), axis=0)
    out: FloatArray = np.where(start >= 0, 0.0, first)
    return out


def fit_trend(t: FloatArray, y: FloatArray, valid: npt_bool | None = None) -> TrendFit:
    """Huber-robust line per row of ``t``/``y`` (rows × samples), ignoring invalid samples."""
    t = np.atleast_2d(np.asarray(t, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    ok = np.isfinite(t) & np.isfinite(y) if valid is None else np.atleast_2d(valid)
    t_now = np.max(np.where(ok, t, -np.inf), axis=1, keepdims=True)
    tr = np.where(ok, t - t_now, 0.0)
    yv = np.where(ok, y, 0.0)
    w = ok.astype(np.float64)
    n = w.sum(axis=1)
    complete = bool(ok.all())
    scale = np.ones(t.shape[0])
    for it in range(_ITERATIONS + 1):
        sw = np.maximum(w.sum(axis=1), 1e-12)
        tbar = (w * tr).sum(axis=1) / sw
        ybar = (w * yv).sum(axis=1) / sw
        dt = tr - tbar[:, None]
        sxx = np.maximum((w * dt * dt).sum(axis=1), 1e-12)
        slope = (w * dt * (yv - ybar[:, None])).sum(axis=1) / sxx
        absres = np.abs(yv - ybar[:, None] - slope[:, None] * dt)
        if complete:  # the common case; nanmedian is ~10x slower than median
            mad = np.median(absres, axis=1) * 1.4826
            spread = np.sqrt(np.mean(absres * absres, axis=1))
        else:
            masked = np.where(ok, absres, np.nan)
            mad = np.nanmedian(masked, axis=1) * 1.4826
            spread = np.sqrt(np.nanmean(masked * masked, axis=1))
        scale = np.maximum(np.where(mad > 0, mad, spread), 1e-12)
        if it == _ITERATIONS:
            break
        u = absres / (_HUBER_C * scale[:, None])
        w = np.where(ok, np.minimum(1.0, 1.0 / np.maximum(u, 1e-12)), 0.0)
    # Interval terms use the unweighted design (the weights only robustify the line).
    tbar_u = (ok * tr).sum(axis=1) / np.maximum(n, 1)
    d = tr - tbar_u[:, None]
    sxx_u = np.maximum((ok * d * d).sum(axis=1), 1e-12)
    level = ybar - slope * tbar
    return TrendFit(level, slope, scale, tbar_u, sxx_u, n)


class ForecastConfig(BaseModel):
    """``rules: {forecast: {limit: hh, horizon: 1800}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: float | Literal["hh", "h", "l", "ll"]
    direction: Literal["rising", "falling"] | None = Field(
        None, description="for a numeric limit; named limits imply it (hh/h rising)"
    )
    horizon: float = Field(1800.0, gt=0, description="warn when the limit is this close (s)")
    window: float = Field(600.0, gt=0, description="seconds of history the trend is fitted on")
    samples: int = Field(30, ge=5, le=240, description="buffer samples across the window")
    min_samples: int = Field(10, ge=4)
    confidence: float = Field(0.9, gt=0.5, lt=1)
    priority: PriorityName = "low"
    message: str = (
        "{name} will reach {limit_name} ({limit:.4g} {unit}) in about {eta} ({early}–{late})"
    )


def _resolve_limit(point: Point, cfg: ForecastConfig) -> tuple[float, bool, str]:
    if isinstance(cfg.limit, str):
        raw = point.rules.get("limit", {}).get(cfg.limit)
        if raw is None:
            raise SettingError(
                f"rule 'forecast' names limit {cfg.limit!r}, which the point's 'limit' rule "
                f"does not set (set limit.{cfg.limit}, or give the limit as a number)",
                point=point.id,
                field=("limit",),
            )
        return float(raw), cfg.limit in ("hh", "h"), cfg.limit.upper()
    return float(cfg.limit), cfg.direction != "falling", f"{cfg.limit:g}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ForecastRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, ForecastConfig]]) -> None:
        points = [p for p, _ in configs]
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            "forecast",
            kind="deviation",
            configs=configs,
            conditions={1: "FORECAST"},
        )
        self._idx = table.indices([p.id for p in points])
        resolved = [_resolve_limit(p, c) for p, c in configs]
        self._limit = np.array([r[0] for r in resolved])
        self._rising = np.array([r[1] for r in resolved])
        self._limit_name = [r[2] for r in resolved]
        self._horizon = np.array([c.horizon for c in cfgs])
        self._interval = np.array([c.window / c.samples for c in cfgs])
        self._min = np.array([c.min_samples for c in cfgs])
        self._conf = np.array([c.confidence for c in cfgs])
        width = max((c.samples for c in cfgs), default=1)
        n = len(cfgs)
        self._cap = np.array([c.samples for c in cfgs])
        self._bt = np.full((n, width), np.nan)
        self._by = np.full((n, width), np.nan)
        self._pos = np.zeros(n, dtype=np.intp)
        self._next = np.full(n, -np.inf)
        #: Latest forecast per point: expected, earliest and latest seconds to the limit.
        self.eta = np.full(n, np.inf)
        self.early = np.full(n, np.inf)
        self.late = np.full(n, np.inf)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        t = table.source_time[self._idx]
        due = usable(table, self._idx) & (t >= self._next)
        if not due.any():
            return []
        rows = np.flatnonzero(due)
        v = table.values[self._idx]
        slot = self._pos[rows] % self._cap[rows]
        self._bt[rows, slot] = t[rows]
        self._by[rows, slot] = v[rows]
        self._pos[rows] += 1
        self._next[rows] = t[rows] + self._interval[rows]
        rows = rows[np.minimum(self._pos[rows], self._cap[rows]) >= self._min[rows]]
        if rows.size == 0:
            return []
        level = self._alarms.level.copy()
        for conf in np.unique(self._conf[rows]):
            sub = rows[self._conf[rows] == conf]
            level[sub] = self._judge(sub, float(conf), v)
        judged = np.zeros(level.size, dtype=bool)
        judged[rows] = True

        def fields(i: int) -> dict[str, object]:
            return {
                "limit": float(self._limit[i]),
                "limit_name": self._limit_name[i],
                "eta": _duration(float(self.eta[i])),
                "early": _duration(float(self.early[i])),
                "late": _duration(float(self.late[i])),
            }

        return self._alarms.findings(level, judged, v, now, fields)

    def _judge(
        self, rows: np.ndarray[tuple[int], np.dtype[np.intp]], conf: float, v: FloatArray
    ) -> np.ndarray[tuple[int], np.dtype[np.int8]]:
        fit = fit_trend(self._bt[rows], self._by[rows])
        eta, early, late = fit.crossing(
            self._limit[rows], self._rising[rows], conf, 2 * self._horizon[rows]
        )
        self.eta[rows], self.early[rows], self.late[rows] = eta, early, late
        sig = fit.significant(conf)
        beyond = np.where(
            self._rising[rows], v[rows] >= self._limit[rows], v[rows] <= self._limit[rows]
        )
        active = self._alarms.level[rows] != 0
        reach = np.where(active, 1.25 * self._horizon[rows], self._horizon[rows])
        warn = sig & ~beyond & (eta <= reach)
        return warn.astype(np.int8)


class ForecastRuleType(PointRuleType):
    config_model = ForecastConfig
    rule_class = ForecastRule
