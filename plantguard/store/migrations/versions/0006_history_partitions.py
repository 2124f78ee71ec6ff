"""History partitioned by day on PostgreSQL (a TimescaleDB hypertable where installed).

The existing table is kept as it is, rows and indexes, and attached as one
partition (``history_legacy``) covering the days it holds — no copy of the rows;
new days get partitions of their own as samples arrive (plantguard.store.partitions).
Where the TimescaleDB extension is installed, ``history`` becomes a hypertable with
one-day chunks instead.  Nothing changes on SQLite.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import math

from alembic import op

from plantguard.store.partitions import DAY, END_DAY, timescaledb_installed

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = """
    point_key INTEGER NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    value DOUBLE PRECISION,
    quality SMALLINT NOT NULL,
    CONSTRAINT fk_history_point_key_points FOREIGN KEY (point_key) REFERENCES points (key)
"""
_INDEXES = (
    "CREATE INDEX ix_history_point_time ON history (point_key, time)",
    "CREATE INDEX ix_history_time ON history (time)",
)
#: TimescaleDB's time dimension takes integers or timestamps: float seconds go in as
#: whole microseconds through this function (immutable, as TimescaleDB requires).
_TIMESCALE = (
    "CREATE OR REPLACE FUNCTION history_time_us(double precision) RETURNS bigint "
    "LANGUAGE sql IMMUTABLE AS 'SELECT floor($1 * 1000000)::bigint'",
    "SELECT create_hypertable('history', 'time', chunk_time_interval => 86400000000, "
    "time_partitioning_func => 'history_time_us', migrate_data => true)",
)


def _bounds(low: float, high: float) -> tuple[str, str]:
    """The legacy partition's range: whole days from ``low`` to past ``high``."""
    lo = "MINVALUE" if low < 0 else repr(math.floor(low / DAY) * DAY)
    if math.isnan(high) or high >= END_DAY * DAY:
        return lo, "MAXVALUE"
    return lo, repr((math.floor(high / DAY) + 1) * DAY)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if timescaledb_installed(bind):  # pragma: no cover - TimescaleDB is not installed here
        for statement in _TIMESCALE:
            op.execute(statement)
        return
    op.execute("ALTER TABLE history RENAME TO history_legacy")
    op.execute("ALTER INDEX ix_history_point_time RENAME TO history_legacy_point_key_time_idx")
    op.execute("ALTER INDEX ix_history_time RENAME TO history_legacy_time_idx")
    op.execute(f"CREATE TABLE history ({_COLUMNS}) PARTITION BY RANGE (time)")
    for statement in _INDEXES:
        op.execute(statement)
    low, high = bind.exec_driver_sql("SELECT min(time), max(time) FROM history_legacy").one()
    if low is None:
        op.execute("DROP TABLE history_legacy")
        return
    lo, hi = _bounds(float(low), float(high))
    # Checks every row against the range (one scan) and adopts the table's indexes.
    op.execute(
        f"ALTER TABLE history ATTACH PARTITION history_legacy FOR VALUES FROM ({lo}) TO ({hi})"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Partitioned or a hypertable: either way, the rows go back into a plain table.
    op.execute(f"CREATE TABLE history_plain ({_COLUMNS})")
    op.execute("INSERT INTO history_plain SELECT point_key, time, value, quality FROM history")
    op.execute("DROP TABLE history")
    op.execute("ALTER TABLE history_plain RENAME TO history")
    for statement in _INDEXES:
        op.execute(statement)
    op.execute("DROP FUNCTION IF EXISTS history_time_us(double precision)")
