"""History samples in and out of PostgreSQL as binary ``COPY`` streams built by numpy.

A flush goes in as one ``COPY history FROM STDIN (FORMAT BINARY)`` whose bytes
numpy lays out in one pass over the arrays — no Python object per sample, no
per-row call — and a trend comes out as ``COPY (SELECT …) TO STDOUT (FORMAT
BINARY)`` read straight into arrays.  PostgreSQL's binary copy format is a header,
then per row a field count and each field as length + big-endian bytes (length -1
for NULL), then a trailer; NaN values are stored as NULL, as on SQLite.

A batch smaller than :data:`COPY_MIN_ROWS` goes in as one ``INSERT`` executed for
its rows instead: for a handful of samples that is the same single round trip
without the copy protocol's extra exchange.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from .samples import insert_rows

__all__ = [
    "COPY_MIN_ROWS",
    "copy_in",
    "copy_out",
    "decode_trend",
    "encode_rows",
    "insert_rows",
    "read_trend",
]

#: Batches from this size on go through ``COPY``.
COPY_MIN_ROWS = 64

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # flags, no extension
_TRAILER = b"\xff\xff"

#: One history row in: 4 fields, point_key int4, time float8, value float8, quality int2.
_ROW_IN = np.dtype(
    [
        ("fields", ">i2"),
        ("key_len", ">i4"),
        ("key", ">i4"),
        ("time_len", ">i4"),
        ("time", ">f8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
    ]
)
_VALUE_AT = _ROW_IN.fields["value"][1]  # type: ignore[index]

#: One trend row out: 3 fields, time float8, value float8 (NULL read as NaN), quality int2.
_ROW_OUT = np.dtype(
    [
        ("fields", ">i2"),
        ("time_len", ">i4"),
        ("time", ">f8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
    ]
)

_KEY = "(SELECT key FROM points WHERE point_id = %s)"
_COLUMNS = "SELECT time, coalesce(value, 'NaN'::float8), quality FROM history"
_RANGE = f"{_COLUMNS} WHERE point_key = {_KEY} AND time >= %s AND time < %s ORDER BY time"
_PREVIOUS = f"{_COLUMNS} WHERE point_key = {_KEY} AND time < %s ORDER BY time DESC LIMIT 1"

Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]

_COPY_IN = "COPY history (point_key, time, value, quality) FROM STDIN (FORMAT BINARY)"


def encode_rows(
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> bytes:
    """The binary ``COPY`` stream of these samples, header and trailer included."""
    rows = np.empty(keys.size, dtype=_ROW_IN)
    rows["fields"] = 4
    rows["key_len"] = 4
    rows["key"] = keys
    rows["time_len"] = 8
    rows["time"] = times
    rows["value_len"] = 8
    rows["value"] = values
    rows["quality_len"] = 2
    rows["quality"] = quality
    null = np.isnan(values)
    if not null.any():
        return _HEADER + rows.tobytes() + _TRAILER
    # A NULL is its length (-1) and no bytes: leave those rows' 8 value bytes out.
    rows["value_len"][null] = -1
    keep = np.ones((keys.size, _ROW_IN.itemsize), dtype=bool)
    keep[null, _VALUE_AT : _VALUE_AT + 8] = False
    return _HEADER + rows.view(np.uint8).reshape(keys.size, -1)[keep].tobytes() + _TRAILER


def copy_in(
    conn: sa.Connection,
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> None:
    """Write the samples in ``conn``'s transaction: ``COPY``, or ``INSERT`` for a few."""
    if keys.size < COPY_MIN_ROWS:
        insert_rows(conn, keys, times, values, quality)
        return
    data = encode_rows(keys, times, values, quality)
    driver = conn.connection.driver_connection
    with (
        _as_sqlalchemy_errors(conn, _COPY_IN),
        driver.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(_COPY_IN) as copy,
    ):
        copy.write(data)


@contextlib.contextmanager
def _as_sqlalchemy_errors(conn: sa.Connection, statement: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them for statements it runs itself
    (``IntegrityError``, ``OperationalError`` …), so callers handle one kind."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def read_trend(
    conn: sa.Connection, point_id: str, start: float, end: float, *, previous: bool
) -> Arrays:
    """``(time, value, quality)`` of ``point_id`` with ``start <= time < end``, by time;
    with ``previous``, the last sample before ``start`` first.

    The bounds are literals in the statement (``COPY`` takes no parameters; psycopg
    quotes them), so the planner prunes the partitions outside them.
    """
    t, v, q = copy_out(conn, _RANGE, (point_id, start, end))
    if not previous:
        return t, v, q
    pt, pv, pq = copy_out(conn, _PREVIOUS, (point_id, start))
    return np.concatenate([pt, t]), np.concatenate([pv, v]), np.concatenate([pq, q])


def copy_out(conn: sa.Connection, select_sql: str, params: tuple[object, ...]) -> Arrays:
    """``(time, value, quality)`` arrays of ``select_sql`` (which selects exactly those
    three, the value as ``coalesce(value, 'NaN')``), through a binary ``COPY … TO``."""
    driver = conn.connection.driver_connection
    statement = f"COPY ({select_sql}) TO STDOUT (FORMAT BINARY)"
    with (
        _as_sqlalchemy_errors(conn, statement),
        driver.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(statement, params) as copy,
    ):
        data = b"".join(bytes(chunk) for chunk in copy)
    return decode_trend(data)


def decode_trend(data: bytes) -> Arrays:
    """Arrays from a binary ``COPY`` stream of (float8, float8 not NULL, int2) rows."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    start = 19 + extension
    count = (len(data) - start - len(_TRAILER)) // _ROW_OUT.itemsize
    rows = np.frombuffer(data, dtype=_ROW_OUT, count=count, offset=start)
    if count and not (
        (rows["fields"] == 3).all()
        and (rows["value_len"] == 8).all()
        and (rows["quality_len"] == 2).all()
    ):
        raise ValueError("unexpected row layout in the COPY stream")
    return (
        rows["time"].astype(np.float64),
        rows["value"].astype(np.float64),
        rows["quality"].astype(np.uint8),
    )
