"""ReadProcessed: a point's aggregates, from the store read in groups of whole intervals.

Each group holds about ``read_chunk`` samples (an interval with more is read alone)
and is aggregated by :mod:`._aggregates` as soon as it is read, so memory stays
bounded however long the request; the computed values are then paged out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import sqlalchemy as sa
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from plantguard.model import Point
from plantguard.store import Store
from plantguard.store.schema import history

from ._aggregates import AGGREGATES, AggregateConfig, Intervals, aggregate, classes
from ._nodes import POINT_VARIANTS
from ._series import F64, Series, after, epoch_seconds
from ._store import sample_times, trend

__all__ = ["ProcessedCursor", "ProcessedQuery", "processed_values"]

_V = ua.VariantType


@dataclass(frozen=True, slots=True)
class ProcessedQuery:
    """A ReadProcessed request for one node and its aggregate."""

    start: float
    end: float
    intervals: Intervals
    aggregate: str
    config: AggregateConfig

    @staticmethod
    def of(details: ua.ReadProcessedDetails, n: int, max_intervals: int) -> ProcessedQuery | int:
        """The query, or the StatusCode refusing it."""
        aggregate = details.AggregateType[n]
        name = AGGREGATES.get(aggregate.Identifier) if aggregate.NamespaceIndex == 0 else None
        if name is None:
            return StatusCodes.BadAggregateNotSupported
        start, end = epoch_seconds(details.StartTime), epoch_seconds(details.EndTime)
        if start is None or end is None or start == end:
            return StatusCodes.BadInvalidArgument  # Part 13 Table 12: no intervals
        interval = float(details.ProcessingInterval) / 1000.0  # a Duration is in ms
        intervals = Intervals.of(start, end, interval, max_intervals)
        if intervals is None:
            return StatusCodes.BadInvalidArgument
        config = AggregateConfig.of(details.AggregateConfiguration)
        return ProcessedQuery(start, end, intervals, name, config)

    def variant(self, point: Point) -> ua.VariantType:
        """Average is Double and Count Int32; the others have the point's type."""
        if self.aggregate == "Average":
            return _V.Double
        if self.aggregate == "Count":
            return _V.Int32
        return POINT_VARIANTS[point.data_type]


def processed_values(store: Store, point_id: str, q: ProcessedQuery, chunk: int) -> Series:
    """One aggregate over every interval of the request, reading the store in groups of
    whole intervals holding about ``chunk`` samples, so memory stays bounded however
    long the request is (an interval with more samples is read alone)."""
    edges = q.intervals.edges
    parts = []
    first = 0
    while first < edges.size - 1:
        last = _group_end(store, point_id, edges, first, chunk)
        group = Intervals(edges[first : last + 1], q.intervals.interval)
        low, high = float(edges[first]), float(edges[last])
        parts.append(
            _group_values(store, point_id, replace(q, start=low, end=high, intervals=group))
        )
        first = last
    return Series.concat(*parts)


def _group_end(store: Store, point_id: str, edges: F64, first: int, chunk: int) -> int:
    """The index of the last edge of a group starting at edge ``first``: as many whole
    intervals as hold no more than ``chunk`` samples, at least one."""
    t, start, end = history.c.time, float(edges[first]), float(edges[-1])
    forward = end > start
    within = sa.and_(t >= start, t < end) if forward else sa.and_(t <= start, t > end)
    stop = sample_times(store, point_id, within, descending=not forward, offset=chunk)
    if stop is None:
        return int(edges.size - 1)
    sign = 1.0 if forward else -1.0
    last = int(np.searchsorted(sign * edges, sign * stop, side="right")) - 1
    return max(last, first + 1)


def _group_values(store: Store, point_id: str, q: ProcessedQuery) -> Series:
    """One aggregate over a group of intervals, from one read of the store."""
    low, high = (q.start, q.end) if q.end > q.start else (q.end, after(q.start))
    series = trend(store, point_id, low, high, True)
    now = time.time()
    if q.aggregate == "Interpolative" and len(series):
        series = _with_usable_start(store, point_id, series, q.config)
    return aggregate(q.aggregate, series, q.intervals, q.config, low=low, high=high, now=now)


def _with_usable_start(
    store: Store, point_id: str, series: Series, config: AggregateConfig
) -> Series:
    """Prepend the last usable sample before ``series`` if its first sample is not usable,
    so the interpolated value at the request's start can skip Bad samples (Part 13 §3.1.8)."""
    good, uncertain = classes(series.slice(0, 1))
    if good[0] or (uncertain[0] and not config.treat_uncertain_as_bad):
        return series
    usable_quality = (
        history.c.quality == 0 if config.treat_uncertain_as_bad else history.c.quality < 128
    )
    condition = sa.and_(
        history.c.time < float(series.time[0]), usable_quality, history.c.value.is_not(None)
    )
    found = sample_times(store, point_id, condition, descending=True)
    if found is None:
        return series
    before = trend(store, point_id, found, after(found), False).slice(0, 1)
    return Series.concat(before, series)


@dataclass(slots=True)
class ProcessedCursor:
    """The rest of a processed read: its values, already computed, and their type."""

    node: ua.NodeId
    rest: Series
    variant: ua.VariantType
    page: int
