"""History on PostgreSQL, partitioned by day: which partitions exist, making and dropping them.

``history`` on PostgreSQL is a table partitioned by range of ``time`` (migration
0006), one partition per UTC day named ``history_pYYYYMMDD``.  Retention then drops
whole days (no ``DELETE`` of millions of rows, no vacuum debt) and a trend read of
a day touches one or two partitions.  Partitions are made by the writer, for the
days of each batch and :data:`AHEAD_DAYS` after the newest, so that the partition
of a new day exists before its first sample arrives; a :class:`PartitionSet`
remembers what it has seen, so a batch of a known day costs no statement at all.

Samples with times PostgreSQL day partitions are not meant for (before 1970, from
2200 on, a device with a broken clock) go to two catch-all partitions made when
first needed, ``history_before`` and ``history_after``.  A table converted by the
migration keeps its rows as one partition, ``history_legacy``, covering the days
it held; retention drops it once all of them have expired.

Where TimescaleDB is installed the migration makes ``history`` a hypertable
instead, and TimescaleDB makes its chunks itself (:func:`timescaledb_installed`,
docs/history.md).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import re

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

__all__ = [
    "AHEAD_DAYS",
    "COUNT_BELOW",
    "DAY",
    "Partition",
    "PartitionSet",
    "create_day_partitions",
    "day_name",
    "drop_partition",
    "history_layout",
    "list_partitions",
    "timescaledb_installed",
]

DAY = 86_400.0
#: Partitions made ahead of the newest sample written, so a new day's first sample
#: finds its partition there (made during the previous day).
AHEAD_DAYS = 1
#: Day partitions exist for days from 1970-01-01 up to (not including) 2200-01-01;
#: times outside go to the catch-all partitions.
FIRST_DAY = 0
END_DAY = (dt.date(2200, 1, 1) - dt.date(1970, 1, 1)).days
BEFORE = "history_before"
AFTER = "history_after"
#: A batch spanning more days than this is sorted for its distinct days; a shorter one
#: is checked day by day between its first and last.
_DENSE_SPAN = 64
#: A partition dropped by retention is counted (for the log) when its statistics put it
#: below this many rows; at or above, their estimate is reported.
COUNT_BELOW = 1_000_000
#: Lock key of partition making (per database; taken for a moment, once a day).
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.history'))"
_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")


@dataclasses.dataclass(frozen=True, order=True)
class Partition:
    """One partition of ``history``: its rows have ``lo <= time < hi``."""

    lo: float
    hi: float
    name: str


def day_name(day: int) -> str:
    """``20_422`` (days since 1970-01-01) → ``"history_p20251201"``."""
    return "history_p" + (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")


def _bound(text: str) -> float:
    text = text.strip().strip("'")
    if text == "MINVALUE":
        return -math.inf
    if text == "MAXVALUE":
        return math.inf
    return float(text)


def timescaledb_installed(conn: sa.Connection) -> bool:
    """Whether the TimescaleDB extension is installed in this database (``CREATE EXTENSION``)."""
    if conn.dialect.name != "postgresql":
        return False
    query = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    return bool(conn.exec_driver_sql(query).scalar_one())


def history_layout(conn: sa.Connection) -> str:
    """``"partitioned"`` (native, by day), ``"hypertable"`` (TimescaleDB) or ``"plain"``."""
    if conn.dialect.name != "postgresql":
        return "plain"
    kind = conn.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('history')"
    ).scalar_one_or_none()
    if kind == "p":
        return "partitioned"
    if timescaledb_installed(conn) and _is_hypertable(conn):
        return "hypertable"
    return "plain"


def _is_hypertable(conn: sa.Connection) -> bool:  # pragma: no cover - needs TimescaleDB
    return bool(
        conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = 'history')"
        ).scalar_one()
    )


def list_partitions(conn: sa.Connection) -> list[Partition]:
    """The partitions of ``history`` (in the connection's schema), by range."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('history')"
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(str(bound))
        if match is None:  # a DEFAULT partition someone added: covers nothing by range
            continue
        found.append(Partition(_bound(match.group(1)), _bound(match.group(2)), str(name)))
    return sorted(found)


def create_day_partitions(conn: sa.Connection, days: list[int]) -> list[Partition]:
    """Make the partitions of ``days`` (and catch-alls for days outside 1970–2199) that
    no partition covers yet; returns every partition there is afterwards.

    Serialised between writers by an advisory lock, and looked up again under it, so
    two gateways writing the same new day never both make its partition.
    """
    conn.exec_driver_sql(_LOCK_SQL)
    existing = PartitionSet(list_partitions(conn))
    for day in sorted(set(days)):
        if existing.covers(day):
            continue
        if day < FIRST_DAY:
            sql = f"CREATE TABLE {BEFORE} PARTITION OF history FOR VALUES FROM (MINVALUE) TO (0)"
        elif day >= END_DAY:
            start = END_DAY * DAY
            sql = f"CREATE TABLE {AFTER} PARTITION OF history FOR VALUES FROM ({start!r}) TO (MAXVALUE)"
        else:
            sql = (
                f"CREATE TABLE {day_name(day)} PARTITION OF history "
                f"FOR VALUES FROM ({day * DAY!r}) TO ({(day + 1) * DAY!r})"
            )
        conn.exec_driver_sql(sql)
        existing = PartitionSet(list_partitions(conn))
    return existing.partitions


def drop_partition(conn: sa.Connection, name: str) -> int:
    """Drop one partition; returns its rows: counted, or for a partition the statistics
    put at :data:`COUNT_BELOW` rows or more, their estimate (counting would read it all)."""
    if not re.fullmatch(r"history_[a-z0-9_]+", name):
        raise ValueError(f"not a history partition: {name!r}")
    estimate = conn.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%(n)s)", {"n": name}
    ).scalar_one_or_none()
    if estimate is not None and float(estimate) >= COUNT_BELOW:
        rows = round(float(estimate))
    else:
        rows = int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())
    conn.exec_driver_sql(f"DROP TABLE {name}")
    return rows


class PartitionSet:
    """The partitions a store knows of, and which days of a batch they do not cover."""

    def __init__(self, partitions: list[Partition] | None = None) -> None:
        self.partitions = sorted(partitions or [])
        self._los = [p.lo for p in self.partitions]

    def covers(self, day: int) -> bool:
        """Whether one partition holds all of ``day`` (times outside 1970–2199: the catch-all)."""
        lo, hi = self._day_range(day)
        at = bisect.bisect_right(self._los, lo) - 1
        return at >= 0 and self.partitions[at].hi >= hi

    @staticmethod
    def _day_range(day: int) -> tuple[float, float]:
        if day < FIRST_DAY:
            return -math.inf, 0.0
        if day >= END_DAY:
            return END_DAY * DAY, math.inf
        return day * DAY, (day + 1) * DAY

    def missing(self, times: npt.NDArray[np.float64]) -> list[int]:
        """Days of ``times`` (plus :data:`AHEAD_DAYS` after the newest) without a partition.

        Days before 1970 all count as day -1 and days from 2200 on as :data:`END_DAY`:
        each stands for its catch-all partition.
        """
        if times.size == 0:
            return []
        low, high = float(np.min(times)), float(np.max(times))
        extra = []
        if math.isnan(low) or math.isnan(high):  # NaN sorts after every number: "after"
            extra.append(END_DAY)
            low, high = float(np.nanmin(times)), float(np.nanmax(times))
        first, last = _clip_day(low), _clip_day(high)
        if last - first <= _DENSE_SPAN:
            days = list(range(first, last + 1))
        else:
            clipped = np.clip(np.floor(times[~np.isnan(times)] / DAY), FIRST_DAY - 1, END_DAY)
            days = [int(d) for d in np.unique(clipped)]
        days += extra + [min(last + k, END_DAY) for k in range(1, AHEAD_DAYS + 1)]
        return sorted({d for d in days if not self.covers(d)})


def _clip_day(t: float) -> int:
    if not t >= 0:  # negative, or NaN
        return FIRST_DAY - 1
    return min(int(t // DAY), END_DAY)
