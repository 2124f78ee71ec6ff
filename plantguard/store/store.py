"""The store: history, alarm state and journal, on SQLite or PostgreSQL.

Opened from a file path (SQLite, WAL journal) or a SQLAlchemy URL.  Opening
migrates the schema to head, so a gateway never runs on a stale database.
``Store(target, existing_only=True)`` (what every command but ``run``, ``demo``
and ``db init|upgrade`` uses) creates and migrates nothing: it opens a PlantGuard
store at head or raises :class:`StoreMissing` / :class:`StoreBehind` /
:class:`StoreUnavailable` with a one-line message that says what to run.

Retention deletes history in bounded chunks along the index on source time, so
no transaction holds the database for long; on SQLite the freed pages go back to
the file system in bounded steps (incremental auto-vacuum, docs/history.md).  On
PostgreSQL history is partitioned by day (:mod:`.partitions`) and retention drops
whole expired days.

History goes in as whole batches — on SQLite the driver's ``executemany`` of plain
tuples (:mod:`.history_sqlite`), on PostgreSQL a binary ``COPY`` laid out by numpy
(:mod:`.history_pg`) — and comes out of the driver's cursor straight into numpy
arrays: row objects on that path cost several times the driver's own time.  Alarm
transitions are written in one transaction each time the alarm manager commits,
before anyone is told, so an acknowledged alarm survives a crash.
"""

from __future__ import annotations

import functools
import logging
import math
import shlex
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from .. import errors
from ..errors import StoreError
from . import history_pg, history_sqlite
from .lease import GatewayLease
from .partitions import (
    Partition,
    PartitionSet,
    create_day_partitions,
    drop_partition,
    history_layout,
    list_partitions,
)
from .schema import alarm_journal, alarms, history, points
from .state import head_revision, inspect_connection, one_line_error
from .users import UserStore

if TYPE_CHECKING:
    # Only for annotations: the site model (pydantic), the alarm package and the
    # records part are imported where they are used, so that a command that only
    # lists history (``trend``) does not pay for them at start-up.
    from ..alarms import AlarmStatus, Transition
    from ..model import AlarmDefinition, Point
    from .records import RecordStore

__all__ = [
    "NotAPlantGuardStore",
    "Store",
    "StoreBehind",
    "StoreMissing",
    "StoreUnavailable",
    "StoreUnreachable",
    "Trend",
    "database_url",
    "shown_target",
]

log = logging.getLogger(__name__)


#: Rows deleted per retention transaction: short enough that alarm journal writes
#: never wait long for the lock, long enough that a backlog drains quickly.
PURGE_CHUNK = 20_000
#: Pages one incremental vacuum step returns to the file system (8 MiB of 4 KiB pages).
RECLAIM_STEP = 2048
#: Free pages kept for the next inserts rather than returned: at least this many,
#: or 1/32 of the file, so steady retention does not shrink and regrow the file.
FREE_SLACK_PAGES = 256
#: SQLite files made before incremental auto-vacuum are converted (one VACUUM) when
#: opened if they are at most this large; larger files are left for an operator.
CONVERT_MAX_BYTES = 64 * 1024 * 1024
#: SQLite page cache per connection, in KiB (grows only as pages are used).
SQLITE_CACHE_KIB = 32 * 1024
#: How long retention waits for the lock to drop an expired partition (PostgreSQL).
DROP_LOCK_TIMEOUT = "5s"
#: SQLSTATE of "no partition of relation history found for row".
_NO_PARTITION = "23514"


def database_url(target: str) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as given, anything else a SQLite file path.

    ``postgresql://`` means psycopg 3 (the driver PlantGuard installs), not
    SQLAlchemy's default psycopg2.
    """
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).expanduser().resolve()}"


def shown_target(target: str) -> str:
    """``--db`` as given, with any password in a URL masked, for messages."""
    if "://" not in target:
        return target
    try:
        return sa.make_url(target).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<the given URL>"


class StoreUnavailable(StoreError):
    """No usable PlantGuard store where one was to be opened (``existing_only``):
    its message is one line naming the store (password masked) and what to do."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(message)
        self.target = target


class StoreMissing(StoreUnavailable, errors.StoreMissing):
    """Nothing there: no SQLite file, no PostgreSQL schema, no PlantGuard tables."""

    def __init__(self, target: str, detail: str = "") -> None:
        shown = shown_target(target)
        what = "path" if "://" not in target else "URL"
        why = f" ({detail})" if detail else ""
        super().__init__(
            target,
            f"no PlantGuard store at {shown}{why}; run `plantguard db init {shlex.quote(shown)}`,"
            f" or check the {what}",
        )


class NotAPlantGuardStore(StoreUnavailable, errors.NotAPlantGuardStore):
    """Tables that are not PlantGuard's, or a revision this version does not know."""


class StoreUnreachable(StoreUnavailable, errors.StoreUnreachable):
    """The database server does not answer, or refuses the connection."""


class StoreBehind(StoreUnavailable):
    """A PlantGuard store made by an older version: ``plantguard db upgrade`` migrates it."""

    def __init__(self, target: str, revision: str, head: str) -> None:
        shown = shown_target(target)
        super().__init__(
            target,
            f"the PlantGuard store at {shown} is behind this version (revision {revision}, "
            f"this PlantGuard's is {head}); run `plantguard db upgrade {shlex.quote(shown)}`",
        )
        self.revision = revision
        self.head = head


def _check_existing(target: str, engine: sa.Engine) -> None:
    """Raise unless ``engine`` reaches a PlantGuard store at head; creates nothing."""
    with engine.connect() as conn:
        found = inspect_connection(conn)
    if found.kind == "current":
        return
    if found.kind == "missing":
        raise StoreMissing(target, found.detail)
    if found.kind == "behind":
        assert found.revision is not None
        raise StoreBehind(target, found.revision, head_revision())
    raise NotAPlantGuardStore(
        target,
        f"{shown_target(target)} is not a PlantGuard store ({found.detail}); left alone — "
        "check the path or URL",
    )


def _on_sqlite_connect(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # Takes effect only on a file without tables, and only before the switch to WAL;
    # a file created before this setting is converted by Store._check_auto_vacuum.
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # A flush inserts into the (point, time) index at one place per point: with
    # SQLite's default 2 MiB page cache a site of thousands of points rereads index
    # pages on every flush once history outgrows it (2-3x slower writes, measured).
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


class Trend:
    """Samples of one point over a period, as arrays."""

    __slots__ = ("quality", "time", "value")

    def __init__(
        self,
        time: npt.NDArray[np.float64],
        value: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
    ) -> None:
        self.time = time
        self.value = value
        self.quality = quality

    def __len__(self) -> int:
        return int(self.time.size)


class Store:
    """The store at ``target`` (``--db``: a SQLite file path or a SQLAlchemy URL).

    By default it is created if missing and migrated to head (``run``, ``demo``,
    ``db init|upgrade``).  ``existing_only``: open a store that is there and at
    head, creating and migrating nothing (every other command); otherwise raise
    :class:`StoreUnavailable` (:class:`StoreMissing`, :class:`StoreBehind`).
    """

    def __init__(
        self, target: str, *, migrate_to_head: bool = True, existing_only: bool = False
    ) -> None:
        self.url = database_url(target)
        if existing_only:
            migrate_to_head = False
            database = sa.make_url(self.url).database if self.url.startswith("sqlite") else None
            if database is not None and database not in ("", ":memory:"):
                path = Path(database)
                if not path.is_file() or path.stat().st_size == 0:
                    raise StoreMissing(target)
        self.engine = sa.create_engine(self.url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _on_sqlite_connect)
        if existing_only:
            try:
                _check_existing(target, self.engine)
            except StoreUnavailable:
                self.engine.dispose()
                raise
            except sa.exc.SQLAlchemyError as exc:
                self.engine.dispose()
                raise StoreUnreachable(
                    target, f"cannot open the store {shown_target(target)}: {one_line_error(exc)}"
                ) from None
        if migrate_to_head:
            from . import migrate  # alembic: only where a store is created or migrated

            migrate.upgrade(self.engine)
        #: SQLite with incremental auto-vacuum: :meth:`reclaim_space` can shrink the file.
        self.incremental_vacuum = False
        #: Pages one :meth:`reclaim_space` call returns at most.
        self.reclaim_step = RECLAIM_STEP
        if self.engine.dialect.name == "sqlite":
            self.incremental_vacuum = self._check_auto_vacuum()
        self.lease = GatewayLease(self.engine)
        self.users = UserStore(self.engine)
        self._point_keys: dict[str, int] = {}
        #: PostgreSQL: ``history``'s layout (looked up at the first write) and the
        #: partitions known to exist (so a batch of a known day costs no statement).
        self._history_layout: str | None = None
        self._partitions = PartitionSet()

    @functools.cached_property
    def records(self) -> RecordStore:
        """The records part (devices, maintenance, …), made at first use: it needs
        the site model, which a command reading history does not."""
        from .records import RecordStore

        return RecordStore(self.engine)

    def close(self) -> None:
        self.lease.release()
        self.engine.dispose()

    # --- points and history ----------------------------------------------------------

    def register_points(self, site_points: Sequence[Point]) -> dict[str, int]:
        """Ensure every point has a row; return point id → integer key for history."""
        with self.engine.begin() as conn:
            existing = {
                r.point_id: r.key for r in conn.execute(sa.select(points.c.point_id, points.c.key))
            }
            new = [
                {"point_id": p.id, "device_id": p.device_id, "unit": p.unit}
                for p in site_points
                if p.id not in existing
            ]
            if new:
                conn.execute(points.insert(), new)
                existing = {
                    r.point_id: r.key
                    for r in conn.execute(sa.select(points.c.point_id, points.c.key))
                }
        self._point_keys = existing
        return existing

    def write_history(
        self,
        point_keys: npt.NDArray[np.int64],
        time: npt.NDArray[np.float64],
        value: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
    ) -> int:
        """Insert a batch of samples in one transaction; NaN values are stored as NULL.

        SQLite: one prepared ``INSERT`` for the batch's tuples (the driver's
        ``executemany``).  PostgreSQL: one binary ``COPY`` (a few rows: an ``INSERT``),
        after making the day partitions the batch needs, if any are new.
        """
        n = int(point_keys.size)
        if n == 0:
            return 0
        if self.engine.dialect.name != "postgresql":
            with self.engine.begin() as conn:
                history_sqlite.insert_rows(conn, point_keys, time, value, quality)
            return n
        partitioned = self._layout() == "partitioned"
        if partitioned:
            self._make_partitions(time)
        try:
            with self.engine.begin() as conn:
                history_pg.copy_in(conn, point_keys, time, value, quality)
        except sa.exc.IntegrityError as exc:
            # A partition this store knew of was dropped by another (retention):
            # look again, make it, write once more.
            if not partitioned or getattr(exc.orig, "sqlstate", None) != _NO_PARTITION:
                raise
            self._partitions = PartitionSet()
            self._make_partitions(time)
            with self.engine.begin() as conn:
                history_pg.copy_in(conn, point_keys, time, value, quality)
        return n

    def _layout(self) -> str:
        """How ``history`` is laid out (:func:`history_layout`), looked up once."""
        if self._history_layout is None:
            with self.engine.connect() as conn:
                self._history_layout = history_layout(conn)
        return self._history_layout

    def _make_partitions(self, times: npt.NDArray[np.float64]) -> None:
        missing = self._partitions.missing(times)
        if missing:
            with self.engine.begin() as conn:
                self._partitions = PartitionSet(create_day_partitions(conn, missing))

    def history_partitions(self) -> list[Partition]:
        """The partitions of ``history`` (PostgreSQL, partitioned layout), by time."""
        if self._layout() != "partitioned":
            return []
        with self.engine.connect() as conn:
            return list_partitions(conn)

    def oldest_history_time(self, since: float | None = None) -> float | None:
        """The oldest source time in history (one index lookup), ``None`` when empty.

        ``since`` is a time no sample is older than, when the caller knows one: the
        lookup then starts there, past index entries of rows deleted before it (on
        PostgreSQL those stay in the index until the next vacuum).
        """
        query = sa.select(sa.func.min(history.c.time))
        if since is not None:
            query = query.where(history.c.time >= since)
        with self.engine.connect() as conn:
            oldest = conn.execute(query).scalar_one()
        return None if oldest is None else float(oldest)

    def purge_history(
        self,
        older_than: float,
        *,
        since: float | None = None,
        chunk: int = PURGE_CHUNK,
        max_rows: int | None = None,
    ) -> int:
        """Delete samples with a source time before ``older_than`` (retention).

        Rows go in transactions of at most about ``chunk`` rows, oldest first, each
        bounded by the index on ``time`` (the time of the ``chunk``-th oldest row), so
        a large backlog never becomes one long transaction that locks out alarm
        writes.  Stops once ``max_rows`` are removed (the rest is left for the next
        call); returns the number of rows removed.  ``since`` is as for
        :meth:`oldest_history_time`: rows older than it are not looked at.

        On PostgreSQL's partitioned layout, partitions wholly before ``older_than``
        are dropped first, whatever ``max_rows`` (a drop costs the same for any size);
        the rows deleted are then only those of the partition the cutoff falls in.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        removed = self._drop_expired_partitions(older_than)
        window = [history.c.time < older_than]
        if since is not None:
            window.append(history.c.time >= since)
        done = False
        while not done and (max_rows is None or removed < max_rows):
            with self.engine.begin() as conn:
                bound = conn.execute(
                    sa.select(history.c.time)
                    .where(*window)
                    .order_by(history.c.time)
                    .offset(chunk)
                    .limit(1)
                ).scalar_one_or_none()
                if bound is None:  # at most ``chunk`` rows left to delete
                    done = True
                    n = _rowcount(conn.execute(sa.delete(history).where(*window)))
                else:
                    n = _rowcount(
                        conn.execute(sa.delete(history).where(*window, history.c.time < bound))
                    )
                    if n == 0:  # more than ``chunk`` rows share the oldest time
                        n = _rowcount(
                            conn.execute(sa.delete(history).where(*window, history.c.time <= bound))
                        )
            removed += n
        return removed

    def _drop_expired_partitions(self, older_than: float) -> int:
        """PostgreSQL, partitioned: drop every partition entirely before ``older_than``.

        Dropping needs a moment's exclusive lock on ``history``: a reader holding it
        longer than :data:`DROP_LOCK_TIMEOUT` makes this fail (``OperationalError``,
        which the writer retries at its next flush) rather than stall the writes.
        """
        if self.engine.dialect.name != "postgresql" or self._layout() != "partitioned":
            return 0
        removed = 0
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
            kept = []
            for partition in list_partitions(conn):
                if partition.hi <= older_than:
                    removed += drop_partition(conn, partition.name)
                else:
                    kept.append(partition)
        self._partitions = PartitionSet(kept)
        return removed

    def reclaim_space(self, max_pages: int | None = None) -> int:
        """Return up to ``max_pages`` (:attr:`reclaim_step`) free pages of a SQLite file
        to the file system.

        A few free pages (:data:`FREE_SLACK_PAGES`, or 1/32 of the file) stay for the
        next inserts.  Returns how many free pages beyond that are still left: 0 when
        there is nothing more to return, and always 0 on PostgreSQL (autovacuum makes
        deleted rows' space reusable; only ``VACUUM FULL`` returns it, docs/history.md)
        or on a SQLite file without incremental auto-vacuum.
        """
        if not self.incremental_vacuum:
            return 0
        with self.engine.connect() as conn:
            excess = self._free_pages_beyond_slack(conn)
            if excess <= 0:
                return 0
            step = min(excess, self.reclaim_step if max_pages is None else max_pages)
            # executescript steps the pragma to completion: the sqlite3 module's
            # execute() steps a statement without result columns once, one page.
            statement = f"PRAGMA incremental_vacuum({int(step)});"
            dbapi = conn.connection.driver_connection
            try:
                dbapi.executescript(statement)  # type: ignore[union-attr]
            except sqlite3.OperationalError as exc:  # busy: as SQLAlchemy would say it
                raise sa.exc.OperationalError(statement, None, exc) from exc
            return max(0, self._free_pages_beyond_slack(conn))

    @staticmethod
    def _free_pages_beyond_slack(conn: sa.Connection) -> int:
        free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        return free - max(FREE_SLACK_PAGES, pages // 32)

    def _check_auto_vacuum(self) -> bool:
        """Whether this SQLite file can shrink; converts a small file made before that.

        ``auto_vacuum`` can only change on a file with tables through a ``VACUUM``,
        which rewrites the whole file (and needs as much free disk): done here for
        files up to :data:`CONVERT_MAX_BYTES`, left to an operator above that.
        """
        with self.engine.connect() as conn:
            mode = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())
            if mode == 2:
                return True
            size = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one()) * int(
                conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            )
            database = self.engine.url.database or ""
            if size > CONVERT_MAX_BYTES:
                log.warning(
                    "%s was created without incremental auto-vacuum: space freed by history "
                    "retention is reused but the file will not shrink; to change that, stop "
                    "the gateway and run once: sqlite3 %s 'PRAGMA auto_vacuum=INCREMENTAL; "
                    "VACUUM;' (needs free disk space of the file's size, %.0f MB)",
                    database,
                    database,
                    size / 1e6,
                )
                return False
            try:
                dbapi = conn.connection.driver_connection
                dbapi.executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")  # type: ignore[union-attr]
            except sqlite3.Error as exc:  # busy, or out of disk: go on as before
                log.warning("could not enable incremental auto-vacuum on %s: %s", database, exc)
                return False
            mode = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())
        if mode == 2:
            log.info("%s: incremental auto-vacuum enabled (one VACUUM)", database)
        return mode == 2

    def trend(
        self,
        point_id: str,
        start: float = 0.0,
        end: float = math.inf,
        *,
        include_previous: bool = False,
    ) -> Trend:
        """Samples of ``point_id`` with ``start <= time < end``, ordered by time.

        With ``include_previous`` the last sample before ``start`` comes first: history
        holds a sample per change, so that sample is the value at ``start``.  Read
        from the driver's cursor straight into arrays (no row objects): on SQLite
        through ``np.fromiter`` over the cursor, on PostgreSQL as a binary ``COPY``.
        """
        with self.engine.connect() as conn:
            read = (
                history_pg.read_trend
                if self.engine.dialect.name == "postgresql"
                else history_sqlite.read_trend
            )
            t, v, q = read(conn, point_id, start, end, previous=include_previous)
        return Trend(t, v, q)

    def history_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(history)).scalar_one())

    # --- alarms (the AlarmJournal protocol) ------------------------------------------

    def define_alarms(self, definitions: Sequence[AlarmDefinition]) -> None:
        """Insert alarms not yet known and refresh the definition columns of the others."""
        with self.engine.begin() as conn:
            known = set(conn.execute(sa.select(alarms.c.alarm_id)).scalars())
            new = [
                {
                    "alarm_id": d.id,
                    "source_id": d.source_id,
                    "device_id": d.device_id,
                    "kind": d.kind,
                    "rule": d.rule,
                    "priority": int(d.priority),
                }
                for d in definitions
                if d.id not in known
            ]
            if new:
                conn.execute(alarms.insert(), new)
            for d in definitions:
                if d.id in known:
                    conn.execute(
                        alarms.update()
                        .where(alarms.c.alarm_id == d.id)
                        .values(
                            source_id=d.source_id,
                            device_id=d.device_id,
                            kind=d.kind,
                            rule=d.rule,
                            priority=int(d.priority),
                        )
                    )

    def record(self, transitions: Sequence[Transition]) -> None:
        """Journal transitions and update alarm state, atomically."""
        with self.engine.begin() as conn:
            conn.execute(
                alarm_journal.insert(),
                [
                    {
                        "alarm_id": t.alarm_id,
                        "time": t.time,
                        "action": t.action,
                        "state_before": t.before.value,
                        "state_after": t.after.value,
                        "condition": t.condition,
                        "severity": t.severity,
                        "value": _nullable(t.value),
                        "message": t.message,
                        "user": t.user,
                        "comment": t.comment,
                        "shelved_until": t.status.shelved_until,
                    }
                    for t in transitions
                ],
            )
            for t in transitions:
                s = t.status
                conn.execute(
                    alarms.update()
                    .where(alarms.c.alarm_id == t.alarm_id)
                    .values(
                        state=s.state.value,
                        condition=s.condition,
                        severity=s.severity,
                        value=_nullable(s.value),
                        message=s.message,
                        active_since=s.active_since,
                        changed=s.changed,
                        confirmed=s.confirmed,
                        shelving=s.shelving.value,
                        shelved_until=s.shelved_until,
                        suppressed=s.suppressed,
                        out_of_service=s.out_of_service,
                        comment=s.comment,
                        last_user=s.last_user,
                    )
                )

    def activations_by_priority(self, start: float, end: float) -> list[int]:
        """The priority of every alarm activation journalled in ``[start, end)``."""
        query = (
            sa.select(alarms.c.priority)
            .join(alarm_journal, alarm_journal.c.alarm_id == alarms.c.alarm_id)
            .where(
                alarm_journal.c.action == "activate",
                alarm_journal.c.time >= start,
                alarm_journal.c.time < end,
            )
        )
        with self.engine.connect() as conn:
            return [int(p) for p in conn.execute(query).scalars()]

    def load_status(self) -> dict[str, AlarmStatus]:
        from ..alarms.states import AlarmState, AlarmStatus, Shelving

        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(alarms)).all()
        return {
            r.alarm_id: AlarmStatus(
                alarm_id=r.alarm_id,
                state=AlarmState(r.state),
                condition=r.condition,
                severity=r.severity,
                value=float("nan") if r.value is None else r.value,
                message=r.message,
                active_since=r.active_since,
                changed=r.changed,
                confirmed=bool(r.confirmed),
                shelving=Shelving(r.shelving),
                shelved_until=r.shelved_until,
                suppressed=bool(r.suppressed),
                out_of_service=bool(r.out_of_service),
                comment=r.comment,
                last_user=r.last_user,
            )
            for r in rows
        }

    def journal(
        self, alarm_id: str | None = None, since: float = 0.0
    ) -> list[sa.Row[tuple[object, ...]]]:
        """Journal entries, oldest first (for the CLI and tests)."""
        query = (
            sa.select(alarm_journal)
            .where(alarm_journal.c.time >= since)
            .order_by(alarm_journal.c.seq)
        )
        if alarm_id is not None:
            query = query.where(alarm_journal.c.alarm_id == alarm_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())


def _rowcount(result: sa.CursorResult[object]) -> int:
    return int(result.rowcount or 0)


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value
