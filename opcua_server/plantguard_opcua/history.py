"""OPC UA Historical Access (Part 11) for point values and alarm events, from the store.

asyncua's own history manager records what it subscribes to in memory (or in
tables of its own) and knows nothing of PlantGuard's store, which already holds
one sample per change of every point and every alarm transition.
:class:`HistoryService` replaces ``InternalServer.history_manager`` — asyncua
calls its ``read_history``, ``update_history`` and ``stop`` — and answers from
the store:

* **ReadRaw** (``ReadRawModifiedDetails``, ``IsReadModified`` false) of a point
  variable: its samples in ``[StartTime, EndTime)``, newest first when
  ``EndTime < StartTime``, with bounding values and continuation points.
* **ReadProcessed** of a point variable with the aggregates Interpolative,
  Average, Minimum, Maximum, Count, Start and End (OPC 10000-13), computed with
  numpy over the whole request at once.
* **ReadEvent** of the Server object (all alarms) or of a device (its alarms):
  the alarm journal as condition events with the fields live events have, through
  the same WhereClause evaluator and select-clause mapping.
* **HistoryUpdate** is refused: history is what the devices reported.

Samples leave as columns.  asyncua builds and encodes one ``DataValue`` object
per value (tens of µs each, more than the store's own read); this module writes
the binary ``HistoryData`` body straight from the arrays (``_encode_history_data``),
so a HistoryRead costs little more than the ``Store.trend`` beneath it.

NodeIds are resolved from the site model: a point's string NodeId is parsed back
to its device (one dict entry per device, nothing per point).  Continuation
points are random 16-byte keys into one table shared by all sessions, capped in
number and in the samples they hold (oldest first out).

What PlantGuard's history is, and how the standard's definitions meet it:
history holds a sample per *change*, so a value holds until the next sample —
every point is treated as ``Stepped``.  The store keeps the source timestamp only:
``TimestampsToReturn`` Source and Both return it (Both without a server timestamp,
because asyncua's and node-opcua's history helpers always ask for Both), Server
and Neither are refused with ``BadTimestampsToReturnInvalid``.  docs/opcua.md
("Historical Access") lists the rest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard.alarms import Action, AlarmManager, AlarmState, AlarmStatus, Shelving
from plantguard.model import Device, Point, Site
from plantguard.store import Store
from plantguard.store.schema import alarm_journal, history, points

from . import nodeids
from .event_filter import SubtypeAwareWhereClause
from .events import ConditionEvent, ConditionInfo, condition_fields, numeric_node
from .quality import STATUS_CODES

__all__ = [
    "AGGREGATES",
    "HistoryLimits",
    "HistoryService",
    "install_history",
]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

# --- status codes ---------------------------------------------------------------------------

_GOOD: Final = StatusCodes.Good
_BAD_NO_DATA: Final = StatusCodes.BadNoData
_BAD_BOUND_NOT_FOUND: Final = StatusCodes.BadBoundNotFound
_UNCERTAIN_SUBNORMAL: Final = StatusCodes.UncertainDataSubNormal
_BAD: Final = StatusCodes.Bad
#: InfoType "DataValue": the historian bits below are meaningful (Part 4 §7.39.1).
_INFO_DATAVALUE: Final = 0x400
_CALCULATED: Final = 0x1
_INTERPOLATED: Final = 0x2
_PARTIAL: Final = 0x4
_MULTI_VALUE: Final = 0x10
_SEVERITY: Final = 0xC0000000
_SEVERITY_UNCERTAIN: Final = 0x40000000

#: Quality byte → StatusCode value, the same mapping live values use.
_QUALITY_STATUS: Final[U32] = np.array([code.value for code in STATUS_CODES], dtype=np.uint32)


def _bad(status: U32) -> Bools:
    bad: Bools = (status & 0x80000000) != 0
    return bad


def _uncertain(status: U32) -> Bools:
    uncertain: Bools = (status & _SEVERITY) == _SEVERITY_UNCERTAIN
    return uncertain


def _with_bits(status: U32, bits: npt.NDArray[np.uint32]) -> U32:
    """``status`` with historian bits set (and InfoType DataValue wherever any is)."""
    info = np.where(bits != 0, _INFO_DATAVALUE, 0).astype(np.uint32)
    return (status | bits | info).astype(np.uint32)


# --- time -------------------------------------------------------------------------------------

_UNSPECIFIED = dt.datetime(1601, 1, 2, tzinfo=dt.UTC)
#: 100 ns ticks from 1601-01-01 (OPC UA DateTime) to 1970-01-01 (epoch seconds).
_EPOCH_TICKS: Final = 116_444_736_000_000_000


def _seconds(when: dt.datetime | None) -> float | None:
    """Epoch seconds of a request time; None for DateTime.MinValue ("not specified")."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when < _UNSPECIFIED:
        return None
    return when.timestamp()


def _ticks(seconds: F64) -> npt.NDArray[np.int64]:
    """OPC UA DateTimes (100 ns ticks since 1601) of epoch seconds, rounded to the
    microsecond exactly as ``datetime.fromtimestamp`` rounds (live values use it)."""
    fraction, whole = np.modf(seconds)
    micros = whole.astype(np.int64) * 1_000_000 + np.rint(fraction * 1e6).astype(np.int64)
    ticks: npt.NDArray[np.int64] = micros * 10 + _EPOCH_TICKS
    return ticks


def _after(t: float) -> float:
    """The next representable time after ``t``: turns ``< t`` bounds into ``<= t``."""
    return float(np.nextafter(t, math.inf))


# --- columns of DataValues --------------------------------------------------------------------


@dataclass(slots=True)
class _Series:
    """DataValues as columns: source time (s), value (NaN = no value), StatusCode value."""

    time: F64
    value: F64
    status: U32

    @staticmethod
    def empty() -> _Series:
        return _Series(np.empty(0), np.empty(0), np.empty(0, dtype=np.uint32))

    @staticmethod
    def single(at: float, status: int, value: float = math.nan) -> _Series:
        return _Series(np.array([at]), np.array([value]), np.array([status], dtype=np.uint32))

    @staticmethod
    def concat(*parts: _Series) -> _Series:
        return _Series(
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.value for p in parts]),
            np.concatenate([p.status for p in parts]).astype(np.uint32),
        )

    def __len__(self) -> int:
        return int(self.time.size)

    def where(self, mask: Bools) -> _Series:
        return _Series(self.time[mask], self.value[mask], self.status[mask])

    def slice(self, start: int, stop: int | None = None) -> _Series:
        return _Series(self.time[start:stop], self.value[start:stop], self.status[start:stop])

    def reversed(self) -> _Series:
        return _Series(self.time[::-1], self.value[::-1], self.status[::-1])

    def last(self) -> _Series:
        return self.slice(len(self) - 1) if len(self) else self


# --- binary encoding --------------------------------------------------------------------------

_V = ua.VariantType
_VALUE_DTYPES: Final[dict[ua.VariantType, str]] = {
    _V.Double: "<f8",
    _V.Int64: "<i8",
    _V.Int32: "<i4",
    _V.Boolean: "u1",
}
_INT_LIMITS: Final = {_V.Int64: (-(2.0**63), 2.0**63 - 1024), _V.Int32: (-(2.0**31), 2.0**31 - 1)}
_HISTORY_DATA: Final = ua.NodeId(ua.Int32(ObjectIds.HistoryData_Encoding_DefaultBinary))


def _value_bytes(values: F64, variant: ua.VariantType) -> npt.NDArray[np.uint8]:
    """Little-endian encodings of ``values`` as ``variant`` (Int64 truncated and clamped,
    Boolean ``value != 0``, as live values are converted)."""
    if variant in _INT_LIMITS:
        low, high = _INT_LIMITS[variant]
        typed: npt.NDArray[Any] = np.trunc(np.clip(values, low, high)).astype(
            _VALUE_DTYPES[variant]
        )
    elif variant == _V.Boolean:
        typed = (values != 0.0).astype(np.uint8)
    else:
        typed = values.astype("<f8")
    return typed.view(np.uint8).reshape(values.size, typed.dtype.itemsize)


def _scatter(out: npt.NDArray[np.uint8], at: Ints, columns: npt.NDArray[np.uint8]) -> None:
    """Write row ``k`` of ``columns`` to ``out[at[k] : at[k] + width]``, all rows at once."""
    if at.size:
        out[at[:, None] + np.arange(columns.shape[1])] = columns


def _encode_history_data(
    series: _Series, variant: ua.VariantType, *, source_timestamps: bool = True
) -> bytes:
    """The OPC UA binary body of a ``HistoryData`` holding ``series`` (Part 6 §5.2.2.17).

    Each DataValue gets a value unless it is NaN or its StatusCode is Bad (Part 4
    §7.7.1), a StatusCode unless it is Good, and the source timestamp.  Records
    differ in length, so their offsets come from a cumulative sum and every field
    is scattered into one byte array.
    """
    n = len(series)
    has_value = ~np.isnan(series.value) & ~_bad(series.status)
    has_status = series.status != _GOOD
    width = np.dtype(_VALUE_DTYPES[variant]).itemsize
    lengths = 1 + has_value * (1 + width) + has_status * 4 + (8 if source_timestamps else 0)
    ends = np.cumsum(lengths)
    starts = (ends - lengths).astype(np.intp)
    out = np.zeros(4 + int(ends[-1] if n else 0), dtype=np.uint8)
    out[:4] = np.array([n], dtype="<i4").view(np.uint8)
    body = out[4:]
    mask = has_value * 0x01 | has_status * 0x02 | (0x04 if source_timestamps else 0)
    body[starts] = mask
    cursor = starts + 1
    at = cursor[has_value]
    body[at] = int(variant)
    _scatter(body, at + 1, _value_bytes(series.value[has_value], variant))
    cursor = cursor + has_value * (1 + width)
    statuses = series.status[has_status].astype("<u4")
    _scatter(body, cursor[has_status], statuses.view(np.uint8).reshape(-1, 4))
    cursor = cursor + has_status * 4
    if source_timestamps:
        ticks = _ticks(series.time)
        _scatter(body, cursor, ticks.view(np.uint8).reshape(-1, 8))
    return out.tobytes()


def _history_data(series: _Series, variant: ua.VariantType) -> ua.ExtensionObject:
    """``series`` as the already-encoded HistoryData extension object of a result
    (asyncua writes an ExtensionObject's body as it is)."""
    body = cast(ua.ByteString, _encode_history_data(series, variant))
    return ua.ExtensionObject(TypeId=_HISTORY_DATA, Body=body)


# --- the store, beyond Store.trend -------------------------------------------------------------


def _point_key(point_id: str) -> Any:
    return sa.select(points.c.key).where(points.c.point_id == point_id).scalar_subquery()


def _sample_times(
    store: Store, point_id: str, condition: Any, *, descending: bool, offset: int = 0
) -> float | None:
    """The time of one sample of ``point_id`` (an index seek, not a read of the range)."""
    column = history.c.time
    query = (
        sa.select(column)
        .where(history.c.point_key == _point_key(point_id), condition)
        .order_by(column.desc() if descending else column)
        .limit(1)
        .offset(offset)
    )
    with store.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else float(found)


def _trend(store: Store, point_id: str, start: float, end: float, previous: bool) -> _Series:
    """``Store.trend`` as DataValue columns; Bad samples carry no value."""
    trend = store.trend(point_id, start, end, include_previous=previous)
    status = _QUALITY_STATUS[trend.quality]
    value = np.where(_bad(status), np.nan, trend.value)
    return _Series(trend.time, value, status)


def _before(t: float) -> float:
    return float(np.nextafter(t, -math.inf))


def _sample_next_to(store: Store, point_id: str, t: float, *, later: bool) -> _Series:
    """The sample nearest ``t`` on one side: at or after it (``later``), or at or before it."""
    column = history.c.time
    found = _sample_times(
        store, point_id, column >= t if later else column <= t, descending=not later
    )
    if found is None:
        return _Series.empty()
    instant = _trend(store, point_id, found, _after(found), False)
    return instant.slice(0, 1) if later else instant.last()


def _bound(store: Store, point_id: str, search: float, *, later: bool, at: float) -> _Series:
    """A bounding value: the sample nearest ``search`` on one side, else a BadBoundNotFound
    placeholder at ``at`` (Part 11 §4.4)."""
    found = _sample_next_to(store, point_id, search, later=later)
    return found if len(found) else _Series.single(at, _BAD_BOUND_NOT_FOUND)


def _start_bound(store: Store, point_id: str, start: float, *, forward: bool) -> _Series:
    """Nothing if a sample lies exactly at ``start`` (it is the bound, and in the domain),
    else the sample beyond it against the reading direction, else a placeholder."""
    near = _sample_next_to(store, point_id, start, later=not forward)
    if len(near) and near.time[0] == start:
        return _Series.empty()
    return near if len(near) else _Series.single(start, _BAD_BOUND_NOT_FOUND)


# --- raw reads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RawQuery:
    """A ReadRaw request for one node: at least two of start, end and count (Part 11 §6.5.3)."""

    start: float | None
    end: float | None
    count: int
    bounds: bool

    @staticmethod
    def of(details: ua.ReadRawModifiedDetails) -> _RawQuery | None:
        query = _RawQuery(
            _seconds(details.StartTime),
            _seconds(details.EndTime),
            int(details.NumValuesPerNode),
            bool(details.ReturnBounds),
        )
        # Both times, or one time with a count; one time alone reads to the end of the data
        # (asyncua's read_raw_history sends that), no time at all is not a request.
        return None if query.start is None and query.end is None else query

    @property
    def pages(self) -> bool:
        """True if the count is a page size (both times given), not the whole answer."""
        return self.start is not None and self.end is not None


@dataclass(slots=True)
class _RawCursor:
    """A raw read in progress: values read but not yet returned, and where to read on.

    The store is read in chunks of whole instants as pages need them, so neither a
    read of a year nor its continuation point holds more than a page and a chunk.
    """

    node: ua.NodeId
    point_id: str
    variant: ua.VariantType
    page: int
    forward: bool
    next_at: float | None  # the next chunk starts here (inclusive); None once all is read
    limit: float  # the far end of the domain, excluded
    end_bound: float | None  # the end time, while its bound is still to follow the values
    remaining: int | None  # values still to return when the count is the whole answer
    buffer: _Series

    def more(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return bool(len(self.buffer)) or self.next_at is not None or self.end_bound is not None


def _raw_cursor(store: Store, point: Point, q: _RawQuery, node: ua.NodeId, page: int) -> _RawCursor:
    """A new raw read, with its start bound (Part 11 §4.4) already in the buffer.

    ``[start, end)`` forward; ``(end, start]`` newest first when end < start; with one
    time, onwards from the start or back from (and excluding) the end.
    """
    start, end, pid = q.start, q.end, point.id
    variant = _POINT_VARIANTS[point.data_type]
    remaining = None if q.pages or not q.count else q.count
    cursor = _RawCursor(
        node=node, point_id=pid, variant=variant, page=page, forward=True, next_at=None,
        limit=math.inf, end_bound=None, remaining=remaining, buffer=_Series.empty(),
    )  # fmt: skip
    if start is not None and start == end:  # one instant: its values, or those around it
        cursor.buffer = _trend(store, pid, start, _after(start), False)
        if q.bounds and not len(cursor.buffer):
            cursor.buffer = _Series.concat(
                _bound(store, pid, _before(start), later=False, at=start),
                _bound(store, pid, _after(start), later=True, at=start),
            )
        return cursor
    if start is None:
        assert end is not None
        cursor.forward, cursor.next_at, cursor.limit = False, _before(end), -math.inf
        if q.bounds:
            cursor.buffer = _bound(store, pid, end, later=True, at=end)
        return cursor
    cursor.forward = end is None or end > start
    cursor.next_at = start
    cursor.limit = end if end is not None else math.inf
    if q.bounds:
        cursor.buffer = _start_bound(store, pid, start, forward=cursor.forward)
        cursor.end_bound = end
    return cursor


def _read_chunk(store: Store, c: _RawCursor, size: int) -> None:
    """Append about ``size`` further samples of the domain to the cursor's buffer, never
    splitting the samples of one instant between chunks."""
    assert c.next_at is not None
    t, at = history.c.time, c.next_at
    within = sa.and_(t >= at, t < c.limit) if c.forward else sa.and_(t <= at, t > c.limit)
    stop = _sample_times(store, c.point_id, within, descending=not c.forward, offset=size)
    if stop == at:  # more than a chunk at one instant: that instant alone
        chunk = _trend(store, c.point_id, at, _after(at), False)
        c.next_at = _after(at) if c.forward else _before(at)
    elif c.forward:
        chunk = _trend(store, c.point_id, at, c.limit if stop is None else stop, False)
        c.next_at = stop
    else:
        low = c.limit if stop is None else stop
        chunk = _trend(store, c.point_id, low, _after(at), False)
        chunk = chunk.where(chunk.time > low).reversed()
        c.next_at = stop
    c.buffer = _Series.concat(c.buffer, chunk)


def _raw_page(store: Store, c: _RawCursor, chunk: int) -> _Series:
    """The next page of a raw read (runs in a worker thread)."""
    want = c.page if c.remaining is None else min(c.page, c.remaining)
    while len(c.buffer) < want and c.next_at is not None:
        _read_chunk(store, c, chunk)
    if c.next_at is None and c.end_bound is not None:  # the domain is read: its end bound
        end = c.end_bound
        c.buffer = _Series.concat(c.buffer, _bound(store, c.point_id, end, later=c.forward, at=end))
        c.end_bound = None
    head, c.buffer = c.buffer.slice(0, want), c.buffer.slice(want)
    if c.remaining is not None:
        c.remaining -= len(head)
    return head


# --- aggregates ---------------------------------------------------------------------------------

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
class _AggregateConfig:
    """Part 13 §4.2.1.2 AggregateConfiguration.  The server's defaults count Uncertain
    values as Bad and need 100 % Good values for a Good result (any Bad value makes it
    UncertainDataSubNormal; only Bad values make it Bad)."""

    treat_uncertain_as_bad: bool = True
    percent_bad: int = 100
    percent_good: int = 100

    @staticmethod
    def of(config: ua.AggregateConfiguration) -> _AggregateConfig:
        if config.UseServerCapabilitiesDefaults:
            return _AggregateConfig()
        return _AggregateConfig(
            bool(config.TreatUncertainAsBad),
            int(config.PercentDataBad),
            int(config.PercentDataGood),
        )


@dataclass(frozen=True, slots=True)
class _Intervals:
    """Processing intervals in request order (Part 13 §5.4.2.2, Table 12).

    ``edges`` holds n + 1 times; interval i runs from ``edges[i]`` (included, its
    timestamp) towards ``edges[i + 1]`` (excluded) — backwards in time when the
    request's EndTime is before its StartTime.
    """

    edges: F64
    interval: float

    @staticmethod
    def of(start: float, end: float, interval: float, limit: int) -> _Intervals | None:
        span = abs(end - start)
        direction = 1.0 if end > start else -1.0
        if interval <= 0 or interval >= span:
            return _Intervals(np.array([start, end], dtype=np.float64), span)
        whole = math.floor(span / interval * (1 + 1e-12))
        if whole > limit:
            return None
        edges: F64 = start + direction * interval * np.arange(whole + 1, dtype=np.float64)
        if abs(edges[-1] - start) < span * (1 - 1e-12):
            edges = np.append(edges, end)
        else:
            edges[-1] = end
        return _Intervals(edges, interval)

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
    def of(series: _Series, intervals: _Intervals) -> _Window:
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
    config: _AggregateConfig


def _classes(series: _Series) -> tuple[Bools, Bools]:
    """Good and Uncertain samples; a NaN value counts as Bad whatever its quality."""
    usable = ~np.isnan(series.value)
    return usable & ((series.status & _SEVERITY) == 0), usable & _uncertain(series.status)


def _percent_status(p: _Processed, total: Ints, good: Ints) -> U32:
    """Part 13 §5.4.3.2 "PercentValues": Bad, Good or UncertainDataSubNormal by counting."""
    counted_good = good if p.config.treat_uncertain_as_bad else good + p.window.count(p.uncertain)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_percent = np.where(total > 0, 100.0 * (total - counted_good) / total, 0.0)
        good_percent = np.where(total > 0, 100.0 * counted_good / total, 100.0)
    status = np.where(
        bad_percent >= p.config.percent_bad,
        _BAD,
        np.where(good_percent >= p.config.percent_good, _GOOD, _UNCERTAIN_SUBNORMAL),
    )
    return status.astype(np.uint32)


def _finish(p: _Processed, value: F64, status: U32, bits: npt.NDArray[np.uint32]) -> _Series:
    """Interval results with BadNoData outside the data, timestamped at interval starts."""
    w = p.window
    status = np.where(p.no_data, _BAD_NO_DATA, _with_bits(status, bits)).astype(np.uint32)
    return _Series(w.sign * w.edges[:-1], np.where(p.no_data, np.nan, value), status)


def _average(p: _Processed) -> _Series:
    """Simple average of the Good raw values in each interval (Part 13 §5.4.3.5)."""
    w = p.window
    good = w.count(p.good)
    total = good + w.count(~p.good)
    sums = w.reduce(np.add, np.where(p.good, w.value, 0.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(good > 0, sums / good, np.nan)
    status = np.where(good > 0, _percent_status(p, total, good), _BAD_NO_DATA).astype(np.uint32)
    bits = np.where(good > 0, _CALCULATED, 0).astype(np.uint32)
    return _finish(p, value, status, bits)


def _count(p: _Processed) -> _Series:
    """The number of Good raw values in each interval (Part 13 §5.4.3.21)."""
    w = p.window
    good = w.count(p.good)
    total = good + w.count(~p.good)
    status = _percent_status(p, total, good)
    bits = (_CALCULATED | np.where(p.partial, _PARTIAL, 0)).astype(np.uint32)
    return _finish(p, good.astype(np.float64), status, bits)


def _extreme(p: _Processed, sign: float) -> _Series:
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
    status = np.where(subnormal, _UNCERTAIN_SUBNORMAL, _GOOD)
    status = np.where(found, status, _BAD_NO_DATA).astype(np.uint32)
    bits = (
        np.where(~on_start | subnormal, _CALCULATED, 0)
        | np.where(w.count(equal) > 1, _MULTI_VALUE, 0)
        | np.where(p.partial, _PARTIAL, 0)
    )
    found_bits = np.where(found, bits, 0).astype(np.uint32)
    return _finish(p, np.where(found, sign * best, np.nan), status, found_bits)


def _edge_value(p: _Processed, last: bool) -> _Series:
    """Start (first) or End (last) raw value of each interval, with its own status and
    timestamp (Part 13 §5.4.3.25/26)."""
    w = p.window
    empty = np.full(w.a.size, np.nan)
    if w.t.size == 0:
        no_bits = np.zeros(w.a.size, dtype=np.uint32)
        return _finish(p, empty, np.full(w.a.size, _BAD_NO_DATA, np.uint32), no_bits)
    present = w.b > w.a
    index = np.clip(w.b - 1 if last else w.a, 0, w.t.size - 1)
    status = np.where(present, w.status[index], _BAD_NO_DATA).astype(np.uint32)
    bits = np.where(present & p.partial, _PARTIAL, 0).astype(np.uint32)
    result = _finish(p, np.where(present, w.value[index], np.nan), status, bits)
    result.time = np.where(present & ~p.no_data, w.sign * w.t[index], result.time)
    return result


def _interpolative(series: _Series, intervals: _Intervals, p: _Processed, now: float) -> _Series:
    """The stepped interpolated bounding value at each interval's start (Part 13 §5.4.3.4).

    History holds changes, so the value at a time is the last usable sample at or
    before it; Bad (and, with TreatUncertainAsBad, Uncertain) samples are skipped
    and make the result UncertainDataSubNormal.  After the server's clock the last
    value is extrapolated, also Uncertain.
    """
    at = intervals.edges[:-1]
    n = len(series)
    if n == 0:
        return _Series(at, np.full(at.size, np.nan), np.full(at.size, _BAD_NO_DATA, np.uint32))
    good, uncertain = _classes(series)
    usable = good if p.config.treat_uncertain_as_bad else good | uncertain
    last_usable = np.maximum.accumulate(np.where(usable, np.arange(n), -1))
    i = np.searchsorted(series.time, at, side="right") - 1
    j = np.where(i >= 0, last_usable[np.clip(i, 0, n - 1)], -1)
    found = j >= 0
    jj = np.clip(j, 0, n - 1)
    future = at > now
    exact = found & (j == i) & (series.time[jj] == at) & ~future
    subnormal = (j < i) | uncertain[jj] | future
    status = np.where(found, np.where(subnormal, _UNCERTAIN_SUBNORMAL, _GOOD), _BAD_NO_DATA)
    bits = np.where(found & ~exact, _INTERPOLATED, 0).astype(np.uint32)
    value = np.where(found, series.value[jj], np.nan)
    return _Series(at.copy(), value, _with_bits(status.astype(np.uint32), bits))


def _data_limits(series: _Series, intervals: _Intervals, now: float) -> tuple[Bools, Bools]:
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


@dataclass(frozen=True, slots=True)
class _ProcessedQuery:
    """A ReadProcessed request for one node and its aggregate."""

    start: float
    end: float
    intervals: _Intervals
    aggregate: str
    config: _AggregateConfig

    @staticmethod
    def of(details: ua.ReadProcessedDetails, n: int, max_intervals: int) -> _ProcessedQuery | int:
        """The query, or the StatusCode refusing it."""
        aggregate = details.AggregateType[n]
        name = AGGREGATES.get(aggregate.Identifier) if aggregate.NamespaceIndex == 0 else None
        if name is None:
            return StatusCodes.BadAggregateNotSupported
        start, end = _seconds(details.StartTime), _seconds(details.EndTime)
        if start is None or end is None or start == end:
            return StatusCodes.BadInvalidArgument  # Part 13 Table 12: no intervals
        interval = float(details.ProcessingInterval) / 1000.0  # a Duration is in ms
        intervals = _Intervals.of(start, end, interval, max_intervals)
        if intervals is None:
            return StatusCodes.BadInvalidArgument
        config = _AggregateConfig.of(details.AggregateConfiguration)
        return _ProcessedQuery(start, end, intervals, name, config)

    def variant(self, point: Point) -> ua.VariantType:
        """Average is Double and Count Int32; the others have the point's type."""
        if self.aggregate == "Average":
            return _V.Double
        if self.aggregate == "Count":
            return _V.Int32
        return _POINT_VARIANTS[point.data_type]


def _processed_values(store: Store, point_id: str, q: _ProcessedQuery, chunk: int) -> _Series:
    """One aggregate over every interval of the request, reading the store in groups of
    whole intervals holding about ``chunk`` samples, so memory stays bounded however
    long the request is (an interval with more samples is read alone)."""
    edges = q.intervals.edges
    parts = []
    first = 0
    while first < edges.size - 1:
        last = _group_end(store, point_id, edges, first, chunk)
        group = _Intervals(edges[first : last + 1], q.intervals.interval)
        low, high = float(edges[first]), float(edges[last])
        parts.append(
            _group_values(store, point_id, replace(q, start=low, end=high, intervals=group))
        )
        first = last
    return _Series.concat(*parts)


def _group_end(store: Store, point_id: str, edges: F64, first: int, chunk: int) -> int:
    """The index of the last edge of a group starting at edge ``first``: as many whole
    intervals as hold no more than ``chunk`` samples, at least one."""
    t, start, end = history.c.time, float(edges[first]), float(edges[-1])
    forward = end > start
    within = sa.and_(t >= start, t < end) if forward else sa.and_(t <= start, t > end)
    stop = _sample_times(store, point_id, within, descending=not forward, offset=chunk)
    if stop is None:
        return int(edges.size - 1)
    sign = 1.0 if forward else -1.0
    last = int(np.searchsorted(sign * edges, sign * stop, side="right")) - 1
    return max(last, first + 1)


def _group_values(store: Store, point_id: str, q: _ProcessedQuery) -> _Series:
    """One aggregate over a group of intervals, from one read of the store."""
    low, high = (q.start, q.end) if q.end > q.start else (q.end, _after(q.start))
    series = _trend(store, point_id, low, high, True)
    now = time.time()
    if q.aggregate == "Interpolative" and len(series):
        series = _with_usable_start(store, point_id, series, q.config)
    no_data, partial = _data_limits(series, q.intervals, now)
    inside = series.where((series.time >= low) & (series.time < high))
    good, uncertain = _classes(inside)
    window = _Window.of(inside, q.intervals)
    if q.intervals.reverse:
        good, uncertain = good[::-1], uncertain[::-1]
    p = _Processed(window, good, uncertain, no_data, partial, q.config)
    if q.aggregate == "Interpolative":
        return _interpolative(series, q.intervals, p, now)
    if q.aggregate == "Average":
        return _average(p)
    if q.aggregate == "Count":
        return _count(p)
    if q.aggregate in ("Minimum", "Maximum"):
        return _extreme(p, 1.0 if q.aggregate == "Minimum" else -1.0)
    return _edge_value(p, last=q.aggregate == "End")


def _with_usable_start(
    store: Store, point_id: str, series: _Series, config: _AggregateConfig
) -> _Series:
    """Prepend the last usable sample before ``series`` if its first sample is not usable,
    so the interpolated value at the request's start can skip Bad samples (Part 13 §3.1.8)."""
    good, uncertain = _classes(series.slice(0, 1))
    if good[0] or (uncertain[0] and not config.treat_uncertain_as_bad):
        return series
    usable_quality = (
        history.c.quality == 0 if config.treat_uncertain_as_bad else history.c.quality < 128
    )
    condition = sa.and_(
        history.c.time < float(series.time[0]), usable_quality, history.c.value.is_not(None)
    )
    found = _sample_times(store, point_id, condition, descending=True)
    if found is None:
        return series
    before = _trend(store, point_id, found, _after(found), False).slice(0, 1)
    return _Series.concat(before, series)


# --- events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Flags:
    """An alarm's state a journal row does not hold, as of some row: replayed from earlier rows."""

    shelving: Shelving = Shelving.NONE
    suppressed: bool = False
    out_of_service: bool = False
    confirmed: bool = True
    last_severity: int | None = None

    def apply(self, row: Any, confirm_required: bool) -> None:
        """Advance past ``row``, as :mod:`plantguard.alarms.machine` changed the status."""
        available = (
            self.shelving is Shelving.NONE and not self.suppressed and not self.out_of_service
        )
        action = row.action
        if action in (Action.SUPPRESS.value, Action.UNSUPPRESS.value):
            self.suppressed = action == Action.SUPPRESS.value
        elif action in (Action.REMOVE_FROM_SERVICE.value, Action.RETURN_TO_SERVICE.value):
            self.out_of_service = action == Action.REMOVE_FROM_SERVICE.value
        elif action == Action.SHELVE.value:
            self.shelving = Shelving.TIMED
        elif action == Action.ONE_SHOT_SHELVE.value:
            self.shelving = Shelving.ONE_SHOT
        elif action == Action.CONFIRM.value:
            self.confirmed = True
        elif _reannunciates(row) and available and confirm_required:
            self.confirmed = False
        if row.shelved_until is None:
            self.shelving = Shelving.NONE  # unshelved, expired, or a one-shot shelve ended


def _reannunciates(row: Any) -> bool:
    """An activation, or a change to a more severe condition that needs acknowledging again."""
    if row.action == Action.ACTIVATE.value:
        return True
    return bool(
        row.action == Action.CHANGE.value
        and row.state_before == AlarmState.ACKED.value
        and row.state_after == AlarmState.UNACK.value
    )


def _seeded(
    rows_by_action: dict[str, Any], confirm_required: bool, severity_of: Callable[[Any], int]
) -> _Flags:
    """An alarm's flags from the latest journal row of each action before some position
    (an approximation of replaying all of them: the latest row decides each flag)."""
    flags = _Flags()
    latest = sorted(rows_by_action.values(), key=lambda r: r.seq)
    for row in latest:  # oldest first: each action's latest row, in journal order
        flags.apply(row, confirm_required)
    evented = [r for r in latest if r.action != Action.CHATTERING.value]
    if evented:
        flags.last_severity = severity_of(evented[-1])
    return flags


def _event_id(seq: int) -> bytes:
    """A stable EventId for journal row ``seq`` (the same on every read and restart)."""
    return b"PGJ\x00" + seq.to_bytes(12, "big")


@dataclass(frozen=True, slots=True)
class _EventQuery:
    """A ReadEvent request for one notifier: its domain, direction and filter."""

    low: float  # domain bounds; which end is included depends on the direction
    high: float
    reverse: bool
    count: int
    pages: bool  # count is a page size (both times given), not the whole answer
    filter: ua.EventFilter

    @staticmethod
    def of(details: ua.ReadEventDetails) -> _EventQuery | None:
        start, end = _seconds(details.StartTime), _seconds(details.EndTime)
        count = int(details.NumValuesPerNode)
        evfilter = details.Filter if details.Filter is not None else ua.EventFilter()
        if start is not None and end is not None:
            reverse = end < start
            low, high = (end, start) if reverse else (start, end)
            return _EventQuery(low, high, reverse, count, True, evfilter)
        if start is not None:
            return _EventQuery(start, math.inf, False, count, False, evfilter)
        if end is not None:
            return _EventQuery(-math.inf, end, True, count, False, evfilter)
        return None


@dataclass(slots=True)
class _EventCursor:
    """Where a ReadEvent is in the journal: the last row consumed, in read order."""

    notifier: ua.NodeId
    alarms: frozenset[str] | None  # None: every alarm (the Server object)
    query: _EventQuery
    where: SubtypeAwareWhereClause
    remaining: int | None  # values still to return when the count is the whole answer
    after: tuple[float, int] | None = None


def _domain(query: _EventQuery) -> Any:
    """Forward reads include the start and exclude the end (Part 11 §4.4); reverse reads
    include their start (the later time) and exclude their end."""
    t = alarm_journal.c.time
    if query.reverse:
        return sa.and_(t > query.low, t <= query.high)
    return sa.and_(t >= query.low, t < query.high)


def _journal_rows(store: Store, cursor: _EventCursor, limit: int) -> list[Any]:
    """The next ``limit`` journal rows of the cursor's alarms, in read order."""
    j = alarm_journal
    query = sa.select(j).where(_domain(cursor.query))
    if cursor.alarms is not None:
        query = query.where(j.c.alarm_id.in_(sorted(cursor.alarms)))
    if cursor.after is not None:
        t, seq = cursor.after
        if cursor.query.reverse:
            query = query.where(sa.or_(j.c.time < t, sa.and_(j.c.time == t, j.c.seq < seq)))
        else:
            query = query.where(sa.or_(j.c.time > t, sa.and_(j.c.time == t, j.c.seq > seq)))
    order = (j.c.time.desc(), j.c.seq.desc()) if cursor.query.reverse else (j.c.time, j.c.seq)
    with store.engine.connect() as conn:
        return list(conn.execute(query.order_by(*order).limit(limit)).all())


def _seed_flags(
    store: Store,
    alarm_ids: Sequence[str],
    oldest: Any,
    confirm_required: bool,
    severity_of: Callable[[Any], int],
) -> dict[str, _Flags]:
    """Each alarm's flags just before journal row ``oldest``, from the latest earlier row
    of each action (one grouped query, then those rows)."""
    j = alarm_journal
    before = sa.or_(j.c.time < oldest.time, sa.and_(j.c.time == oldest.time, j.c.seq < oldest.seq))
    latest = (
        sa.select(sa.func.max(j.c.seq))
        .where(j.c.alarm_id.in_(alarm_ids), before)
        .group_by(j.c.alarm_id, j.c.action)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(j).where(j.c.seq.in_(latest))).all()
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        grouped.setdefault(row.alarm_id, {})[row.action] = row
    return {a: _seeded(grouped.get(a, {}), confirm_required, severity_of) for a in alarm_ids}


class _Journal:
    """Turns journal rows into condition events, as :class:`.conditions.ConditionPublisher`
    made them live (``_snapshot``), from what each row records and a replay of the rest."""

    def __init__(self, conditions: Mapping[str, ConditionInfo], alarms: AlarmManager) -> None:
        self.conditions = conditions
        self.alarms = alarms

    def events(
        self, store: Store, cursor: _EventCursor, limit: int
    ) -> tuple[list[tuple[tuple[float, int], ConditionEvent | None]], bool]:
        """The next batch of rows as (position, event or None), in read order, and whether
        the journal is exhausted.  Runs in a worker thread."""
        rows = _journal_rows(store, cursor, limit)
        if not rows:
            return [], True
        ascending = rows[::-1] if cursor.query.reverse else rows
        confirm_required = self.alarms.policy.confirm_required
        ids = sorted({r.alarm_id for r in rows if r.alarm_id in self.conditions})
        flags = {}
        if ids:
            flags = _seed_flags(store, ids, ascending[0], confirm_required, self._severity)
        built: list[tuple[tuple[float, int], ConditionEvent | None]] = []
        for row in ascending:
            state = flags.get(row.alarm_id)
            event = None
            if state is not None and row.action != Action.CHATTERING.value:
                severity = self._severity(row)
                last_severity = state.last_severity or severity
                state.apply(row, confirm_required)
                state.last_severity = severity
                event = self._event(row, state, severity, last_severity, cursor.notifier)
            built.append(((float(row.time), int(row.seq)), event))
        if cursor.query.reverse:
            built.reverse()
        return built, len(rows) < limit

    def _severity(self, row: Any) -> int:
        """The event's Severity: the row's, else the alarm's priority (as live events)."""
        definition = self.alarms.definitions.get(row.alarm_id)
        return int(row.severity) or (int(definition.priority) if definition else 1)

    def _event(
        self, row: Any, flags: _Flags, severity: int, last_severity: int, notifier: ua.NodeId
    ) -> ConditionEvent | None:
        """The event live subscribers got for ``row`` (None where they got none)."""
        try:
            state = AlarmState(row.state_after)
        except ValueError:
            return None
        status = AlarmStatus(
            alarm_id=row.alarm_id, state=state, condition=row.condition,
            severity=int(row.severity), value=math.nan if row.value is None else float(row.value),
            message=row.message, changed=float(row.time), confirmed=flags.confirmed,
            shelving=flags.shelving, shelved_until=row.shelved_until,
            suppressed=flags.suppressed, out_of_service=flags.out_of_service,
            comment=row.comment, last_user=row.user,
        )  # fmt: skip
        if status.out_of_service and row.action != Action.REMOVE_FROM_SERVICE.value:
            return None  # a disabled condition sends only its Disable event
        info = self.conditions[row.alarm_id]
        fields = condition_fields(
            info, status, event_id=_event_id(int(row.seq)), time=float(row.time),
            message=row.message or row.alarm_id, client_user=row.user, comment=row.comment,
            severity=severity, last_severity=last_severity,
            max_time_shelved=self.alarms.policy.max_shelve,
        )  # fmt: skip
        fields["ReceiveTime"] = fields["Time"]  # received when it was journalled
        return ConditionEvent(fields, emitting_node=notifier, condition_id=info.node_id)


# --- node resolution ----------------------------------------------------------------------------

_POINT_VARIANTS: Final[dict[str, ua.VariantType]] = {
    "float": _V.Double,
    "int": _V.Int64,
    "bool": _V.Boolean,
}
_SERVER: Final = numeric_node(ObjectIds.Server)


class _PointIndex:
    """Point variables by NodeId, parsed back from the NodeId's path: one entry per device."""

    def __init__(self, site: Site, ns: int) -> None:
        self.ns = ns
        self._devices: dict[str, Device] = {
            nodeids.device_path(site, area, device): device
            for area in site.areas
            for device in area.devices
        }
        self._folder = f"/{nodeids.POINTS_FOLDER}/"

    def point(self, node_id: ua.NodeId) -> Point | None:
        ident = node_id.Identifier
        if node_id.NamespaceIndex != self.ns or not isinstance(ident, str) or "#" in ident:
            return None
        device_path, folder, local = ident.rpartition(self._folder)
        device = self._devices.get(device_path) if folder and "/" not in local else None
        if device is None:
            return None
        return next((p for p in device.points if nodeids.point_local_id(device, p) == local), None)


def _subtype_checker(server: Server) -> Callable[[ua.NodeId, ua.NodeId], bool]:
    """``is_subtype(type, ancestor)`` over the server's type hierarchy, cached (the live
    event filters of :mod:`.compat` are built the same way)."""
    aspace = server.iserver.aspace
    has_subtype = numeric_node(ObjectIds.HasSubtype)
    cache: dict[tuple[ua.NodeId, ua.NodeId], bool] = {}

    def is_subtype(node: ua.NodeId, ancestor: ua.NodeId) -> bool:
        key = (node, ancestor)
        if key not in cache:
            current: ua.NodeId | None = node
            for _ in range(64):  # type hierarchies are shallow; this bounds a cycle
                if current is None or current == ancestor:
                    break
                data = aspace.get(current)
                refs = data.references if data is not None else ()
                current = next(
                    (
                        r.NodeId
                        for r in refs
                        if r.ReferenceTypeId == has_subtype and not r.IsForward
                    ),
                    None,
                )
            cache[key] = current == ancestor
        return cache[key]

    return is_subtype


# --- continuation points ------------------------------------------------------------------------


@dataclass(slots=True)
class _ProcessedCursor:
    """The rest of a processed read: its values, already computed, and their type."""

    node: ua.NodeId
    rest: _Series
    variant: ua.VariantType
    page: int


_Cursor = _RawCursor | _ProcessedCursor | _EventCursor


@dataclass(slots=True)
class _Held:
    cursor: _Cursor
    expires: float


class _Continuations:
    """Continuation points of unfinished reads, shared by every session.

    Keyed by 16 random bytes, so one session cannot guess another's.  Bounded in
    number and in samples held; the oldest are dropped first (a client then gets
    BadContinuationPointInvalid), and any left unused for ``ttl`` seconds lapse.
    """

    def __init__(self, limit: int, max_samples: int, ttl: float) -> None:
        self._held: OrderedDict[bytes, _Held] = OrderedDict()
        self._limit = limit
        self._max_samples = max_samples
        self._ttl = ttl
        self._samples = 0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, cursor: _Cursor) -> bytes:
        self._expire()
        key = secrets.token_bytes(16)
        self._held[key] = _Held(cursor, time.monotonic() + self._ttl)
        self._samples += self._size(cursor)
        while len(self._held) > self._limit or (
            self._samples > self._max_samples and len(self._held) > 1
        ):
            self._drop(next(iter(self._held)))
        return key

    def take(self, key: bytes) -> _Cursor | None:
        """The cursor of ``key``, removed (a continuation point is used once)."""
        self._expire()
        held = self._held.get(key)
        if held is None:
            return None
        self._drop(key)
        return held.cursor

    def release(self, key: bytes) -> None:
        if key in self._held:
            self._drop(key)

    def clear(self) -> None:
        self._held.clear()
        self._samples = 0

    def _drop(self, key: bytes) -> None:
        self._samples -= self._size(self._held.pop(key).cursor)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, h in self._held.items() if h.expires < now]:
            self._drop(key)

    @staticmethod
    def _size(cursor: _Cursor) -> int:
        if isinstance(cursor, _ProcessedCursor):
            return len(cursor.rest)
        return len(cursor.buffer) if isinstance(cursor, _RawCursor) else 0


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """Server limits, advertised in ``HistoryServerCapabilities`` and ``ServerCapabilities``."""

    max_return_data_values: int = 100_000
    max_return_event_values: int = 10_000
    max_continuation_points: int = 100
    #: Values all continuation points may hold together (~20 bytes each).
    max_held_samples: int = 2_000_000
    #: Seconds an unused continuation point is kept.
    continuation_ttl: float = 600.0
    max_nodes_per_read: int = 1000
    #: Samples read from the store at a time: a raw read's chunk, a processed read's group.
    read_chunk: int = 100_000
    #: Processing intervals one ReadProcessed may ask for.
    max_intervals: int = 1_000_000


def _result(status: int, data: object = None) -> ua.HistoryReadResult:
    result = ua.HistoryReadResult()
    result.StatusCode = ua.StatusCode(ua.UInt32(status))
    result.HistoryData = data if data is not None else ua.ExtensionObject()
    return result


_DATA_TIMESTAMPS: Final = (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both)


class HistoryService:
    """asyncua's ``history_manager``, answering HistoryRead from PlantGuard's store.

    Build it with :func:`install_history`.  Store reads run in worker threads, so a
    long read does not stall the server's other sessions.
    """

    def __init__(
        self,
        server: Server,
        store: Store,
        site: Site,
        ns: int,
        *,
        conditions: Mapping[str, ConditionInfo],
        alarms: AlarmManager,
        limits: HistoryLimits | None = None,
    ) -> None:
        self.server = server
        self.store = store
        self.limits = limits or HistoryLimits()
        self._points = _PointIndex(site, ns)
        self._conditions = conditions
        self._journal = _Journal(conditions, alarms)
        self._is_subtype = _subtype_checker(server)
        self._continuations = _Continuations(
            self.limits.max_continuation_points,
            self.limits.max_held_samples,
            self.limits.continuation_ttl,
        )
        self._notifiers: dict[ua.NodeId, frozenset[str]] = {}
        self._notifiers_of = -1

    # asyncua's HistoryManager interface ---------------------------------------------------------

    async def init(self) -> None:
        """Nothing to prepare: the store is open (asyncua calls this from ``Server.init``)."""

    async def stop(self) -> None:
        self._continuations.clear()

    def update_history(self, params: ua.HistoryUpdateParameters) -> list[ua.HistoryUpdateResult]:
        """History is what devices reported: every update is refused (asyncua calls this
        without awaiting it)."""
        refused = ua.StatusCode(ua.UInt32(StatusCodes.BadHistoryOperationUnsupported))
        return [ua.HistoryUpdateResult(StatusCode=refused) for _ in params.HistoryUpdateDetails]

    async def read_history(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        """The HistoryRead service; a ServiceError becomes the request's ServiceFault."""
        items = list(params.NodesToRead)
        self._check(params, items)
        if params.ReleaseContinuationPoints:
            for item in items:
                if item.ContinuationPoint:
                    self._continuations.release(bytes(item.ContinuationPoint))
            return [_result(_GOOD) for _ in items]
        results = []
        for n, item in enumerate(items):
            try:
                results.append(await self._read_one(params.HistoryReadDetails, item, n))
            except Exception:
                log.exception("HistoryRead of %s failed", item.NodeId.to_string())
                results.append(_result(StatusCodes.BadInternalError))
        return results

    def _check(self, params: ua.HistoryReadParameters, items: list[ua.HistoryReadValueId]) -> None:
        """Refuse a request as a whole (Part 4 §5.10.3, Part 11 §4.3)."""
        if not items:
            raise ServiceError(StatusCodes.BadNothingToDo)
        if len(items) > self.limits.max_nodes_per_read:
            raise ServiceError(StatusCodes.BadTooManyOperations)
        details = params.HistoryReadDetails
        if isinstance(details, ua.ReadProcessedDetails) and len(details.AggregateType) != len(
            items
        ):
            raise ServiceError(StatusCodes.BadAggregateListMismatch)
        is_data = isinstance(details, ua.ReadRawModifiedDetails | ua.ReadProcessedDetails)
        if is_data and params.TimestampsToReturn not in _DATA_TIMESTAMPS:
            raise ServiceError(StatusCodes.BadTimestampsToReturnInvalid)

    # dispatch -------------------------------------------------------------------------------------

    async def _read_one(
        self, details: Any, item: ua.HistoryReadValueId, n: int
    ) -> ua.HistoryReadResult:
        if item.ContinuationPoint:
            cursor = self._continuations.take(bytes(item.ContinuationPoint))
            if cursor is None or not self._continues(cursor, details, item.NodeId):
                return _result(StatusCodes.BadContinuationPointInvalid)
            if isinstance(cursor, _RawCursor):
                return await self._raw_page(cursor)
            if isinstance(cursor, _ProcessedCursor):
                return await self._processed_page(cursor)
            return await self._event_page(cursor)
        if isinstance(details, ua.ReadEventDetails):
            return await self._read_events(details, item.NodeId)
        point = self._points.point(item.NodeId)
        if point is None:
            return _result(self._unsupported(item.NodeId))
        if isinstance(details, ua.ReadRawModifiedDetails) and not details.IsReadModified:
            return await self._read_raw(details, item.NodeId, point)
        if isinstance(details, ua.ReadProcessedDetails):
            return await self._read_processed(details, item.NodeId, point, n)
        return _result(StatusCodes.BadHistoryOperationUnsupported)

    def _unsupported(self, node_id: ua.NodeId) -> int:
        """A node that exists but has no such history, or one that does not exist."""
        if node_id in self.server.iserver.aspace:
            return StatusCodes.BadHistoryOperationUnsupported
        return StatusCodes.BadNodeIdUnknown

    @staticmethod
    def _continues(cursor: _Cursor, details: Any, node_id: ua.NodeId) -> bool:
        """A continuation point is valid for the same node and kind of read only."""
        if isinstance(cursor, _RawCursor):
            return cursor.node == node_id and isinstance(details, ua.ReadRawModifiedDetails)
        if isinstance(cursor, _ProcessedCursor):
            return cursor.node == node_id and isinstance(details, ua.ReadProcessedDetails)
        return cursor.notifier == node_id and isinstance(details, ua.ReadEventDetails)

    # data ------------------------------------------------------------------------------------------

    async def _read_raw(
        self, details: ua.ReadRawModifiedDetails, node_id: ua.NodeId, point: Point
    ) -> ua.HistoryReadResult:
        query = _RawQuery.of(details)
        if query is None:
            return _result(StatusCodes.BadInvalidArgument)
        page = self.limits.max_return_data_values
        if query.pages and query.count:
            page = min(page, query.count)
        cursor = await asyncio.to_thread(_raw_cursor, self.store, point, query, node_id, page)
        return await self._raw_page(cursor)

    async def _raw_page(self, cursor: _RawCursor) -> ua.HistoryReadResult:
        """One page of a raw read, and a continuation point for the rest."""

        def page() -> ua.ExtensionObject:
            values = _raw_page(self.store, cursor, self.limits.read_chunk)
            return _history_data(values, cursor.variant)

        result = _result(_GOOD, await asyncio.to_thread(page))
        if cursor.more():
            result.ContinuationPoint = self._continuations.add(cursor)
        return result

    async def _read_processed(
        self, details: ua.ReadProcessedDetails, node_id: ua.NodeId, point: Point, n: int
    ) -> ua.HistoryReadResult:
        query = _ProcessedQuery.of(details, n, self.limits.max_intervals)
        if isinstance(query, int):
            return _result(query)
        series = await asyncio.to_thread(
            _processed_values, self.store, point.id, query, self.limits.read_chunk
        )
        page = self.limits.max_return_data_values
        cursor = _ProcessedCursor(node_id, series, query.variant(point), page)
        return await self._processed_page(cursor)

    async def _processed_page(self, cursor: _ProcessedCursor) -> ua.HistoryReadResult:
        """One page of a processed read, and a continuation point for the rest."""
        head, cursor.rest = cursor.rest.slice(0, cursor.page), cursor.rest.slice(cursor.page)
        result = _result(_GOOD, await asyncio.to_thread(_history_data, head, cursor.variant))
        if len(cursor.rest):
            result.ContinuationPoint = self._continuations.add(cursor)
        return result

    # events -----------------------------------------------------------------------------------------

    def _alarms_of(self, node_id: ua.NodeId) -> frozenset[str] | None:
        """The alarms whose events ``node_id`` notifies (KeyError if it notifies none)."""
        if node_id == _SERVER:
            return None
        if self._notifiers_of != len(self._conditions):
            grouped: dict[ua.NodeId, set[str]] = {}
            for alarm_id, info in self._conditions.items():
                grouped.setdefault(info.device_node, set()).add(alarm_id)
            self._notifiers = {node: frozenset(ids) for node, ids in grouped.items()}
            self._notifiers_of = len(self._conditions)
        return self._notifiers[node_id]

    async def _read_events(
        self, details: ua.ReadEventDetails, node_id: ua.NodeId
    ) -> ua.HistoryReadResult:
        try:
            alarms = self._alarms_of(node_id)
        except KeyError:
            return _result(self._unsupported(node_id))
        query = _EventQuery.of(details)
        if query is None:
            return _result(StatusCodes.BadInvalidArgument)
        where = SubtypeAwareWhereClause(query.filter.WhereClause, self._is_subtype)
        remaining = None if query.pages or not query.count else query.count
        cursor = _EventCursor(node_id, alarms, query, where, remaining)
        return await self._event_page(cursor)

    async def _event_page(self, cursor: _EventCursor) -> ua.HistoryReadResult:
        """Events up to one page; the cursor moves past every row it looked at."""
        page = self.limits.max_return_event_values
        if cursor.query.count:
            page = min(page, cursor.query.count)
        if cursor.remaining is not None:
            page = min(page, cursor.remaining)
        select = cursor.query.filter.SelectClauses
        found: list[ua.HistoryEventFieldList] = []
        exhausted = False
        while len(found) < page and not exhausted:
            batch = max(2 * (page - len(found)), 100)
            rows, exhausted = await asyncio.to_thread(
                self._journal.events, self.store, cursor, batch
            )
            for position, event in rows:
                cursor.after = position
                if event is not None and cursor.where.eval(event):
                    found.append(
                        ua.HistoryEventFieldList(EventFields=event.to_event_fields(select))
                    )
                    if len(found) == page:
                        exhausted = exhausted and position == rows[-1][0]
                        break
        result = _result(_GOOD, ua.HistoryEvent(Events=found))
        if cursor.remaining is not None:
            cursor.remaining -= len(found)
        if not exhausted and (cursor.remaining is None or cursor.remaining > 0):
            result.ContinuationPoint = self._continuations.add(cursor)
        return result


# --- capabilities --------------------------------------------------------------------------------

_O = ObjectIds


def _capabilities(limits: HistoryLimits) -> dict[int, tuple[object, ua.VariantType]]:
    """Standard capability variables and what PlantGuard's history offers."""
    refused = (
        _O.HistoryServerCapabilities_InsertDataCapability,
        _O.HistoryServerCapabilities_ReplaceDataCapability,
        _O.HistoryServerCapabilities_UpdateDataCapability,
        _O.HistoryServerCapabilities_DeleteRawCapability,
        _O.HistoryServerCapabilities_DeleteAtTimeCapability,
        _O.HistoryServerCapabilities_InsertEventCapability,
        _O.HistoryServerCapabilities_ReplaceEventCapability,
        _O.HistoryServerCapabilities_UpdateEventCapability,
        _O.HistoryServerCapabilities_DeleteEventCapability,
        _O.HistoryServerCapabilities_InsertAnnotationCapability,
        _O.HistoryServerCapabilities_ServerTimestampSupported,
    )
    limits_of = _O.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData
    return {
        _O.HistoryServerCapabilities_AccessHistoryDataCapability: (True, _V.Boolean),
        _O.HistoryServerCapabilities_AccessHistoryEventsCapability: (True, _V.Boolean),
        _O.HistoryServerCapabilities_MaxReturnDataValues: (
            limits.max_return_data_values, _V.UInt32,
        ),
        _O.HistoryServerCapabilities_MaxReturnEventValues: (
            limits.max_return_event_values, _V.UInt32,
        ),
        _O.Server_ServerCapabilities_MaxHistoryContinuationPoints: (
            limits.max_continuation_points, _V.UInt16,
        ),
        limits_of: (limits.max_nodes_per_read, _V.UInt32),
        _O.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadEvents: (
            limits.max_nodes_per_read, _V.UInt32,
        ),
        **dict.fromkeys(refused, (False, _V.Boolean)),
    }  # fmt: skip


async def _advertise(server: Server, limits: HistoryLimits) -> None:
    """Set the capability variables, list the aggregates, and mark the Server object as
    a notifier with event history."""
    for node, (value, variant) in _capabilities(limits).items():
        await server.write_attribute_value(
            numeric_node(node), ua.DataValue(ua.Variant(value, variant))
        )
    for folder in (
        _O.HistoryServerCapabilities_AggregateFunctions,
        _O.Server_ServerCapabilities_AggregateFunctions,
    ):
        listed = {r.NodeId for r in server.iserver.aspace[numeric_node(folder)].references}
        for aggregate in AGGREGATES:
            if numeric_node(aggregate) not in listed:
                await server.get_node(numeric_node(folder)).add_reference(
                    numeric_node(aggregate), _O.Organizes
                )
    notifier = await server.get_node(_SERVER).read_attribute(AttributeIds.EventNotifier)
    current = notifier.Value.Value if notifier.Value is not None else 0
    bits = int(current or 0) | 1 << ua.EventNotifier.HistoryRead
    await server.write_attribute_value(
        _SERVER, ua.DataValue(ua.Variant(bits, _V.Byte)), AttributeIds.EventNotifier
    )


async def install_history(
    server: Server,
    store: Store,
    site: Site,
    ns: int,
    *,
    conditions: Mapping[str, ConditionInfo],
    alarms: AlarmManager,
    limits: HistoryLimits | None = None,
) -> HistoryService:
    """Serve HistoryRead of ``server`` from ``store`` and advertise it.

    ``conditions`` maps alarm ids to their conditions (read at each event read, so
    it may be filled later); ``alarms`` gives the definitions and policy live events
    use.  Call after ``server.init()`` (which initialises asyncua's own history
    manager, replaced here) and before ``server.start()``.
    """
    service = HistoryService(
        server, store, site, ns, conditions=conditions, alarms=alarms, limits=limits
    )
    server.iserver.history_manager = service  # type: ignore[assignment]
    await _advertise(server, service.limits)
    return service
