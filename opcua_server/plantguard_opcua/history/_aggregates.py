"""The Part 13 aggregates served, over every processing interval of a request at once.

Interpolative, Average, Minimum, Maximum, Count, Start and End (OPC 10000-13) as
numpy over columns: the samples are split into intervals by ``searchsorted`` and
each aggregate is a few vector operations, not a loop over intervals.  These are
pure functions of a :class:`.Series` and the intervals — no store, no asyncua
service — so the standard's rules (statuses by PercentValues, the historian bits,
partial and no-data intervals) stand here on their own; :mod:`._processed` reads
the store for them.  History holds a sample per change, so every point is Stepped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.ua.object_ids import ObjectIds

from ._series import (
    BAD,
    BAD_NO_DATA,
    CALCULATED,
    F64,
    GOOD,
    INTERPOLATED,
    MULTI_VALUE,
    PARTIAL,
    SEVERITY,
    U32,
    UNCERTAIN_SUBNORMAL,
    Bools,
    Ints,
    Series,
    is_uncertain,
    with_bits,
)

__all__ = ["AGGREGATES", "AggregateConfig", "Intervals", "aggregate", "classes"]

#: The aggregate functions served, by the NodeId of their standard AggregateFunction object.
AGGREGATES: Final[dict[int, str]] = {
    ObjectIds.AggregateFunction_Interpolative: "Interpolative",
    ObjectIds.AggregateFunction_Average: "Average",
    ObjectIds.AggregateFunction_Minimum: "Minimum",
    ObjectIds.AggregateFunction_Maximum: "Maximum",
    ObjectIds.AggregateFunction_Count: "Count",
    ObjectIds.AggregateFunction_Start: "Start",
    ObjectIds.AggregateFunction_End: "End",
}


@dataclass(frozen=True, slots=True)
class AggregateConfig:
    """Part 13 §4.2.1.2 AggregateConfiguration.  The server's defaults count Uncertain
    values as Bad and need 100 % Good values for a Good result (any Bad value makes it
    UncertainDataSubNormal; only Bad values make it Bad)."""

    treat_uncertain_as_bad: bool = True
    percent_bad: int = 100
    percent_good: int = 100

    @staticmethod
    def of(config: ua.AggregateConfiguration) -> AggregateConfig:
        if config.UseServerCapabilitiesDefaults:
            return AggregateConfig()
        return AggregateConfig(
            bool(config.TreatUncertainAsBad),
            int(config.PercentDataBad),
            int(config.PercentDataGood),
        )


@dataclass(frozen=True, slots=True)
class Intervals:
    """Processing intervals in request order (Part 13 §5.4.2.2, Table 12).

    ``edges`` holds n + 1 times; interval i runs from ``edges[i]`` (included, its
    timestamp) towards ``edges[i + 1]`` (excluded) — backwards in time when the
    request's EndTime is before its StartTime.
    """

    edges: F64
    interval: float

    @staticmethod
    def of(start: float, end: float, interval: float, limit: int) -> Intervals | None:
        span = abs(end - start)
        direction = 1.0 if end > start else -1.0
        if interval <= 0 or interval >= span:
            return Intervals(np.array([start, end], dtype=np.float64), span)
        whole = math.floor(span / interval * (1 + 1e-12))
        if whole > limit:
            return None
        edges: F64 = start + direction * interval * np.arange(whole + 1, dtype=np.float64)
        if abs(edges[-1] - start) < span * (1 - 1e-12):
            edges = np.append(edges, end)
        else:
            edges[-1] = end
        return Intervals(edges, interval)

    @property
    def reverse(self) -> bool:
        return bool(self.edges[-1] < self.edges[0])

    def __len__(self) -> int:
        return int(self.edges.size - 1)


@dataclass(slots=True)
class _Window:
    """The samples of one processed read in ascending *request* order, with the
    index range ``[a[i], b[i])`` of each interval (reverse reads are mirrored in time)."""

    t: F64  # axis time: the sample time, negated for reverse reads
    value: F64
    status: U32
    edges: F64  # axis edges, ascending
    a: Ints
    b: Ints
    sign: float

    @staticmethod
    def of(series: Series, intervals: Intervals) -> _Window:
        sign = -1.0 if intervals.reverse else 1.0
        s = series.reversed() if intervals.reverse else series
        t = sign * s.time
        edges = sign * intervals.edges
        a = np.searchsorted(t, edges[:-1], side="left").astype(np.intp)
        b = np.searchsorted(t, edges[1:], side="left").astype(np.intp)
        return _Window(t, s.value, s.status, edges, a, b, sign)

    def count(self, mask: Bools) -> Ints:
        """How many samples of each interval ``mask`` selects."""
        total = np.concatenate([[0], np.cumsum(mask)]).astype(np.intp)
        counted: Ints = total[self.b] - total[self.a]
        return counted

    def reduce(self, ufunc: np.ufunc, x: F64, empty: float) -> F64:
        """``ufunc`` over each interval's slice of ``x``; ``empty`` for empty intervals."""
        if x.size == 0:
            return np.full(self.a.size, empty)
        padded = np.append(x, empty)
        index = np.empty(2 * self.a.size, dtype=np.intp)
        index[0::2], index[1::2] = self.a, self.b
        reduced: F64 = ufunc.reduceat(padded, index)[0::2]
        return np.where(self.b > self.a, reduced, empty)

    def owner(self) -> Ints:
        """The interval of each sample (clipped; meaningful where the sample lies in one)."""
        found = np.searchsorted(self.edges, self.t, side="right") - 1
        return np.clip(found, 0, self.a.size - 1).astype(np.intp)


@dataclass(frozen=True, slots=True)
class _Processed:
    """Inputs every aggregate shares: the window, the samples' classes and the intervals'."""

    window: _Window
    good: Bools
    uncertain: Bools
    no_data: Bools  # before the first sample or after the server's clock
    partial: Bools
    config: AggregateConfig


def classes(series: Series) -> tuple[Bools, Bools]:
    """Good and Uncertain samples; a NaN value counts as Bad whatever its quality."""
    usable = ~np.isnan(series.value)
    return usable & ((series.status & SEVERITY) == 0), usable & is_uncertain(series.status)


def _percent_status(p: _Processed, total: Ints, good: Ints) -> U32:
    """Part 13 §5.4.3.2 "PercentValues": Bad, Good or UncertainDataSubNormal by counting."""
    counted_good = good if p.config.treat_uncertain_as_bad else good + p.window.count(p.uncertain)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_percent = np.where(total > 0, 100.0 * (total - counted_good) / total, 0.0)
        good_percent = np.where(total > 0, 100.0 * counted_good / total, 100.0)
    status = np.where(
        bad_percent >= p.config.percent_bad,
        BAD,
        np.where(good_percent >= p.config.percent_good, GOOD, UNCERTAIN_SUBNORMAL),
    )
    return status.astype(np.uint32)


def _finish(p: _Processed, value: F64, status: U32, bits: npt.NDArray[np.uint32]) -> Series:
    """Interval results with BadNoData outside the data, timestamped at interval starts."""
    w = p.window
    status = np.where(p.no_data, BAD_NO_DATA, with_bits(status, bits)).astype(np.uint32)
    return Series(w.sign * w.edges[:-1], np.where(p.no_data, np.nan, value), status)


def _average(p: _Processed) -> Series:
    """Simple average of the Good raw values in each interval (Part 13 §5.4.3.5)."""
    w = p.window
    good = w.count(p.good)
    total = good + w.count(~p.good)
    sums = w.reduce(np.add, np.where(p.good, w.value, 0.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(good > 0, sums / good, np.nan)
    status = np.where(good > 0, _percent_status(p, total, good), BAD_NO_DATA).astype(np.uint32)
    bits = np.where(good > 0, CALCULATED, 0).astype(np.uint32)
    return _finish(p, value, status, bits)


def _count(p: _Processed) -> Series:
    """The number of Good raw values in each interval (Part 13 §5.4.3.21)."""
    w = p.window
    good = w.count(p.good)
    total = good + w.count(~p.good)
    status = _percent_status(p, total, good)
    bits = (CALCULATED | np.where(p.partial, PARTIAL, 0)).astype(np.uint32)
    return _finish(p, good.astype(np.float64), status, bits)


def _extreme(p: _Processed, sign: float) -> Series:
    """Minimum (``sign`` 1) or Maximum (-1) of the Good raw values (Part 13 §5.4.3.10/11)."""
    w = p.window
    x = sign * w.value
    best = w.reduce(np.minimum, np.where(p.good, x, np.inf), np.inf)
    found = np.isfinite(best)
    owner = w.owner()
    equal = p.good & (x == best[owner])
    on_start = w.count(equal & (w.t == w.edges[owner])) > 0
    bad_seen = w.count(~p.good & ~p.uncertain) > 0
    lower_uncertain = w.reduce(np.minimum, np.where(p.uncertain, x, np.inf), np.inf) < best
    subnormal = bad_seen | lower_uncertain
    status = np.where(subnormal, UNCERTAIN_SUBNORMAL, GOOD)
    status = np.where(found, status, BAD_NO_DATA).astype(np.uint32)
    bits = (
        np.where(~on_start | subnormal, CALCULATED, 0)
        | np.where(w.count(equal) > 1, MULTI_VALUE, 0)
        | np.where(p.partial, PARTIAL, 0)
    )
    found_bits = np.where(found, bits, 0).astype(np.uint32)
    return _finish(p, np.where(found, sign * best, np.nan), status, found_bits)


def _edge_value(p: _Processed, last: bool) -> Series:
    """Start (first) or End (last) raw value of each interval, with its own status and
    timestamp (Part 13 §5.4.3.25/26)."""
    w = p.window
    empty = np.full(w.a.size, np.nan)
    if w.t.size == 0:
        no_bits = np.zeros(w.a.size, dtype=np.uint32)
        return _finish(p, empty, np.full(w.a.size, BAD_NO_DATA, np.uint32), no_bits)
    present = w.b > w.a
    index = np.clip(w.b - 1 if last else w.a, 0, w.t.size - 1)
    status = np.where(present, w.status[index], BAD_NO_DATA).astype(np.uint32)
    bits = np.where(present & p.partial, PARTIAL, 0).astype(np.uint32)
    result = _finish(p, np.where(present, w.value[index], np.nan), status, bits)
    result.time = np.where(present & ~p.no_data, w.sign * w.t[index], result.time)
    return result


def _interpolative(series: Series, intervals: Intervals, p: _Processed, now: float) -> Series:
    """The stepped interpolated bounding value at each interval's start (Part 13 §5.4.3.4).

    History holds changes, so the value at a time is the last usable sample at or
    before it; Bad (and, with TreatUncertainAsBad, Uncertain) samples are skipped
    and make the result UncertainDataSubNormal.  After the server's clock the last
    value is extrapolated, also Uncertain.
    """
    at = intervals.edges[:-1]
    n = len(series)
    if n == 0:
        return Series(at, np.full(at.size, np.nan), np.full(at.size, BAD_NO_DATA, np.uint32))
    good, uncertain = classes(series)
    usable = good if p.config.treat_uncertain_as_bad else good | uncertain
    last_usable = np.maximum.accumulate(np.where(usable, np.arange(n), -1))
    i = np.searchsorted(series.time, at, side="right") - 1
    j = np.where(i >= 0, last_usable[np.clip(i, 0, n - 1)], -1)
    found = j >= 0
    jj = np.clip(j, 0, n - 1)
    future = at > now
    exact = found & (j == i) & (series.time[jj] == at) & ~future
    subnormal = (j < i) | uncertain[jj] | future
    status = np.where(found, np.where(subnormal, UNCERTAIN_SUBNORMAL, GOOD), BAD_NO_DATA)
    bits = np.where(found & ~exact, INTERPOLATED, 0).astype(np.uint32)
    value = np.where(found, series.value[jj], np.nan)
    return Series(at.copy(), value, with_bits(status.astype(np.uint32), bits))


def _data_limits(series: Series, intervals: Intervals, now: float) -> tuple[Bools, Bools]:
    """Intervals outside the data (before the point's first sample, or after the server's
    clock: history is current up to now), and intervals the data covers only partly."""
    edges = intervals.edges
    low = np.minimum(edges[:-1], edges[1:])
    high = np.maximum(edges[:-1], edges[1:])
    request_low = float(low.min()) if low.size else math.inf
    if len(series) and series.time[0] < request_low:
        first = -math.inf  # a sample before the request: the data began earlier
    else:
        first = float(series.time[0]) if len(series) else math.inf
    no_data = (high <= first) | (low >= now)
    short = (high - low) < intervals.interval * (1 - 1e-9)
    partial = short | (~no_data & ((low < first) | (high > now)))
    return no_data, partial


def aggregate(
    name: str,
    series: Series,
    intervals: Intervals,
    config: AggregateConfig,
    *,
    low: float,
    high: float,
    now: float,
) -> Series:
    """Aggregate ``name`` (a value of :data:`AGGREGATES`) over each interval.

    ``series`` holds the samples of ``[low, high)``, the span of ``intervals``, and the
    last sample before it (for Interpolative, the last usable one): the value the first
    interval starts with.  ``now`` is the server's clock, up to which history is current.
    """
    no_data, partial = _data_limits(series, intervals, now)
    inside = series.where((series.time >= low) & (series.time < high))
    good, uncertain = classes(inside)
    window = _Window.of(inside, intervals)
    if intervals.reverse:
        good, uncertain = good[::-1], uncertain[::-1]
    p = _Processed(window, good, uncertain, no_data, partial, config)
    if name == "Interpolative":
        return _interpolative(series, intervals, p, now)
    if name == "Average":
        return _average(p)
    if name == "Count":
        return _count(p)
    if name in ("Minimum", "Maximum"):
        return _extreme(p, 1.0 if name == "Minimum" else -1.0)
    return _edge_value(p, last=name == "End")
