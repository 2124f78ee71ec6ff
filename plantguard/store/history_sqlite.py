"""History samples in and out of SQLite through the sqlite3 module's cursor.

In: one prepared ``INSERT`` executed for a list of plain tuples (:func:`rows_of`),
through SQLAlchemy's ``exec_driver_sql`` — which hands the list to the driver's
``executemany`` as it is — in the caller's transaction.

Out: the cursor's rows are flattened into one float64 array as SQLite steps
(``np.fromiter`` over the cursor), never held as a list of row objects.  SQLite has
no NaN, so the query returns the value as ``ifnull(value, 0.0)`` and folds "value
is NULL" into the quality column (+256); both are undone on the array.  (A ``CASE``
costs SQLite less per row than the arithmetic ``quality + 256 * (value IS NULL)``.)
"""

from __future__ import annotations

import itertools
import sqlite3

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from .samples import insert_rows

__all__ = ["insert_rows", "read_trend"]

_KEY = "(SELECT key FROM points WHERE point_id = ?)"
_COLUMNS = (
    "SELECT time, ifnull(value, 0.0), "
    "CASE WHEN value IS NULL THEN quality + 256 ELSE quality END FROM history"
)
_RANGE = f"{_COLUMNS} WHERE point_key = {_KEY} AND time >= ? AND time < ? ORDER BY time"
_PREVIOUS = f"{_COLUMNS} WHERE point_key = {_KEY} AND time < ? ORDER BY time DESC LIMIT 1"
_NULL = 256

Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]


def read_trend(
    conn: sa.Connection, point_id: str, start: float, end: float, *, previous: bool
) -> Arrays:
    """``(time, value, quality)`` of ``point_id`` with ``start <= time < end``, by time;
    with ``previous``, the last sample before ``start`` first."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    cursor = driver.cursor()
    try:
        flat = _fetch(cursor, _RANGE, (point_id, start, end))
        if previous:
            flat = np.concatenate([_fetch(cursor, _PREVIOUS, (point_id, start)), flat])
    finally:
        cursor.close()
    rows = flat.reshape(-1, 3)
    flags = rows[:, 2].astype(np.uint16)
    value = rows[:, 1].copy()
    value[flags >= _NULL] = np.nan
    return rows[:, 0].copy(), value, (flags & 0xFF).astype(np.uint8)


def _fetch(cursor: sqlite3.Cursor, sql: str, params: tuple[object, ...]) -> npt.NDArray[np.float64]:
    cursor.execute(sql, params)
    return np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64)
