"""Reading measurement tables from CSV for offline training and scoring.

The format ``plantguard detect`` accepts: a header row of point names, ``,`` or
``;`` separated (whichever the header uses), an optional time column named
``datetime``, ``timestamp`` or ``time``, and numbers in every other column (an
empty cell is a missing value).  Errors name the file, the line and the column,
because the person reading them has the file open in a spreadsheet.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import FloatArray

__all__ = ["TIME_COLUMNS", "CsvError", "Table", "read_table"]

TIME_COLUMNS = ("datetime", "timestamp", "time")


class CsvError(ValueError):
    """The file cannot be used; the message names where."""


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    values: FloatArray  # rows × columns, NaN where empty
    time: FloatArray | None  # seconds, when the file has a time column
    lines: list[int]  # file line of each row (1-based), for messages

    def select(self, names: Sequence[str], file: str) -> FloatArray:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise CsvError(f"{file}: missing column {', '.join(repr(m) for m in missing)}")
        idx = [self.columns.index(n) for n in names]
        out: FloatArray = self.values[:, idx]
        return out


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return dt.datetime.fromisoformat(text.strip()).timestamp()


def _header(path: Path, row: Sequence[str]) -> list[str]:
    """Column names: each present, none twice."""
    header = [h.strip() for h in row]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise CsvError(f"{path}: line 1: duplicate column {', '.join(repr(d) for d in dup)}")
    if any(not h for h in header):
        raise CsvError(f"{path}: line 1: column {header.index('') + 1} has no name")
    return header


def _number(path: Path, line_no: int, column: str, cell: str) -> float:
    """A data cell: a number, or NaN when empty."""
    cell = cell.strip()
    if not cell:
        return np.nan
    try:
        return float(cell)
    except ValueError:
        raise CsvError(
            f"{path}: line {line_no}, column {column!r}: {cell!r} is not a number"
        ) from None


def read_table(path: Path) -> Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc.strerror}") from exc
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CsvError(f"{path}: empty file (expected a header row of point names)")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = _header(path, rows[0])
    time_col = next((i for i, h in enumerate(header) if h.lower() in TIME_COLUMNS), None)
    data_cols = [i for i in range(len(header)) if i != time_col]
    values: list[list[float]] = []
    times: list[float] = []
    line_nos: list[int] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise CsvError(
                f"{path}: line {line_no}: {len(row)} fields, the header has {len(header)}"
            )
        out = [_number(path, line_no, header[i], row[i]) for i in data_cols]
        if time_col is not None:
            try:
                times.append(_parse_time(row[time_col]))
            except ValueError:
                raise CsvError(
                    f"{path}: line {line_no}, column {header[time_col]!r}: "
                    f"{row[time_col]!r} is not a time"
                ) from None
        values.append(out)
        line_nos.append(line_no)
    if not data_cols:
        raise CsvError(f"{path}: no data columns besides the time column")
    array = np.array(values, dtype=np.float64).reshape(len(values), len(data_cols))
    return Table(
        [header[i] for i in data_cols],
        array,
        np.array(times) if time_col is not None else None,
        line_nos,
    )
