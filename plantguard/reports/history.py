"""Recorded history out of the store: point look-up, aligned tables, CSV and Parquet.

History holds one sample per change, so the value of a point at any instant is its
last sample before it.  :func:`history_table` lines several points up on one time
axis — every instant one of them changed, or a regular grid — carrying each
point's value forward; a sample of Bad quality (or NaN) leaves the cell empty
until the point's next good sample.

The CSV is exactly what ``plantguard detect fit`` / ``score`` read
(:mod:`plantguard_rules.csvdata`): a header ``time,<point>,<point>…``, the time as
ISO 8601 in UTC, numbers in the other columns, an empty cell for "no value".  So a
plant can train its models on its own history::

    plantguard history export --points tank1.level,pump1.flow --since 7d --complete \\
        --output week.csv
    plantguard detect fit --input week.csv --output tank-model.json
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import importlib
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from ..store import Store
from ..store.schema import points as points_table

__all__ = [
    "TIME_COLUMN",
    "HistoryTable",
    "ParquetUnavailable",
    "UnknownPoints",
    "check_points",
    "history_table",
    "iso_utc",
    "parquet_available",
    "parse_point_list",
    "stored_points",
    "write_csv",
    "write_parquet",
]

#: Name of the time column: one of the names ``detect``'s CSV reader recognises.
TIME_COLUMN = "time"


class UnknownPoints(ValueError):
    """Points the store has never recorded; the message names each, with close matches."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = list(unknown)
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            parts.append(f"{name!r}{hint}")
        noun = "point" if len(unknown) == 1 else "points"
        where = f"the store has {len(known)} points" if known else "the store has no points"
        super().__init__(f"unknown {noun} {'; '.join(parts)} — {where}")


class ParquetUnavailable(RuntimeError):
    """Parquet was asked for and pyarrow is not installed."""


def parse_point_list(text: str) -> list[str]:
    """``"P,Q"`` → ``["P", "Q"]``: stripped, empty names dropped, each name once."""
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if name and name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no point names in {text!r} (give them as P,Q,…)")
    return names


def stored_points(store: Store) -> dict[str, str]:
    """Every point the store knows (has a row for), with its unit."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(points_table.c.point_id, points_table.c.unit)).all()
    return {str(r.point_id): str(r.unit or "") for r in rows}


def check_points(store: Store, names: Sequence[str]) -> dict[str, str]:
    """``names`` with their units; :class:`UnknownPoints` if the store has not got them all."""
    known = stored_points(store)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownPoints(unknown, sorted(known))
    return {n: known[n] for n in names}


@dataclass(frozen=True, slots=True)
class HistoryTable:
    """Points side by side: ``values[i, j]`` is point ``columns[j]`` at ``time[i]``."""

    columns: list[str]
    time: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.time.size)


def _usable(store: Store, point: str, since: float, until: float) -> tuple[Any, Any]:
    from ..model import Quality  # here: only the CSV table needs it, not `trend`'s listing

    trend = store.trend(point, since, until, include_previous=True)
    value = trend.value.copy()
    value[trend.quality >= int(Quality.BAD)] = np.nan
    return trend.time, value


def history_table(
    store: Store,
    points: Sequence[str],
    since: float,
    until: float,
    *,
    every: float | None = None,
    complete: bool = False,
) -> HistoryTable:
    """``points`` over ``[since, until)``: a row at every instant one of them changed
    (default), or every ``every`` seconds from ``since``; values carried forward.
    ``complete`` leaves out rows with a missing value (``detect fit`` needs none)."""
    series = [_usable(store, p, since, until) for p in points]
    if every is not None:
        if not every > 0:
            raise ValueError("every must be positive")
        grid = since + every * np.arange(max(0, math.ceil((until - since) / every)))
    else:
        stamps = [t[t >= since] for t, _ in series]
        grid = np.unique(np.concatenate(stamps)) if stamps else np.empty(0)
    values = np.full((grid.size, len(points)), np.nan)
    for j, (t, v) in enumerate(series):
        if t.size == 0:
            continue
        at = np.searchsorted(t, grid, side="right") - 1
        ok = at >= 0
        values[ok, j] = v[at[ok]]
    if complete:
        keep = ~np.isnan(values).any(axis=1)
        grid, values = grid[keep], values[keep]
    return HistoryTable(list(points), grid.astype(np.float64), values)


def iso_utc(t: float) -> str:
    """``2026-01-05T08:00:00.250000+00:00``: what ``datetime.fromisoformat`` reads back."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="microseconds")


def write_csv(table: HistoryTable, out: TextIO) -> int:
    """The table as CSV (``time`` in ISO 8601 UTC, then one column per point); returns rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([TIME_COLUMN, *table.columns])
    for t, row in zip(table.time.tolist(), table.values.tolist(), strict=True):
        writer.writerow([iso_utc(t), *("" if math.isnan(v) else repr(v) for v in row)])
    return len(table)


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_parquet(table: HistoryTable, path: Path) -> int:
    """The table as a Parquet file: ``time`` (timestamp, µs, UTC) and a float64 column per
    point (null where the CSV is empty).  Needs pyarrow (``pip install pyarrow``)."""
    if not parquet_available():
        raise ParquetUnavailable(
            "Parquet output needs pyarrow, which is not installed: "
            "pip install 'plantguard[parquet]' (or pip install pyarrow), or use --format csv"
        )
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    micros = np.round(table.time * 1e6).astype(np.int64)
    columns = {TIME_COLUMN: pa.array(micros, type=pa.timestamp("us", tz="UTC"))}
    for j, name in enumerate(table.columns):
        column = table.values[:, j]
        columns[name] = pa.array(column, type=pa.float64(), mask=np.isnan(column))
    pq.write_table(pa.table(columns), str(path))
    return len(table)
