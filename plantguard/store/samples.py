"""History samples as a driver's ``executemany`` takes them: plain tuples, NULL for NaN.

Built column-wise (one ``tolist()`` per array, one ``zip``): no dict per row, and no
Python-level check per value unless the batch has NaN values at all.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

__all__ = ["insert_rows", "rows_of"]


def rows_of(
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> list[tuple[int, float, float | None, int]]:
    """``(point_key, time, value, quality)`` tuples; NaN values become ``None`` (NULL)."""
    null = np.isnan(values)
    if null.any():
        shown = values.astype(object)
        shown[null] = None
        value_list = shown.tolist()
    else:
        value_list = values.tolist()
    return list(zip(keys.tolist(), times.tolist(), value_list, quality.tolist(), strict=True))


def insert_rows(
    conn: sa.Connection,
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> None:
    """One ``INSERT`` executed for every sample, in the driver's own parameter style, through
    SQLAlchemy (its events see it): SQLite's whole path, PostgreSQL's for small batches."""
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO history (point_key, time, value, quality) VALUES ({', '.join([marker] * 4)})",
        rows_of(keys, times, values, quality),
    )
