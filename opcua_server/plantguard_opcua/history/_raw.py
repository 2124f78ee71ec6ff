"""ReadRaw (Part 11 §6.5.3): a point's samples in a time domain, with bounding values.

A read is a cursor: the store is read in chunks of whole instants as pages need them,
so neither a read of a year nor its continuation point holds more than a page and a
chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa
from asyncua import ua

from plantguard.model import Point
from plantguard.store import Store
from plantguard.store.schema import history

from ._nodes import POINT_VARIANTS
from ._series import Series, after, before, epoch_seconds
from ._store import bound, sample_times, start_bound, trend

__all__ = ["RawCursor", "RawQuery", "raw_cursor", "raw_page"]


@dataclass(frozen=True, slots=True)
class RawQuery:
    """A ReadRaw request for one node: at least two of start, end and count (Part 11 §6.5.3)."""

    start: float | None
    end: float | None
    count: int
    bounds: bool

    @staticmethod
    def of(details: ua.ReadRawModifiedDetails) -> RawQuery | None:
        query = RawQuery(
            epoch_seconds(details.StartTime),
            epoch_seconds(details.EndTime),
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
class RawCursor:
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
    buffer: Series

    def more(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return bool(len(self.buffer)) or self.next_at is not None or self.end_bound is not None


def raw_cursor(store: Store, point: Point, q: RawQuery, node: ua.NodeId, page: int) -> RawCursor:
    """A new raw read, with its start bound (Part 11 §4.4) already in the buffer.

    ``[start, end)`` forward; ``(end, start]`` newest first when end < start; with one
    time, onwards from the start or back from (and excluding) the end.
    """
    start, end, pid = q.start, q.end, point.id
    variant = POINT_VARIANTS[point.data_type]
    remaining = None if q.pages or not q.count else q.count
    cursor = RawCursor(
        node=node, point_id=pid, variant=variant, page=page, forward=True, next_at=None,
        limit=math.inf, end_bound=None, remaining=remaining, buffer=Series.empty(),
    )  # fmt: skip
    if start is not None and start == end:  # one instant: its values, or those around it
        cursor.buffer = trend(store, pid, start, after(start), False)
        if q.bounds and not len(cursor.buffer):
            cursor.buffer = Series.concat(
                bound(store, pid, before(start), later=False, at=start),
                bound(store, pid, after(start), later=True, at=start),
            )
        return cursor
    if start is None:
        assert end is not None
        cursor.forward, cursor.next_at, cursor.limit = False, before(end), -math.inf
        if q.bounds:
            cursor.buffer = bound(store, pid, end, later=True, at=end)
        return cursor
    cursor.forward = end is None or end > start
    cursor.next_at = start
    cursor.limit = end if end is not None else math.inf
    if q.bounds:
        cursor.buffer = start_bound(store, pid, start, forward=cursor.forward)
        cursor.end_bound = end
    return cursor


def _read_chunk(store: Store, c: RawCursor, size: int) -> None:
    """Append about ``size`` further samples of the domain to the cursor's buffer, never
    splitting the samples of one instant between chunks."""
    assert c.next_at is not None
    t, at = history.c.time, c.next_at
    within = sa.and_(t >= at, t < c.limit) if c.forward else sa.and_(t <= at, t > c.limit)
    stop = sample_times(store, c.point_id, within, descending=not c.forward, offset=size)
    if stop == at:  # more than a chunk at one instant: that instant alone
        chunk = trend(store, c.point_id, at, after(at), False)
        c.next_at = after(at) if c.forward else before(at)
    elif c.forward:
        chunk = trend(store, c.point_id, at, c.limit if stop is None else stop, False)
        c.next_at = stop
    else:
        low = c.limit if stop is None else stop
        chunk = trend(store, c.point_id, low, after(at), False)
        chunk = chunk.where(chunk.time > low).reversed()
        c.next_at = stop
    c.buffer = Series.concat(c.buffer, chunk)


def raw_page(store: Store, c: RawCursor, chunk: int) -> Series:
    """The next page of a raw read (runs in a worker thread)."""
    want = c.page if c.remaining is None else min(c.page, c.remaining)
    while len(c.buffer) < want and c.next_at is not None:
        _read_chunk(store, c, chunk)
    if c.next_at is None and c.end_bound is not None:  # the domain is read: its end bound
        end = c.end_bound
        c.buffer = Series.concat(c.buffer, bound(store, c.point_id, end, later=c.forward, at=end))
        c.end_bound = None
    head, c.buffer = c.buffer.slice(0, want), c.buffer.slice(want)
    if c.remaining is not None:
        c.remaining -= len(head)
    return head
