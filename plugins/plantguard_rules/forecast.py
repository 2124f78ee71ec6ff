"""Forecast of time to limit: "tank level will reach HH in about 12 minutes".

An operator can prevent what they see coming.  For each configured point the
rule keeps the last ``window`` seconds as ``samples`` evenly spaced values,
fits a straight line to them by least squares and projects it to the limit.
The prediction interval of the regression (``confidence``, Student t) turns
into an interval for the crossing time: earliest when the upper band reaches
the limit, latest when the lower band does.

A warning is raised when the trend is significant in the limit's direction and
the expected crossing is within ``horizon`` seconds; it clears when the
expected crossing moves beyond 1.25 × ``horizon`` (hysteresis), the trend
stops being significant, or the value reaches the limit (the limit alarm takes
over).  The limit is a number or the name of one of the point's own ``limit``
rule settings (``hh``, ``h``, ``l``, ``ll``).

The line is not refitted over the window: :class:`RunningTrend` keeps, per
point, the sums a least-squares line needs (count, Σt, Σy, Σt², Σty, Σy²) over
its ring buffer, and a new buffer sample adds its terms and subtracts those of
the sample it overwrites — O(1) per point and sample, whatever ``samples`` is.
Once per lap of the ring the sums are recomputed from the buffer, around the
newest sample, so rounding cannot accumulate.  Work per scan is one comparison
per point (is a buffer sample due?); the rest runs, vectorised, only for the
points that took a new buffer sample in that scan.

:func:`fit_trend` is the robust (Huber) batch fit of the same line, for
offline analysis of whole series; the rule uses the plain least-squares line,
whose spike sensitivity shows in a wider prediction interval.
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

from .base import FloatArray, IntArray, PointAlarms, PointRuleType, Slots, every, usable_at
from .stats import f_ppf

__all__ = [
    "ForecastConfig",
    "ForecastRule",
    "ForecastRuleType",
    "RunningTrend",
    "TrendFit",
    "fit_trend",
]

npt_bool = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]

_HUBER_C = 1.345
_ITERATIONS = 3


@functools.lru_cache(maxsize=1024)
def _t_quantile(p: float, dof: float) -> float:
    """Student t quantile for ``p`` in (0.5, 1) via the F distribution (cached)."""
    return math.sqrt(f_ppf(2 * p - 1, 1, dof))


_T_TABLE_SIZE = 512


@functools.lru_cache(maxsize=16)
def _t_table(p: float) -> FloatArray:
    """Student t quantiles at ``p`` by whole degrees of freedom, filled on demand (NaN: not yet)."""
    return np.full(_T_TABLE_SIZE, np.nan)


def _t_quantiles(p: float, dof: FloatArray) -> FloatArray:
    """Quantiles for every row's ``dof``: a table look-up for whole dof (the counts of
    samples a fit has), the cached scalar otherwise."""
    if dof.size:
        first = float(dof.flat[0])
        if (dof == first).all():  # the usual case: every buffer full
            return np.full(dof.shape, _t_quantile(p, first))
    whole = dof.astype(np.intp)
    if dof.size and (whole == dof).all() and whole.min() > 0 and whole.max() < _T_TABLE_SIZE:
        table = _t_table(p)
        looked: FloatArray = table[whole]
        missing = np.isnan(looked)
        if missing.any():
            for d in np.unique(whole[missing]).tolist():
                table[d] = _t_quantile(p, float(d))
            looked = table[whole]
        return looked
    values, inverse = np.unique(dof, return_inverse=True)
    out: FloatArray = np.array([_t_quantile(p, float(d)) for d in values])[
        inverse.reshape(dof.shape)
    ]
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

    def take(self, rows: npt_bool | IntArray) -> TrendFit:
        """The fits of some rows only."""
        return TrendFit(
            self.level[rows],
            self.slope[rows],
            self.scale[rows],
            self.tbar[rows],
            self.sxx[rows],
            self.n[rows],
        )

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
        eta, gap, rate = self._expected(limit, rising)
        c = _t_quantiles((1 + confidence) / 2, np.maximum(self.n - 2, 1)) * self.scale
        geometry = (1 + 1 / self.n, self.tbar, self.sxx)
        early = _band_reaches(gap, rate, c, geometry, upper=True)
        late = _band_reaches(gap, rate, c, geometry, upper=False)
        return (
            np.where(eta <= max_h, eta, np.inf),
            np.where(early <= max_h, early, np.inf),
            np.where(late <= max_h, late, np.inf),
        )

    def expected(self, limit: FloatArray, rising: npt_bool, max_h: FloatArray) -> FloatArray:
        """The expected seconds until ``limit`` of :meth:`crossing` alone (no band)."""
        eta = self._expected(limit, rising)[0]
        out: FloatArray = np.where(eta <= max_h, eta, np.inf)
        return out

    def _expected(
        self, limit: FloatArray, rising: npt_bool
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(expected seconds until ``limit`` or inf, gap, rate), both signed so that
        the gap is < 0 while short of the limit and the rate > 0 towards it."""
        sign = np.where(rising, 1.0, -1.0)
        gap = sign * (self.level - limit)
        rate = sign * self.slope
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.where(rate > 0, -gap / rate, np.inf)
        eta = np.where(eta >= 0, eta, np.inf)
        return eta, gap, rate


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


class RunningTrend:
    """Least-squares lines over per-row ring buffers, kept as running sums.

    Row ``i`` holds its last ``caps[i]`` samples.  :meth:`push` adds one sample to
    each of some rows in O(1) per row; :meth:`fit` returns their lines in O(1) per
    row.  Sums are taken around a per-row origin (time and value of the newest
    sample when they were last recomputed), which keeps the terms small; they are
    recomputed exactly from the buffer once per lap of the ring.  Points sampled
    in step (the usual case: one poll feeds them all) share a buffer slot, which
    is then one contiguous row of the buffer (slot × point layout).
    """

    def __init__(self, caps: IntArray) -> None:
        n = caps.size
        width = int(caps.max()) if n else 1
        self.cap = caps
        #: Buffered sample times and values, slot × row (NaN: slot not filled yet).
        self.t: FloatArray = np.full((width, n), np.nan)
        self.y: FloatArray = np.full((width, n), np.nan)
        #: Samples pushed per row so far.
        self.pos: IntArray = np.zeros(n, dtype=np.intp)
        # The slot the next sample goes to, and the newest sample's (pos % cap and
        # (pos - 1) % cap, kept up to date rather than divided out every push).
        self._next_slot: IntArray = np.zeros(n, dtype=np.intp)
        self._newest: IntArray = np.zeros(n, dtype=np.intp)
        self._t0 = np.zeros(n)
        self._y0 = np.zeros(n)
        self._sums = np.zeros((6, n))  # count, Σt, Σy, Σt², Σty, Σy² around the origin

    def _select(self, rows: IntArray) -> IntArray | slice:
        """``rows`` as an index: a slice when they are every row (no gathering)."""
        return every(rows, self.pos.size)

    def count(self, rows: IntArray) -> IntArray:
        """Samples in the buffer of ``rows``."""
        sel = self._select(rows)
        held: IntArray = np.minimum(self.pos[sel], self.cap[sel])
        return held

    def _slot(self, rows: IntArray, slots: IntArray) -> tuple[IntArray | int, IntArray | slice]:
        """Buffer index (slot, row) of ``rows`` at their ``slots`` (``_next_slot`` or
        ``_newest``): one shared slot is one contiguous buffer row."""
        sel = self._select(rows)
        slot = slots[sel]
        if slot.size and (slot == slot[0]).all():
            return int(slot[0]), sel
        return slot, rows

    def push(self, rows: IntArray, t: FloatArray, y: FloatArray) -> None:
        """Append ``(t[k], y[k])`` to the distinct, sorted ``rows[k]``, dropping each
        row's oldest sample once its buffer is full.  Values must be finite."""
        slot, at = self._slot(rows, self._next_slot)
        # Copies: with one shared slot these would be views of what is overwritten next.
        old_t, old_y = self.t[slot, at].copy(), self.y[slot, at].copy()
        self.t[slot, at] = t
        self.y[slot, at] = y
        sel = self._select(rows)
        slots = self._next_slot[sel]
        self._newest[sel] = slots
        slots += 1
        slots[slots == self.cap[sel]] = 0
        self._next_slot[sel] = slots
        self.pos[sel] += 1
        lap = (slots == 0) | (self.pos[sel] == 1)
        if not lap.any():
            self._step(sel, t, y, old_t, old_y)
        elif lap.all():
            self._rebase(rows)
        else:
            keep = ~lap
            self._step(rows[keep], t[keep], y[keep], old_t[keep], old_y[keep])
            self._rebase(rows[lap])

    def _step(
        self,
        sel: IntArray | slice,
        t: FloatArray,
        y: FloatArray,
        old_t: FloatArray,
        old_y: FloatArray,
    ) -> None:
        """Add the new samples' terms to the sums, subtract the overwritten ones'."""
        t0, y0 = self._t0[sel], self._y0[sel]
        gone = np.isfinite(old_t)
        sums = self._sums
        if gone.all():  # full buffers (the steady state): one sample in, one out
            ot, oy = old_t - t0, old_y - y0
        else:
            ot = np.where(gone, old_t - t0, 0.0)
            oy = np.where(gone, old_y - y0, 0.0)
            sums[0, sel] += 1.0 - gone
        nt, ny = t - t0, y - y0
        sums[1, sel] += nt - ot
        sums[2, sel] += ny - oy
        sums[3, sel] += nt * nt - ot * ot
        sums[4, sel] += nt * ny - ot * oy
        sums[5, sel] += ny * ny - oy * oy

    def _rebase(self, rows: IntArray) -> None:
        """Recompute the sums of ``rows`` from their buffers, around the newest sample."""
        slot, at = self._slot(rows, self._newest)
        sel = self._select(rows)
        self._t0[sel] = self.t[slot, at]
        self._y0[sel] = self.y[slot, at]
        tt = self.t[:, sel] - self._t0[sel]
        ok = np.isfinite(tt)
        tt = np.where(ok, tt, 0.0)
        yy = np.where(ok, self.y[:, sel] - self._y0[sel], 0.0)
        self._sums[:, sel] = np.stack(
            [
                ok.sum(axis=0),
                tt.sum(axis=0),
                yy.sum(axis=0),
                (tt * tt).sum(axis=0),
                (tt * yy).sum(axis=0),
                (yy * yy).sum(axis=0),
            ]
        )

    def fit(self, rows: IntArray) -> TrendFit:
        """The least-squares line of each of ``rows`` (distinct, sorted, at least two
        samples each), with times relative to the row's newest sample (as
        :func:`fit_trend`)."""
        sel = self._select(rows)
        n, st, sy, stt, sty, syy = self._sums[:, sel]
        mt, my = st / n, sy / n
        sxx = np.maximum(stt - st * mt, 1e-12)
        sxy = sty - st * my
        slope = sxy / sxx
        sse = np.maximum(syy - sy * my - slope * sxy, 0.0)
        scale = np.maximum(np.sqrt(sse / np.maximum(n - 2, 1)), 1e-12)
        slot, at = self._slot(rows, self._newest)
        tbar = mt - (self.t[slot, at] - self._t0[sel])
        level = self._y0[sel] + my - slope * tbar
        return TrendFit(level, slope, scale, tbar, sxx, n)


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
        self._slots = Slots(table.indices([p.id for p in points]))
        resolved = [_resolve_limit(p, c) for p, c in configs]
        self._limit = np.array([r[0] for r in resolved])
        self._rising = np.array([r[1] for r in resolved], dtype=bool)
        self._limit_name = [r[2] for r in resolved]
        self._horizon = np.array([c.horizon for c in cfgs])
        self._interval = np.array([c.window / c.samples for c in cfgs])
        self._min = np.array([c.min_samples for c in cfgs])
        confs = np.array([c.confidence for c in cfgs])
        self._confs, self._conf_of = np.unique(confs, return_inverse=True)
        n = len(cfgs)
        #: The buffers and the running least-squares sums of every point.
        self.trend = RunningTrend(np.array([c.samples for c in cfgs], dtype=np.intp))
        self._next = np.full(n, -np.inf)
        self._due = np.empty(n, dtype=bool)
        #: Latest forecast per point: expected, earliest and latest seconds to the limit
        #: (inf: not within twice the horizon, or no significant trend towards it;
        #: earliest and latest are worked out for the points that warn).
        self.eta = np.full(n, np.inf)
        self.early = np.full(n, np.inf)
        self.late = np.full(n, np.inf)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        t = self._slots.of(table.source_time)
        due = np.greater_equal(t, self._next, out=self._due)
        if not due.any():
            return []
        rows = usable_at(table, self._slots, np.flatnonzero(due))
        if not rows.size:
            return []
        at = every(rows, t.size)
        t_rows, v = t[at], self._slots.at(table.values, rows)
        self.trend.push(rows, t_rows, v)
        self._next[at] = t_rows + self._interval[at]
        enough = self.trend.count(rows) >= self._min[at]
        if not enough.all():
            rows, v = rows[enough], v[enough]
        if rows.size == 0:
            return []
        if self._confs.size == 1:
            level = self._judge(rows, float(self._confs[0]), v)
        else:
            level = np.zeros(rows.size, dtype=np.int8)
            group = self._conf_of[rows]
            for g in np.unique(group).tolist():
                sel = group == g
                level[sel] = self._judge(rows[sel], float(self._confs[g]), v[sel])

        return self._alarms.adopt(rows, level, v, now, columns=self._columns)

    def _columns(self, rows: IntArray) -> dict[str, list[object]]:
        return {
            "limit": self._limit[rows].tolist(),
            "limit_name": [self._limit_name[i] for i in rows.tolist()],
            "eta": [_duration(x) for x in self.eta[rows].tolist()],
            "early": [_duration(x) for x in self.early[rows].tolist()],
            "late": [_duration(x) for x in self.late[rows].tolist()],
        }

    def _judge(
        self, rows: IntArray, conf: float, v: FloatArray
    ) -> np.ndarray[tuple[int], np.dtype[np.int8]]:
        """Warning level of ``rows`` (current values ``v``) from their running fits."""
        fit = self.trend.fit(rows)
        at = every(rows, self._limit.size)
        limit, rising, horizon = self._limit[at], self._rising[at], self._horizon[at]
        sig = fit.significant(conf)
        beyond = np.where(rising, v >= limit, v <= limit)
        active = self._alarms.level[at] != 0
        reach = np.where(active, 1.25 * horizon, horizon)
        # The expected crossing decides; the band (earliest, latest), the costly part,
        # is worked out only for the warnings, whose messages show it.  Elsewhere the
        # times read "never" (inf).
        toward = np.where(rising, fit.slope > 0, fit.slope < 0)
        eta, early, late = (np.full(rows.size, np.inf) for _ in range(3))
        # (Index arrays, not masks: each selects from several arrays.)
        some = np.flatnonzero(sig & ~beyond & toward)
        if some.size:
            eta[some] = fit.take(some).expected(limit[some], rising[some], 2 * horizon[some])
        warn = eta <= reach
        some = np.flatnonzero(warn)
        if some.size:
            _, early[some], late[some] = fit.take(some).crossing(
                limit[some], rising[some], conf, 2 * horizon[some]
            )
        self.eta[at], self.early[at], self.late[at] = eta, early, late
        return warn.astype(np.int8)


class ForecastRuleType(PointRuleType):
    config_model = ForecastConfig
    rule_class = ForecastRule
