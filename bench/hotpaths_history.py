"""History hot paths against the plain driver under them, side by side in one run.

Three rows, each PlantGuard and its floor interleaved, ``repeats`` times:

* **history write to SQLite, rows/s** — :meth:`Store.write_history` of one flush
  (numpy arrays in) against plain ``sqlite3`` ``executemany`` of the same arrays
  (``tolist()`` + ``zip``) into a file with the same table, indexes and settings
  (WAL, ``synchronous``, foreign keys enforced, page cache: read from the store's
  own connection), one transaction each;
* **history write to PostgreSQL, rows/s** — the same flush against psycopg's
  binary ``COPY`` (``write_row`` per sample) into a plain table with the same
  columns, indexes and foreign key;
* **trend read, 86,400 rows of one point, ms** — :meth:`Store.trend` (arrays out)
  against plain ``sqlite3`` ``execute(...).fetchall()`` of the same query (rows out).

The PostgreSQL row uses ``PLANTGUARD_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) in a schema of its own,
dropped afterwards.  ``bench/hotpaths_bench.py`` calls :func:`measure`; run alone,
this module prints the rows and writes ``bench/results/hotpaths_history.json``::

    python bench/hotpaths_history.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa

from plantguard.model import Point
from plantguard.store import Store, database_url

RESULTS = Path(__file__).with_name("results") / "hotpaths_history.json"
POSTGRES_ENV = "PLANTGUARD_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: One flush: 2,000 points × 100 scans (a 10k-point site flushing every 20 s).
POINTS, SCANS = 2_000, 100
TREND_ROWS = 86_400
#: 2026-11-30 00:00 UTC plus 10 h: every sample of a flush falls in one day.
T0 = 1_764_460_800.0 + 36_000.0

Row = dict[str, object]
Batch = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]
]


def _batch(keys: list[int], start: float) -> Batch:
    rng = np.random.default_rng(17)
    n = len(keys) * SCANS
    point_keys = np.tile(np.asarray(keys, dtype=np.int64), SCANS)
    times = np.repeat(start + np.arange(SCANS, dtype=np.float64), len(keys))
    times += rng.random(n) * 0.5
    values = rng.normal(50.0, 10.0, n)
    values[::997] = np.nan  # a few Bad samples, stored as NULL
    quality = np.zeros(n, dtype=np.uint8)
    quality[::997] = 2
    return point_keys, times, values, quality


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
    }


def _row(path: str, unit: str, ours: list[float], floor: list[float], goal: str) -> Row:
    """``ratio`` is PlantGuard over floor, repeat by repeat: for a rate, below 1 is
    slower than the floor; for a time, above 1 is."""
    ratios = [o / f for o, f in zip(ours, floor, strict=True)]
    return {
        "path": path,
        "unit": unit,
        "plantguard": _stats(ours),
        "floor": _stats(floor),
        "ratio": _stats(ratios),
        "goal": goal,
    }


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _points(n: int) -> list[Point]:
    return [Point(id=f"d{i // 100}.p{i % 100}", device_id=f"d{i // 100}") for i in range(n)]


def _keys(store: Store, n: int) -> list[int]:
    keys = store.register_points(_points(n))
    return [keys[p.id] for p in _points(n)]


# --- SQLite write ----------------------------------------------------------------------


#: The settings of the store's connections, given to the floor's connection too.
_PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "cache_size")


def _sqlite_floor_db(
    path: Path, ddl: list[str], keys: list[int], pragmas: dict[str, str]
) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for name, value in pragmas.items():
        conn.execute(f"PRAGMA {name}={value}")
    for statement in ddl:
        conn.execute(statement)
    conn.executemany("INSERT INTO points (key, point_id, device_id) VALUES (?, ?, 'd')", [
        (k, f"p{k}") for k in keys
    ])  # fmt: skip
    return conn


def _pragmas(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {p: str(conn.exec_driver_sql(f"PRAGMA {p}").scalar_one()) for p in _PRAGMAS}


def _history_ddl(store: Store) -> list[str]:
    """The store's own ``CREATE`` statements for points and history (tables, indexes)."""
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('points', 'history') "
            "AND sql IS NOT NULL ORDER BY type DESC"
        ).scalars()
        return [str(r) for r in rows]


def _sqlite_write(repeats: int, tmp: Path) -> Row:
    ours: list[float] = []
    floor: list[float] = []
    for i in range(repeats):
        store = Store(str(tmp / f"w{i}.db"))
        keys = _keys(store, POINTS)
        batch = _batch(keys, T0)
        ddl = _history_ddl(store)
        raw = _sqlite_floor_db(tmp / f"f{i}.db", ddl, keys, _pragmas(store))
        n = batch[0].size

        def plain(raw: sqlite3.Connection = raw, batch: Batch = batch) -> None:
            k, t, v, q = batch
            raw.execute("BEGIN")
            raw.executemany(
                "INSERT INTO history (point_key, time, value, quality) VALUES (?, ?, ?, ?)",
                zip(
                    k.tolist(),
                    t.tolist(),
                    [None if math.isnan(x) else x for x in v.tolist()],
                    q.tolist(),
                    strict=True,
                ),
            )
            raw.execute("COMMIT")

        def write(store: Store = store, batch: Batch = batch) -> None:
            store.write_history(*batch)

        if i % 2:
            floor.append(n / _timed(plain))
            ours.append(n / _timed(write))
        else:
            ours.append(n / _timed(write))
            floor.append(n / _timed(plain))
        raw.close()
        store.close()
    return _row(
        "history write to SQLite, rows/s",
        "rows/s",
        ours,
        floor,
        "≥ 0.8× sqlite3 executemany",
    )


# --- PostgreSQL write ------------------------------------------------------------------


@contextmanager
def _pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema: (store URL with its search_path, the schema's name)."""
    base = database_url(os.environ.get(POSTGRES_ENV, DEFAULT_URL))
    schema = f"plantguard_bench_history_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}", schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _psycopg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


_FLOOR_TABLE = """
CREATE TABLE floor_history (
    point_key INTEGER NOT NULL REFERENCES points (key),
    time DOUBLE PRECISION NOT NULL,
    value DOUBLE PRECISION,
    quality SMALLINT NOT NULL
);
CREATE INDEX floor_history_point_time ON floor_history (point_key, time);
CREATE INDEX floor_history_time ON floor_history (time);
"""


def _pg_write(repeats: int) -> Row:
    ours: list[float] = []
    floor: list[float] = []
    with _pg_schema() as (url, schema):
        store = Store(url)
        keys = _keys(store, POINTS)
        raw = psycopg.connect(_psycopg_dsn(url.split("?")[0]), autocommit=True)
        try:
            raw.execute(f'SET search_path TO "{schema}"')
            raw.execute(_FLOOR_TABLE)
            for i in range(repeats):
                # a new hour each repeat: the same partition (day), fresh rows
                batch = _batch(keys, T0 + 3_600.0 * i)
                n = batch[0].size
                store.write_history(*_batch(keys[:1], T0 - 60.0))  # warm: day's partition

                def plain(batch: Batch = batch) -> None:
                    k, t, v, q = batch
                    with raw.transaction(), raw.cursor() as cur:
                        statement = (
                            "COPY floor_history (point_key, time, value, quality) "
                            "FROM STDIN (FORMAT BINARY)"
                        )
                        with cur.copy(statement) as copy:
                            copy.set_types(["int4", "float8", "float8", "int2"])
                            values = [None if math.isnan(x) else x for x in v.tolist()]
                            for row in zip(k.tolist(), t.tolist(), values, q.tolist(), strict=True):
                                copy.write_row(row)

                def write(batch: Batch = batch) -> None:
                    store.write_history(*batch)

                if i % 2:
                    floor.append(n / _timed(plain))
                    ours.append(n / _timed(write))
                else:
                    ours.append(n / _timed(write))
                    floor.append(n / _timed(plain))
        finally:
            raw.close()
            store.close()
    return _row(
        "history write to PostgreSQL, rows/s",
        "rows/s",
        ours,
        floor,
        "≥ 0.8× psycopg binary COPY",
    )


# --- trend read --------------------------------------------------------------------------

_TREND_SQL = (
    "SELECT time, value, quality FROM history "
    "WHERE point_key = ? AND time >= ? AND time < ? ORDER BY time"
)


def _trend_read(repeats: int, tmp: Path) -> Row:
    store = Store(str(tmp / "trend.db"))
    keys = _keys(store, 3)
    for j, key in enumerate(keys):  # three points, a day of 1 Hz samples each
        times = T0 + np.arange(TREND_ROWS, dtype=np.float64)
        values = np.sin(times / 600.0) * 10.0 + j
        values[::5_000] = np.nan
        store.write_history(
            np.full(TREND_ROWS, key, dtype=np.int64),
            times,
            values,
            np.zeros(TREND_ROWS, dtype=np.uint8),
        )
    point_id = _points(3)[1].id
    end = T0 + TREND_ROWS
    raw = sqlite3.connect(tmp / "trend.db")
    ours: list[float] = []
    floor: list[float] = []

    def plain() -> None:
        rows = raw.execute(_TREND_SQL, (keys[1], T0, end)).fetchall()
        assert len(rows) == TREND_ROWS

    def pg() -> None:
        trend = store.trend(point_id, T0, end)
        assert len(trend) == TREND_ROWS

    pg()
    plain()  # warm both: the file in the page cache
    for i in range(repeats):
        if i % 2:
            floor.append(_timed(plain) * 1e3)
            ours.append(_timed(pg) * 1e3)
        else:
            ours.append(_timed(pg) * 1e3)
            floor.append(_timed(plain) * 1e3)
    raw.close()
    store.close()
    return _row(
        "trend read, 86,400 rows of one point, ms",
        "ms",
        ours,
        floor,
        "≤ 1.3× sqlite3 fetchall",
    )


def measure(repeats: int = 3) -> list[dict[str, object]]:
    """The three history rows, PlantGuard and floor interleaved, ``repeats`` each."""
    with tempfile.TemporaryDirectory(prefix="plantguard-bench-history-") as tmp:
        return [
            _sqlite_write(repeats, Path(tmp)),
            _pg_write(repeats),
            _trend_read(repeats, Path(tmp)),
        ]


def _show(rows: list[Row]) -> None:
    for row in rows:
        ours, floor, ratio = row["plantguard"], row["floor"], row["ratio"]
        assert isinstance(ours, dict)
        assert isinstance(floor, dict)
        assert isinstance(ratio, dict)
        print(
            f"{row['path']}: PlantGuard {ours['min']:,.1f} / {ours['median']:,.1f} / "
            f"{ours['max']:,.1f}  floor {floor['min']:,.1f} / {floor['median']:,.1f} / "
            f"{floor['max']:,.1f}  ratio {ratio['median']:.2f} ({ratio['min']:.2f}–"
            f"{ratio['max']:.2f})  goal {row['goal']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = measure(args.repeats)
    _show(rows)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
