"""The store: history, alarm state and journal, on SQLite or PostgreSQL.

Opened from a file path (SQLite, WAL journal) or a SQLAlchemy URL.  Opening
migrates the schema to head, so a gateway never runs on a stale database.

History goes in through Core ``executemany`` inserts of whole batches and comes
out as numpy arrays: ORM objects on that path cost 10× (DESIGN.md).  Alarm
transitions are written in one transaction each time the alarm manager commits,
before anyone is told, so an acknowledged alarm survives a crash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from ..alarms import AlarmState, AlarmStatus, Shelving, Transition
from ..model import AlarmDefinition, Point
from . import migrate
from .lease import GatewayLease
from .records import RecordStore
from .schema import alarm_journal, alarms, history, points
from .users import UserStore

__all__ = ["Store", "Trend", "database_url"]


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


def _on_sqlite_connect(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
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
    def __init__(self, target: str, *, migrate_to_head: bool = True) -> None:
        self.url = database_url(target)
        self.engine = sa.create_engine(self.url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _on_sqlite_connect)
        if migrate_to_head:
            migrate.upgrade(self.engine)
        self.records = RecordStore(self.engine)
        self.lease = GatewayLease(self.engine)
        self.users = UserStore(self.engine)
        self._point_keys: dict[str, int] = {}

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
        """Insert a batch of samples in one transaction; NaN values are stored as NULL."""
        n = int(point_keys.size)
        if n == 0:
            return 0
        values: list[float | None] = [None if math.isnan(v) else v for v in value.tolist()]
        rows = [
            {"point_key": k, "time": t, "value": v, "quality": q}
            for k, t, v, q in zip(
                point_keys.tolist(), time.tolist(), values, quality.tolist(), strict=True
            )
        ]
        with self.engine.begin() as conn:
            conn.execute(history.insert(), rows)
        return n

    def purge_history(self, older_than: float) -> int:
        """Delete samples with a source time before ``older_than`` (retention)."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.delete(history).where(history.c.time < older_than))
        return int(result.rowcount or 0)

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
        holds a sample per change, so that sample is the value at ``start``.
        """
        key = sa.select(points.c.key).where(points.c.point_id == point_id).scalar_subquery()
        columns = (history.c.time, history.c.value, history.c.quality)
        query = (
            sa.select(*columns)
            .where(history.c.point_key == key, history.c.time >= start)
            .order_by(history.c.time)
        )
        if math.isfinite(end):
            query = query.where(history.c.time < end)
        previous = (
            sa.select(*columns)
            .where(history.c.point_key == key, history.c.time < start)
            .order_by(history.c.time.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).all())
            if include_previous:
                rows = list(conn.execute(previous).all()) + rows
        if not rows:
            return Trend(np.empty(0), np.empty(0), np.empty(0, dtype=np.uint8))
        t, v, q = zip(*rows, strict=True)
        return Trend(
            np.asarray(t, dtype=np.float64),
            np.asarray([np.nan if x is None else x for x in v], dtype=np.float64),
            np.asarray(q, dtype=np.uint8),
        )

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


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value
