"""History in and out of the store: one statement per flush in one transaction, and
trends read back exactly — NaN as NULL, infinities kept, quality, order.

On a real SQLite file always, and on the real PostgreSQL server with
``PLANTGUARD_TEST_POSTGRES_URL`` set (``store_target``): there both the few-rows
``INSERT`` and the binary ``COPY`` path are written and read back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from plantguard.model import Point
from plantguard.store import Store
from plantguard.store import store as store_module
from plantguard.store.history_pg import COPY_MIN_ROWS
from plantguard.store.history_sqlite import _RANGE
from plantguard.store.samples import rows_of

T0 = 1_764_460_800.0 + 3_600.0


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = Store(store_target)
    yield s
    s.close()


def _samples(n: int, keys: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = np.tile(np.asarray(keys, dtype=np.int64), n)
    t = np.repeat(T0 + np.arange(float(n)), len(keys))
    v = np.sin(np.arange(k.size, dtype=np.float64)) * 1e3
    v[::7] = np.nan
    v[3] = math.inf
    v[5] = -math.inf
    q = (np.arange(k.size) % 3).astype(np.uint8)
    return k, t, v, q


@pytest.mark.parametrize("scans", [2, COPY_MIN_ROWS])  # an INSERT; a COPY on PostgreSQL
def test_a_batch_reads_back_exactly(store: Store, scans: int) -> None:
    ids = ["d.a", "d.b", "d.c"]
    keys = store.register_points([Point(id=i, device_id="d") for i in ids])
    k, t, v, q = _samples(scans, [keys[i] for i in ids])
    assert store.write_history(k, t, v, q) == k.size
    assert store.history_count() == k.size
    for j, point in enumerate(ids):
        trend = store.trend(point, T0, T0 + scans)
        np.testing.assert_array_equal(trend.time, t[j::3])
        np.testing.assert_array_equal(trend.value, v[j::3])  # NaN where NaN, ±inf kept
        np.testing.assert_array_equal(trend.quality, q[j::3])
        assert trend.time.dtype == np.float64
        assert trend.quality.dtype == np.uint8
    later = store.trend("d.a", T0 + 1.0, include_previous=True)
    assert later.time.tolist() == [T0 + float(i) for i in range(scans)]
    assert store.write_history(k[:0], t[:0], v[:0], q[:0]) == 0


def test_an_unknown_point_or_empty_period_reads_as_empty_arrays(store: Store) -> None:
    keys = store.register_points([Point(id="d.a", device_id="d")])
    k, t, v, q = _samples(10, [keys["d.a"]])
    store.write_history(k, t, v, q)
    for trend in (
        store.trend("d.none"),
        store.trend("d.a", T0 + 100.0),
        store.trend("d.a", 0.0, T0),
        store.trend("d.none", include_previous=True),
    ):
        assert len(trend) == 0
        assert trend.value.dtype == np.float64
        assert trend.quality.dtype == np.uint8
    previous = store.trend("d.a", T0 + 100.0, include_previous=True)
    assert previous.time.tolist() == [T0 + 9.0]


def test_a_flush_is_one_insert_in_one_transaction_on_sqlite(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "one.db"))
    keys = store.register_points([Point(id=f"d.p{i}", device_id="d") for i in range(50)])
    k, t, v, q = _samples(40, list(keys.values()))
    heard: list[tuple[str, bool]] = []
    commits: list[object] = []

    def listen(*args: object) -> None:
        heard.append((str(args[2]), bool(args[5])))

    def committed(conn: object) -> None:
        commits.append(conn)

    sa.event.listen(store.engine, "before_cursor_execute", listen)
    sa.event.listen(store.engine, "commit", committed)
    try:
        store.write_history(k, t, v, q)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listen)
        sa.event.remove(store.engine, "commit", committed)
    assert heard == [
        ("INSERT INTO history (point_key, time, value, quality) VALUES (?, ?, ?, ?)", True)
    ]
    assert len(commits) == 1
    assert store.history_count() == 2_000
    store.close()


def test_rows_are_plain_tuples_with_null_for_nan() -> None:
    rows = rows_of(
        np.array([1, 2], dtype=np.int64),
        np.array([10.0, 11.0]),
        np.array([np.nan, 2.5]),
        np.array([2, 0], dtype=np.uint8),
    )
    assert rows == [(1, 10.0, None, 2), (2, 11.0, 2.5, 0)]
    assert all(type(r) is tuple for r in rows)
    assert all(type(x) in (int, float) for x in rows[1])  # no numpy scalars
    clean = rows_of(
        np.array([1], dtype=np.int64),
        np.array([1.0]),
        np.array([3.0]),
        np.array([0], dtype=np.uint8),
    )
    assert clean == [(1, 1.0, 3.0, 0)]


def test_sqlite_trend_runs_along_the_point_time_index(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "plan.db"))
    keys = store.register_points([Point(id="d.a", device_id="d")])
    store.write_history(*_samples(10, [keys["d.a"]]))
    with store.engine.connect() as conn:
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        plan = " ".join(
            str(row[-1])
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + _RANGE, ("d.a", T0, T0 + 5))
        )
    assert cache == -store_module.SQLITE_CACHE_KIB
    assert "ix_history_point_time" in plan
    assert "SCAN history" not in plan
    store.close()
