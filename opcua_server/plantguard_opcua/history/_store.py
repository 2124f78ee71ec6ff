"""History samples from the store as DataValue columns, and the reads ``Store.trend`` lacks.

Part 11 needs the samples next to a time (bounding values, the value an interval
starts with) and the time of the n-th sample of a range (to read in chunks of whole
instants); these are index seeks on the ``history`` table, kept here so the raw and
processed readers never read a range only to find its edge.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import sqlalchemy as sa

from plantguard.store import Store
from plantguard.store.schema import history, points

from ..quality import STATUS_CODES
from ._series import BAD_BOUND_NOT_FOUND, U32, Series, after, is_bad

__all__ = ["bound", "sample_times", "start_bound", "trend"]

#: Quality byte → StatusCode value, the same mapping live values use.
_QUALITY_STATUS: Final[U32] = np.array([code.value for code in STATUS_CODES], dtype=np.uint32)


def _point_key(point_id: str) -> Any:
    return sa.select(points.c.key).where(points.c.point_id == point_id).scalar_subquery()


def sample_times(
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


def trend(store: Store, point_id: str, start: float, end: float, previous: bool) -> Series:
    """``Store.trend`` as DataValue columns; Bad samples carry no value."""
    samples = store.trend(point_id, start, end, include_previous=previous)
    status = _QUALITY_STATUS[samples.quality]
    value = np.where(is_bad(status), np.nan, samples.value)
    return Series(samples.time, value, status)


def _sample_next_to(store: Store, point_id: str, t: float, *, later: bool) -> Series:
    """The sample nearest ``t`` on one side: at or after it (``later``), or at or before it."""
    column = history.c.time
    found = sample_times(
        store, point_id, column >= t if later else column <= t, descending=not later
    )
    if found is None:
        return Series.empty()
    instant = trend(store, point_id, found, after(found), False)
    return instant.slice(0, 1) if later else instant.last()


def bound(store: Store, point_id: str, search: float, *, later: bool, at: float) -> Series:
    """A bounding value: the sample nearest ``search`` on one side, else a BadBoundNotFound
    placeholder at ``at`` (Part 11 §4.4)."""
    found = _sample_next_to(store, point_id, search, later=later)
    return found if len(found) else Series.single(at, BAD_BOUND_NOT_FOUND)


def start_bound(store: Store, point_id: str, start: float, *, forward: bool) -> Series:
    """Nothing if a sample lies exactly at ``start`` (it is the bound, and in the domain),
    else the sample beyond it against the reading direction, else a placeholder."""
    near = _sample_next_to(store, point_id, start, later=not forward)
    if len(near) and near.time[0] == start:
        return Series.empty()
    return near if len(near) else Series.single(start, BAD_BOUND_NOT_FOUND)
