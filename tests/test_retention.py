"""History retention: held on the flush cadence, cheap when idle, space returned.

Runs on a real SQLite file and, with ``PLANTGUARD_TEST_POSTGRES_URL`` set, on the
real PostgreSQL server (``store_target``).  Time comes from a fake clock and the
writer is driven tick by tick, so every assertion is about behaviour: rows,
statements, pages — never timings.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from plantguard.config import ConfigError, Location, parse_site, validation_issues
from plantguard.history import HistoryWriter, format_duration
from plantguard.host import PluginRegistry
from plantguard.model import HistorySettings, Point, Site, StoreSettings
from plantguard.store import Store
from plantguard.store import store as store_module

FIVE_SECONDS = 1 / 86_400 * 5


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Statements:
    """SQL statements an engine sends, by first word, through an event listener."""

    def __init__(self, engine: sa.Engine) -> None:
        self.sql: list[str] = []
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._heard)

    def _heard(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.sql.append(statement)

    def count(self, verb: str) -> int:
        return sum(1 for s in self.sql if s.lstrip().upper().startswith(verb))

    def clear(self) -> None:
        self.sql.clear()

    def remove(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._heard)


def _writer(
    store: Store,
    clock: FakeClock,
    *,
    retention_days: float = FIVE_SECONDS,
    points: int = 2,
    max_batch: int = 50_000,
) -> HistoryWriter:
    keys = store.register_points([Point(id=f"d.p{i}", device_id="d") for i in range(points)])
    settings = StoreSettings(
        history=HistorySettings(
            retention_days=retention_days, flush_interval=1.0, max_batch=max_batch
        )
    )
    return HistoryWriter(
        store,
        settings,
        np.array([keys[f"d.p{i}"] for i in range(points)], dtype=np.int64),
        clock=clock,
    )


def _append(writer: HistoryWriter, times: np.ndarray, points: int = 2) -> None:
    """One sample per point at each of ``times``."""
    for t in times:
        writer.append(
            np.arange(points),
            np.full(points, float(t)),
            np.zeros(points, dtype=np.uint8),
            np.full(points, float(t)),
        )


def _times(store: Store) -> list[float]:
    with store.engine.connect() as conn:
        return sorted(float(t) for t in conn.execute(sa.text("SELECT time FROM history")).scalars())


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = Store(store_target)
    yield s
    s.close()


# --- retention held on the flush cadence ----------------------------------------------


async def test_short_retention_is_held_at_every_flush(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(1_000.0)
    writer = _writer(store, clock)
    _append(writer, np.arange(990.0, 1_001.0))  # 11 s of samples, 2 points
    with caplog.at_level(logging.INFO, logger="plantguard.history"):
        await writer.tick()
    # the cutoff is 995: what was older is gone right after the flush that wrote it
    assert _times(store) == [t for t in np.arange(995.0, 1_001.0).tolist() for _ in range(2)]
    assert writer.purged == 10
    assert "history retention: removed 10 samples older than 5 s" in caplog.messages

    clock.now = 1_003.0  # nothing new arrives; the samples age past the cutoff (998)
    await writer.tick()
    assert min(_times(store)) == 998.0
    assert store.history_count() == 6

    clock.now = 1_100.0
    _append(writer, np.array([1_099.0]))
    await writer.tick()
    assert _times(store) == [1_099.0, 1_099.0]


async def test_a_new_writer_purges_what_an_earlier_run_left(store: Store) -> None:
    clock = FakeClock(500.0)
    first = _writer(store, clock, retention_days=1.0)
    _append(first, np.arange(100.0, 110.0))
    await first.tick()
    assert store.history_count() == 20

    clock.now = 100.0 + 86_400.0 + 5.0  # a day later, another process starts
    second = _writer(store, clock, retention_days=1.0)
    await second.tick()  # nothing queued: the purge still runs, on the flush cadence
    assert _times(store) == [t for t in np.arange(105.0, 110.0).tolist() for _ in range(2)]


async def test_purge_with_nothing_to_do_costs_nothing(store: Store) -> None:
    clock = FakeClock(1_000.0)
    writer = _writer(store, clock)
    _append(writer, np.arange(990.0, 1_001.0))
    await writer.tick()  # looks up the oldest time, deletes, returns space
    await writer.tick()  # (a last reclaim step, if one was left)
    statements = Statements(store.engine)
    try:
        await writer.tick()  # nothing queued, nothing older than the cutoff
        assert statements.sql == []

        _append(writer, np.array([1_000.5]))  # new samples, none expired
        await writer.tick()
        assert statements.count("INSERT") == 1
        assert statements.count("DELETE") == 0
        assert statements.count("SELECT") == 0

        clock.now = 1_000.4 + 5.0  # cutoff 1,000.4: the samples up to 1,000 s have aged out
        statements.clear()
        await writer.tick()
        assert statements.count("DELETE") == 1
        assert _times(store) == [1_000.5, 1_000.5]
    finally:
        statements.remove()


async def test_a_failed_purge_is_logged_and_retried(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(1_000.0)
    writer = _writer(store, clock)
    _append(writer, np.arange(990.0, 1_001.0))
    real = store.purge_history

    def locked(*_args: object, **_kwargs: object) -> int:
        raise sa.exc.OperationalError("DELETE", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "purge_history", locked)
    with caplog.at_level(logging.WARNING, logger="plantguard.history"):
        await writer.tick()  # the write succeeds, the purge fails, the writer goes on
    assert store.history_count() == 22
    assert any("database is locked" in m for m in caplog.messages)
    monkeypatch.setattr(store, "purge_history", real)
    await writer.tick()
    assert store.history_count() == 12


async def test_purge_starts_at_the_oldest_known_time(store: Store) -> None:
    """Deletes and lookups start at the oldest time the writer knows, not at the index's
    start; a full lookup every hour catches samples another process wrote older."""
    clock = FakeClock(1_000.0)
    writer = _writer(store, clock)
    _append(writer, np.arange(990.0, 1_001.0))
    await writer.tick()  # oldest known: 995
    key = store.register_points([Point(id="d.p0", device_id="d")])["d.p0"]
    # another process writes a sample older than anything this writer knows of
    store.write_history(
        np.array([key], dtype=np.int64), np.array([900.0]), np.zeros(1), np.zeros(1, np.uint8)
    )
    statements = Statements(store.engine)
    try:
        clock.now = 1_002.0
        await writer.tick()
        deletes = [s for s in statements.sql if s.lstrip().upper().startswith("DELETE")]
        assert deletes
        assert all(">=" in s for s in deletes)  # bounded below: started at 995
    finally:
        statements.remove()
    assert min(_times(store)) == 900.0  # not looked at
    assert min(t for t in _times(store) if t > 900.0) == 997.0

    clock.now += 3_600.0  # the hourly full lookup finds it
    await writer.tick()
    assert _times(store) == []


# --- the DELETE: chunked, along the time index ---------------------------------------


def test_purge_deletes_in_bounded_chunks(store: Store) -> None:
    writer_keys = store.register_points([Point(id="d.p0", device_id="d")])
    key = writer_keys["d.p0"]
    n = 1_050
    store.write_history(
        np.full(n, key, dtype=np.int64),
        np.arange(float(n)),
        np.zeros(n),
        np.zeros(n, dtype=np.uint8),
    )
    statements = Statements(store.engine)
    try:
        assert store.purge_history(1_000.0, chunk=100, max_rows=300) == 300
        assert statements.count("DELETE") == 3
        assert store.oldest_history_time() == 300.0
        statements.clear()
        assert store.purge_history(1_000.0, chunk=100) == 700
        assert statements.count("DELETE") == 7
        assert _times(store) == np.arange(1_000.0, float(n)).tolist()
    finally:
        statements.remove()

    # More rows than a chunk at one time still make progress.
    store.write_history(
        np.full(250, key, dtype=np.int64),
        np.full(250, 5.0),
        np.zeros(250),
        np.zeros(250, dtype=np.uint8),
    )
    assert store.purge_history(10.0, chunk=100) == 250
    assert store.purge_history(10.0, chunk=100) == 0
    assert store.oldest_history_time() == 1_000.0


def test_sqlite_purge_runs_along_the_time_index(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "plan.db"))
    key = store.register_points([Point(id="d.p0", device_id="d")])["d.p0"]
    store.write_history(
        np.full(500, key, dtype=np.int64),
        np.arange(500.0),
        np.zeros(500),
        np.zeros(500, dtype=np.uint8),
    )
    heard: list[tuple[str, object]] = []

    def listen(_c: object, _cur: object, statement: str, parameters: object, *_: object) -> None:
        heard.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", listen)
    assert store.purge_history(300.0, chunk=100) == 300
    assert store.purge_history(400.0, since=300.0, chunk=40) == 100
    assert store.oldest_history_time(since=400.0) == 400.0
    sa.event.remove(store.engine, "before_cursor_execute", listen)
    on_history = [(s, p) for s, p in heard if "history" in s]
    assert on_history
    with store.engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        for statement, parameters in on_history:
            plan = " ".join(
                str(row[-1])
                for row in dbapi.execute(  # type: ignore[union-attr]
                    "EXPLAIN QUERY PLAN " + statement, parameters
                )
            )
            assert "ix_history_time" in plan, (statement, plan)
            assert "SCAN history" not in plan, (statement, plan)
    store.close()


# --- space returned --------------------------------------------------------------------


def _pragma(store: Store, name: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())


async def test_sqlite_file_shrinks_in_bounded_steps_after_a_purge(tmp_path: Path) -> None:
    db = tmp_path / "shrink.db"
    store = Store(str(db))
    assert store.incremental_vacuum
    assert _pragma(store, "auto_vacuum") == 2  # INCREMENTAL, set before the first table
    store.reclaim_step = 200  # pages per tick, small to see the steps on a small file
    clock = FakeClock(100_000.0)
    points = 50
    writer = _writer(store, clock, retention_days=1.0, points=points, max_batch=200_000)
    _append(writer, np.arange(4_000.0), points=points)  # 200,000 samples
    assert await writer.flush() == 200_000
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    pages_full = _pragma(store, "page_count")
    size_full = db.stat().st_size
    assert pages_full * _pragma(store, "page_size") == size_full
    assert _pragma(store, "freelist_count") == 0

    # Keep the newest 5 %: most pages become free, and go back a bounded step per tick.
    clock.now = 3_800.0 + 86_400.0
    await writer.tick()
    assert store.history_count() == 200 * points
    pages_after_one = _pragma(store, "page_count")
    assert 200 <= pages_full - pages_after_one <= 201  # 200 free pages (+ a pointer-map page)
    free_after_one = _pragma(store, "freelist_count")
    assert free_after_one > 200  # more than one step was freed

    pages = [pages_after_one]
    while _pragma(store, "freelist_count") > max(
        store_module.FREE_SLACK_PAGES, _pragma(store, "page_count") // 32
    ):
        assert len(pages) < 50
        await writer.tick()  # nothing to purge; one more step of space returned
        pages.append(_pragma(store, "page_count"))
    steps = [a - b for a, b in itertools.pairwise(pages)]
    assert steps
    assert all(0 < step <= 201 for step in steps)
    await writer.tick()  # nothing left to return: the file stays as it is
    assert _pragma(store, "page_count") == pages[-1]
    pages_end = _pragma(store, "page_count")
    free_end = _pragma(store, "freelist_count")
    assert free_end < free_after_one
    assert free_end <= max(store_module.FREE_SLACK_PAGES, pages_end // 32)
    assert pages_end < pages_full // 4
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert db.stat().st_size == pages_end * _pragma(store, "page_size") < size_full // 4
    store.close()


def test_reclaim_space_returns_nothing_it_need_not(store: Store) -> None:
    """PostgreSQL never shrinks (autovacuum reuses space); SQLite keeps its slack."""
    assert store.incremental_vacuum == (store.engine.dialect.name == "sqlite")
    assert store.reclaim_space() == 0


def _disable_auto_vacuum(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executescript("PRAGMA auto_vacuum=NONE; VACUUM;")
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    conn.close()


def test_a_small_old_sqlite_file_is_converted_on_open(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Store(str(db)).close()
    _disable_auto_vacuum(db)  # as files made before incremental auto-vacuum are
    store = Store(str(db))
    assert store.incremental_vacuum
    assert _pragma(store, "auto_vacuum") == 2
    assert _pragma(store, "freelist_count") == 0
    store.close()


def test_a_large_old_sqlite_file_is_left_alone_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "big.db"
    Store(str(db)).close()
    _disable_auto_vacuum(db)
    monkeypatch.setattr(store_module, "CONVERT_MAX_BYTES", 0)
    with caplog.at_level(logging.WARNING, logger="plantguard.store.store"):
        store = Store(str(db))
    assert not store.incremental_vacuum
    assert _pragma(store, "auto_vacuum") == 0
    assert store.reclaim_space() == 0
    [message] = caplog.messages
    assert "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;" in message
    store.close()


# --- the log line ----------------------------------------------------------------------


async def test_log_line_names_count_and_duration_and_is_quiet_otherwise(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(100_000.0)
    writer = _writer(store, clock, retention_days=9_000 / 86_400, points=1)
    _append(writer, np.linspace(80_000.0, 90_000.0, 1_234, endpoint=False), points=1)
    _append(writer, np.arange(91_000.0, 91_100.0), points=1)  # all within 2 h 30 min
    with caplog.at_level(logging.INFO, logger="plantguard.history"):
        await writer.tick()
        assert caplog.messages == ["history retention: removed 1,234 samples older than 2 h 30 min"]
        caplog.clear()
        await writer.tick()  # nothing to remove: nothing said
        clock.now += 1.0
        await writer.tick()
        assert caplog.messages == []

        # Removing at every flush is said at most hourly, with the count since the last line.
        for _ in range(10):
            clock.now += 5.0
            await writer.tick()
        assert writer.purged == 1_234 + 51
        assert caplog.messages == []
        clock.now += 3_600.0 - 50.0  # an hour after the first line
        await writer.tick()
    assert caplog.messages == ["history retention: removed 100 samples older than 2 h 30 min"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "0.5 s"),
        (5.0, "5 s"),
        (59.96, "1 min"),
        (90.0, "1 min 30 s"),
        (9_000.0, "2 h 30 min"),
        (3_599.6, "1 h"),
        (86_399.9, "1 d"),
        (1.5 * 86_400, "1 d 12 h"),
        (30 * 86_400.0, "30 d"),
        (FIVE_SECONDS * 86_400, "5 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("retention_days", math.nan, "finite number"),
        ("retention_days", math.inf, "finite number"),
        ("retention_days", 1e300, "less than or equal to 36500"),
        ("retention_days", 0, "greater than 0"),
        ("retention_days", -1, "greater than 0"),
        ("flush_interval", math.nan, "finite number"),
        ("flush_interval", -math.inf, "finite number"),
        ("flush_interval", 1e300, "less than or equal to 3600"),
        ("flush_interval", 0, "greater than or equal to 0.01"),
        ("max_batch", 0, "greater than 0"),
    ],
)
def test_history_settings_refuse_non_finite_and_absurd_values(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        HistorySettings.model_validate({field: value})
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


def test_history_settings_accept_short_and_long_retention() -> None:
    assert HistorySettings(retention_days=FIVE_SECONDS).retention_days == FIVE_SECONDS
    assert HistorySettings(retention_days=36_500).retention_days == 36_500


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("retention_days: .nan", "store.history.retention_days: "),
        ("retention_days: .inf", "store.history.retention_days: "),
        ("flush_interval: -.inf", "store.history.flush_interval: "),
    ],
)
def test_site_file_refuses_non_finite_numbers_naming_line_and_field(
    line: str, expected: str
) -> None:
    text = f"id: s\nstore:\n  history:\n    max_batch: 100\n    {line}\n"
    with pytest.raises(ConfigError) as caught:
        parse_site(text, "site.yaml", PluginRegistry())
    [issue] = caught.value.issues
    assert str(issue).startswith("site.yaml:5: " + expected)
    assert "finite number" in issue.message


def test_site_file_validation_errors_name_file_line_and_field() -> None:
    text = """\
id: s
store:
  history:
    retention_days: 1e300
    flush_interval: 0
"""
    with pytest.raises(ConfigError) as caught:
        parse_site(text, "site.yaml", PluginRegistry())
    assert [str(i) for i in caught.value.issues] == [
        "site.yaml:4: store.history.retention_days: Input should be less than or equal to 36500",
        "site.yaml:5: store.history.flush_interval: Input should be greater than or equal to 0.01",
    ]


def test_pydantic_errors_for_non_finite_settings_map_to_file_line_and_field() -> None:
    """The model's own refusal, whatever the YAML layer checks before it."""
    text = "id: s\nstore:\n  history:\n    retention_days: 1\n    flush_interval: 2\n"
    location = Location("site.yaml", text)
    data = {
        "id": "s",
        "store": {"history": {"retention_days": math.nan, "flush_interval": math.inf}},
    }
    with pytest.raises(ValidationError) as caught:
        Site.model_validate(data)
    assert [str(i) for i in validation_issues(caught.value, location)] == [
        "site.yaml:4: store.history.retention_days: Input should be a finite number",
        "site.yaml:5: store.history.flush_interval: Input should be a finite number",
    ]
