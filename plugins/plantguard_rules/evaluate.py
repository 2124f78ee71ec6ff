"""Judging flags against labelled incidents: F1, false and missed alarms, delays.

A plant that has labelled some of its own incidents can measure a detector on
them the way the detection benchmarks do (``plantguard detect evaluate``):
point-wise counts — every row flagged or not, faulty or not — give

* F1 = 2·TP / (2·TP + FP + FN), the balance of the two errors;
* FAR = FP / (FP + TN), the share of normal rows that raised an alarm;
* MAR = FN / (FN + TP), the share of faulty rows that did not;

and per labelled episode (a run of faulty rows) whether it was flagged at all
and the *detection delay*: rows from its first row to its first flag.  Counts
add over files (:meth:`Evaluation.pooled`), which is how SKAB's leaderboard
pools them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .csvdata import TIME_COLUMNS, CsvError

__all__ = [
    "Episode",
    "Evaluation",
    "episodes",
    "evaluate",
    "read_flags",
    "read_labels",
]

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class Episode:
    """A labelled run of faulty rows ``[start, end)`` and how it was detected."""

    start: int
    end: int
    delay: int | None  # rows from start to the first flag inside it (None: never flagged)


@dataclass(frozen=True, slots=True)
class Evaluation:
    tp: int
    fp: int
    tn: int
    fn: int
    episodes: tuple[Episode, ...] = ()
    #: runs of flags that touch no labelled row
    false_alarm_episodes: int = 0

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)

    @property
    def far(self) -> float:
        return self.fp / max(self.fp + self.tn, 1)

    @property
    def mar(self) -> float:
        return self.fn / max(self.fn + self.tp, 1)

    @property
    def median_delay(self) -> float | None:
        found = [e.delay for e in self.episodes if e.delay is not None]
        return float(np.median(found)) if found else None

    @staticmethod
    def pooled(parts: Sequence[Evaluation]) -> Evaluation:
        """Counts summed over files (episodes kept, with their own file's rows)."""
        return Evaluation(
            sum(p.tp for p in parts),
            sum(p.fp for p in parts),
            sum(p.tn for p in parts),
            sum(p.fn for p in parts),
            tuple(e for p in parts for e in p.episodes),
            sum(p.false_alarm_episodes for p in parts),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "f1": self.f1,
            "far": self.far,
            "mar": self.mar,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "median_delay_rows": self.median_delay,
            "false_alarm_episodes": self.false_alarm_episodes,
            "episodes": [
                {"start": e.start, "end": e.end, "delay_rows": e.delay} for e in self.episodes
            ],
        }


def episodes(labels: BoolArray) -> list[tuple[int, int]]:
    """Runs of true rows as ``[start, end)``."""
    padded = np.concatenate([[False], labels.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def evaluate(flags: BoolArray, labels: BoolArray, *, skip: int = 0) -> Evaluation:
    """Point-wise counts and per-episode delays of ``flags`` against ``labels``,
    from row ``skip`` on (episodes keep their row numbers in the whole file)."""
    flags, labels = flags.astype(bool)[skip:], labels.astype(bool)[skip:]
    if flags.shape != labels.shape:
        raise ValueError(f"{flags.size} flags against {labels.size} labels")
    found = []
    for a, b in episodes(labels):
        hit = np.flatnonzero(flags[a:b])
        found.append(Episode(a + skip, b + skip, int(hit[0]) if hit.size else None))
    false_runs = sum(not labels[a:b].any() for a, b in episodes(flags))
    return Evaluation(
        int(np.sum(flags & labels)),
        int(np.sum(flags & ~labels)),
        int(np.sum(~flags & ~labels)),
        int(np.sum(~flags & labels)),
        tuple(found),
        false_runs,
    )


def _binary(path: Path, line: int, column: str, text: str) -> bool:
    """A 0/1 cell (``1.0`` and the like too)."""
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):
        what = repr(value) if value else "an empty cell"
        raise CsvError(f"{path}: line {line}, column {column!r}: {what} is not 0 or 1")
    return number == 1.0


def _rows(path: Path) -> list[list[str]]:
    """The file's rows, ``,`` or ``;`` separated as its header is (as ``detect`` reads)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc.strerror}") from exc
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CsvError(f"{path}: empty file (expected a header row)")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    return list(csv.reader(lines, delimiter=delimiter))


def _column(path: Path, rows: list[list[str]], column: str) -> BoolArray:
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise CsvError(f"{path}: missing column {column!r}")
    col = header.index(column)
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= col:
            raise CsvError(f"{path}: line {line}: no {column!r} field")
        out.append(_binary(path, line, column, row[col]))
    return np.array(out, dtype=bool)


def read_flags(path: Path) -> BoolArray:
    """The ``flag`` column of a ``detect score`` output."""
    rows = _rows(path)
    if "flag" not in [h.strip() for h in rows[0]]:
        raise CsvError(f"{path}: line 1: no 'flag' column (expected a detect score output)")
    return _column(path, rows, "flag")


def read_labels(path: Path, column: str | None = None) -> BoolArray:
    """A 0/1 label column: ``column``, or the file's only column besides time.
    Other columns may hold anything (text, ids): only the label column is read."""
    rows = _rows(path)
    if column is None:
        data = [h.strip() for h in rows[0] if h.strip().lower() not in TIME_COLUMNS]
        if len(data) != 1:
            raise CsvError(
                f"{path}: {len(data)} columns ({', '.join(data)}): "
                "name the label column with --label-column"
            )
        column = data[0]
    return _column(path, rows, column)
