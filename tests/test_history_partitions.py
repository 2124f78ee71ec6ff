"""History partitioned by day on the real PostgreSQL server: partitions made ahead,
retention by dropping them, trend reads that touch one or two, the 0006 migration.

Runs on ``PLANTGUARD_TEST_POSTGRES_URL`` (CI, ``.ci/run``), each test in a schema
of its own; without that variable it tries the local default and skips only if
nothing answers there (with the variable set, an unreachable server fails).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from plantguard.model import Point
from plantguard.store import Store, database_url, migrate
from plantguard.store import partitions as parts
from plantguard.store.history_pg import _RANGE, COPY_MIN_ROWS, decode_trend, encode_rows

POSTGRES_ENV = "PLANTGUARD_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
DAY = 86_400.0
D0 = 20_422  # 2025-11-30
T0 = D0 * DAY


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = database_url(os.environ.get(POSTGRES_ENV, DEFAULT_URL))
    schema = f"plantguard_parts_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as err:
        admin.dispose()
        if POSTGRES_ENV in os.environ:
            raise
        pytest.skip(f"PostgreSQL not reachable at {DEFAULT_URL}: {err}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    yield s
    s.close()


class Statements:
    def __init__(self, engine: sa.Engine) -> None:
        self.sql: list[str] = []
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._heard)

    def _heard(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.sql.append(statement)

    def remove(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._heard)


def _key(store: Store, point: str = "d.p0") -> int:
    return store.register_points([Point(id=point, device_id="d")])[point]


def _write(store: Store, key: int, times: np.ndarray, values: np.ndarray | None = None) -> None:
    n = times.size
    store.write_history(
        np.full(n, key, dtype=np.int64),
        times.astype(np.float64),
        np.arange(n, dtype=np.float64) if values is None else values,
        np.zeros(n, dtype=np.uint8),
    )


def _names(store: Store) -> list[str]:
    return [p.name for p in store.history_partitions()]


def _count(store: Store, table: str = "history") -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


# --- layout ---------------------------------------------------------------------------


def test_history_is_partitioned_and_timescaledb_is_not_installed_here(store: Store) -> None:
    with store.engine.connect() as conn:
        assert parts.history_layout(conn) == "partitioned"
        assert parts.timescaledb_installed(conn) is False
        kind = conn.exec_driver_sql("SELECT relkind FROM pg_class WHERE oid = 'history'::regclass")
        assert kind.scalar_one() == "p"
    assert _names(store) == []  # partitions come with samples, not with the schema


def test_sqlite_history_is_a_plain_table(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "plain.db"))
    try:
        with store.engine.connect() as conn:
            assert parts.history_layout(conn) == "plain"
            assert parts.timescaledb_installed(conn) is False
        assert store.history_partitions() == []
    finally:
        store.close()


# --- partitions made as samples arrive --------------------------------------------------


def test_a_batch_makes_its_days_and_the_next_one_then_costs_no_statement(store: Store) -> None:
    key = _key(store)
    _write(store, key, T0 + 3_600.0 + np.arange(100.0))  # day D0, as a COPY
    assert _names(store) == ["history_p20251130", "history_p20251201"]  # and one ahead
    bounds = [(p.lo, p.hi) for p in store.history_partitions()]
    assert bounds == [(T0, T0 + DAY), (T0 + DAY, T0 + 2 * DAY)]

    heard = Statements(store.engine)
    try:
        _write(store, key, T0 + 7_200.0 + np.arange(100.0))  # same day: COPY alone
        _write(store, key, T0 + DAY + np.arange(100.0))  # the day made ahead, + one more
        creates = [s for s in heard.sql if s.lstrip().upper().startswith("CREATE")]
        assert creates == [
            "CREATE TABLE history_p20251202 PARTITION OF history "
            f"FOR VALUES FROM ({T0 + 2 * DAY!r}) TO ({T0 + 3 * DAY!r})"
        ]
    finally:
        heard.remove()
    assert _count(store, "history_p20251130") == 200
    assert _count(store, "history_p20251201") == 100


def test_a_known_day_costs_no_statement_besides_the_write(store: Store) -> None:
    key = _key(store)
    _write(store, key, T0 + np.arange(10.0))  # an INSERT (few rows); makes the partitions
    heard = Statements(store.engine)
    try:
        _write(store, key, T0 + 10.0 + np.arange(5.0))
        assert len(heard.sql) == 1
        assert heard.sql[0].startswith("INSERT INTO history")
    finally:
        heard.remove()
    assert _count(store) == 15


def test_a_batch_over_many_days_and_outside_1970_to_2199(store: Store) -> None:
    key = _key(store)
    days = np.array([D0, D0 + 100, D0 + 300], dtype=np.float64)  # sparse: a wide span
    times = np.concatenate([days * DAY + 5.0, [-86_400.0 * 3, 8.0e9]])
    _write(store, key, np.sort(times))
    names = _names(store)
    assert names[0] == "history_before"
    assert names[-1] == "history_after"
    assert names[1:-1] == [parts.day_name(int(d)) for d in days]  # not the days between
    trend = store.trend("d.p0")  # start 0: the sample before 1970 is not in it
    assert trend.time.tolist() == [*sorted(days * DAY + 5.0), 8.0e9]
    trend = store.trend("d.p0", start=-math.inf)
    assert trend.time[0] == -86_400.0 * 3
    with store.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT count(*) FROM history_before").scalar_one()
    assert before == 1


def test_two_stores_make_the_same_day_once(pg_url: str) -> None:
    first, second = Store(pg_url), Store(pg_url)
    try:
        key = _key(first)
        _write(first, key, T0 + np.arange(100.0))
        _write(second, key, T0 + 50.0 + np.arange(100.0))  # its own look-up finds them
        assert _names(second) == ["history_p20251130", "history_p20251201"]
        assert _count(first) == 200
    finally:
        first.close()
        second.close()


def test_a_partition_dropped_by_another_store_is_made_again(pg_url: str) -> None:
    writer, other = Store(pg_url), Store(pg_url)
    try:
        key = _key(writer)
        _write(writer, key, T0 + np.arange(100.0))
        assert other.purge_history(T0 + DAY) == 100  # drops the writer's day D0
        assert "history_p20251130" not in _names(writer)
        _write(writer, key, T0 + 500.0 + np.arange(100.0))  # a late batch for that day
        assert "history_p20251130" in _names(writer)
        assert _count(writer) == 100
    finally:
        writer.close()
        other.close()


# --- retention drops partitions -------------------------------------------------------------


def test_retention_drops_whole_days_and_deletes_only_in_the_cutoff_day(store: Store) -> None:
    key = _key(store)
    for day in range(3):
        _write(store, key, T0 + day * DAY + np.arange(0.0, DAY, 864.0))  # 100 per day
    assert _names(store) == [parts.day_name(D0 + d) for d in range(4)]
    heard = Statements(store.engine)
    try:
        cutoff = T0 + 2 * DAY + 8_640.0  # 10 samples into the third day
        assert store.purge_history(cutoff, chunk=1_000) == 210
    finally:
        heard.remove()
    drops = [s for s in heard.sql if s.startswith("DROP TABLE")]
    assert drops == ["DROP TABLE history_p20251130", "DROP TABLE history_p20251201"]
    deletes = [s for s in heard.sql if s.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 1
    assert _names(store) == [parts.day_name(D0 + 2), parts.day_name(D0 + 3)]
    assert store.oldest_history_time() == cutoff
    assert _count(store) == 90
    # nothing left to drop or delete: no DROP next time
    assert store.purge_history(cutoff) == 0


def test_rows_of_a_large_dropped_partition_come_from_its_statistics(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key(store)
    _write(store, key, T0 + np.arange(0.0, 1_000.0))
    _write(store, key, T0 + DAY + np.arange(0.0, 10.0))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE history_p20251130")  # small: statistics are exact
    monkeypatch.setattr(parts, "COUNT_BELOW", 500)  # 1,000 rows count as large here
    heard = Statements(store.engine)
    try:
        assert store.purge_history(T0 + DAY) == 1_000
        assert not any("count(*)" in s for s in heard.sql)
    finally:
        heard.remove()
    assert store.purge_history(T0 + 2 * DAY) == 10  # never analysed: counted
    with (
        pytest.raises(ValueError, match="not a history partition"),
        store.engine.begin() as conn,
    ):
        parts.drop_partition(conn, "points")


async def test_the_writer_holds_retention_by_dropping_days(store: Store) -> None:
    from plantguard.history import HistoryWriter
    from plantguard.model import HistorySettings, StoreSettings

    key = _key(store)
    now = T0 + 3 * DAY + 60.0
    settings = StoreSettings(history=HistorySettings(retention_days=1.0, flush_interval=1.0))
    writer = HistoryWriter(store, settings, np.array([key], dtype=np.int64), clock=lambda: now)
    for day in range(4):
        times = T0 + day * DAY + np.arange(0.0, DAY, 8_640.0)
        idx = np.zeros(times.size, dtype=np.intp)
        writer.append(idx, times, np.zeros(times.size, np.uint8), times)
    await writer.tick()
    assert writer.written == 40
    assert writer.purged == 21  # days D0 and D0+1 dropped; D0+2's sample at midnight deleted
    assert _names(store)[0] == parts.day_name(D0 + 2)
    assert store.oldest_history_time() == T0 + 2 * DAY + 8_640.0


# --- trend reads ------------------------------------------------------------------------------


def _plan(store: Store, point: str, start: float, end: float) -> str:
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        sql = psycopg.ClientCursor(raw).mogrify(_RANGE, (point, start, end))
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql))


def test_a_trend_read_touches_only_its_days(store: Store) -> None:
    key = _key(store)
    for day in range(5):
        _write(store, key, T0 + day * DAY + np.arange(0.0, DAY, 3_600.0))
    one_day = _plan(store, "d.p0", T0 + 2 * DAY + 10.0, T0 + 2 * DAY + 3_000.0)
    assert parts.day_name(D0 + 2) in one_day
    assert sum(parts.day_name(D0 + d) in one_day for d in range(6)) == 1
    across_midnight = _plan(store, "d.p0", T0 + 2 * DAY - 3_600.0, T0 + 2 * DAY + 3_600.0)
    assert sum(parts.day_name(D0 + d) in across_midnight for d in range(6)) == 2
    trend = store.trend("d.p0", T0 + 2 * DAY - 3_600.0, T0 + 2 * DAY + 3_600.0)
    assert trend.time.tolist() == [T0 + 2 * DAY - 3_600.0, T0 + 2 * DAY]


def test_copy_round_trips_nulls_infinities_and_quality(store: Store) -> None:
    key = _key(store)
    n = COPY_MIN_ROWS * 3
    times = T0 + np.arange(float(n))
    values = np.linspace(-1e6, 1e6, n)
    values[[0, 7, n - 1]] = np.nan
    values[3], values[4] = math.inf, -math.inf
    quality = (np.arange(n) % 3).astype(np.uint8)
    store.write_history(np.full(n, key, dtype=np.int64), times, values, quality)
    with store.engine.connect() as conn:
        nulls = conn.exec_driver_sql("SELECT count(*) FROM history WHERE value IS NULL")
        assert nulls.scalar_one() == 3
    trend = store.trend("d.p0", T0, T0 + n)
    np.testing.assert_array_equal(trend.time, times)
    np.testing.assert_array_equal(trend.value, values)  # NaN where NaN, inf kept
    np.testing.assert_array_equal(trend.quality, quality)
    previous = store.trend("d.p0", T0 + 10.0, T0 + 12.0, include_previous=True)
    assert previous.time.tolist() == [T0 + 9.0, T0 + 10.0, T0 + 11.0]
    assert len(store.trend("no.such.point")) == 0


def test_copy_stream_layout() -> None:
    data = encode_rows(
        np.array([7], dtype=np.int64),
        np.array([1.5]),
        np.array([np.nan]),
        np.array([2], dtype=np.uint8),
    )
    # header, a row of 4 fields with a NULL value (length -1, no bytes), trailer
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00")
    assert len(data) == 19 + (2 + 8 + 12 + 4 + 6) + 2
    assert b"\xff\xff\xff\xff" in data
    with pytest.raises(ValueError, match="not a binary COPY"):
        decode_trend(b"time,value\n")


# --- the migration ---------------------------------------------------------------------------


def _at_0005_with_rows(url: str, rows: int) -> None:
    store = Store(url, migrate_to_head=False)
    try:
        migrate.upgrade(store.engine, "0005")
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO points (point_id, device_id, unit) VALUES ('d.p0', 'd', '')"
            )
            if rows:
                conn.exec_driver_sql(
                    "INSERT INTO history SELECT 1, %(t0)s + i * 3600.0, i, 0 "
                    "FROM generate_series(0, %(n)s - 1) AS i",
                    {"t0": T0 + 600.0, "n": rows},
                )
            kind = conn.exec_driver_sql(
                "SELECT relkind FROM pg_class WHERE oid = 'history'::regclass"
            )
            assert kind.scalar_one() == "r"
    finally:
        store.close()


def test_migration_keeps_the_rows_as_one_partition_then_days_follow(pg_url: str) -> None:
    _at_0005_with_rows(pg_url, 50)  # 50 h of hourly samples: days D0 .. D0+2
    store = Store(pg_url)  # upgrades to head
    try:
        assert [(p.name, p.lo, p.hi) for p in store.history_partitions()] == [
            ("history_legacy", T0, T0 + 3 * DAY)
        ]
        assert _count(store) == 50
        trend = store.trend("d.p0")
        assert trend.time.tolist() == [T0 + 600.0 + 3_600.0 * i for i in range(50)]
        assert trend.value.tolist() == [float(i) for i in range(50)]
        key = _key(store)
        _write(store, key, T0 + 2 * DAY + 30_000.0 + np.arange(3.0))  # in the legacy range
        _write(store, key, T0 + 3 * DAY + np.arange(3.0))  # a new day: its own partition
        assert _names(store) == ["history_legacy", "history_p20251203", "history_p20251204"]
        assert _count(store, "history_legacy") == 53
        # retention: deletes inside the legacy partition until all of it has expired
        assert store.purge_history(T0 + DAY) == 24  # the first day's samples
        assert "history_legacy" in _names(store)
        assert store.purge_history(T0 + 3 * DAY) == 29
        assert _names(store) == ["history_p20251203", "history_p20251204"]
        assert _count(store) == 3
    finally:
        store.close()


def test_migration_of_an_empty_history_and_back_down(pg_url: str) -> None:
    _at_0005_with_rows(pg_url, 0)
    store = Store(pg_url)
    try:
        assert store.history_partitions() == []
        key = _key(store)
        _write(store, key, T0 + np.arange(100.0))
        migrate.downgrade(store.engine, "0005")  # back to a plain table, rows kept
        with store.engine.connect() as conn:
            kind = conn.exec_driver_sql(
                "SELECT relkind FROM pg_class WHERE oid = 'history'::regclass"
            )
            assert kind.scalar_one() == "r"
            indexes = conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'history' "
                "AND schemaname = current_schema() ORDER BY 1"
            ).scalars()
            assert list(indexes) == ["ix_history_point_time", "ix_history_time"]
            assert parts.history_layout(conn) == "plain"
        assert _count(store) == 100
        migrate.upgrade(store.engine)
        assert _names(store) == ["history_legacy"]
        assert _count(store) == 100
    finally:
        store.close()


def test_legacy_bounds_reach_past_1970_to_2199() -> None:
    from importlib import import_module

    migration = import_module("plantguard.store.migrations.versions.0006_history_partitions")
    assert migration._bounds(-5.0, 10.0) == ("MINVALUE", repr(DAY))
    assert migration._bounds(T0 + 1.0, 9.0e9) == (repr(T0), "MAXVALUE")
    assert migration._bounds(T0, math.nan) == (repr(T0), "MAXVALUE")


# --- the partition set -----------------------------------------------------------------------


def test_partition_set_finds_missing_days() -> None:
    known = parts.PartitionSet([parts.Partition(T0, T0 + DAY, parts.day_name(D0))])
    assert known.missing(np.array([])) == []
    assert known.missing(np.array([T0 + 5.0])) == [D0 + 1]  # the day ahead
    assert known.missing(np.array([T0 - 1.0, T0 + DAY + 1.0])) == [D0 - 1, D0 + 1, D0 + 2]
    assert known.missing(np.array([-1.0, np.nan])) == [parts.FIRST_DAY - 1, 0, parts.END_DAY]
    assert known.missing(np.array([1e18])) == [parts.END_DAY]
    assert parts.day_name(0) == "history_p19700101"


def test_a_default_partition_added_by_hand_takes_what_has_no_day(store: Store) -> None:
    """An operator's DEFAULT partition is left alone: days still get their own."""
    key = _key(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE history_default PARTITION OF history DEFAULT")
    _write(store, key, T0 + np.arange(100.0))
    assert _names(store) == ["history_p20251130", "history_p20251201"]
    assert _count(store, "history_p20251130") == 100
    assert _count(store, "history_default") == 0


def test_samples_of_an_unknown_point_are_refused_whole(store: Store) -> None:
    key = _key(store)
    keys = np.full(COPY_MIN_ROWS, key, dtype=np.int64)
    keys[-1] = key + 1_000  # no such point
    with pytest.raises(sa.exc.IntegrityError, match="fk_history_point_key_points"):
        store.write_history(
            keys,
            T0 + np.arange(float(keys.size)),
            np.zeros(keys.size),
            np.zeros(keys.size, dtype=np.uint8),
        )
    assert _count(store) == 0


def test_a_copy_stream_of_another_shape_is_refused() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    row = (2).to_bytes(2, "big") + (8).to_bytes(4, "big") + bytes(8) + bytes(18)
    with pytest.raises(ValueError, match="unexpected row layout"):
        decode_trend(header + row + b"\xff\xff")
