"""Tables of the store, as SQLAlchemy Core metadata.

Core tables, not ORM classes: history is written with bulk inserts and read back
as arrays, and alarm state is a handful of rows updated in place.  The schema
is owned by the Alembic migrations beside this module; this metadata must match
the head revision (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["alarm_journal", "alarms", "history", "metadata", "points", "users"]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

points = sa.Table(
    "points",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("point_id", sa.String(130), nullable=False, unique=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False, server_default=""),
)

#: One row per sample.  ``time`` is the source timestamp in seconds since the epoch
#: (UTC); ``quality`` is :class:`plantguard.model.Quality`.  On PostgreSQL the table
#: is partitioned by day of ``time`` (migration 0006, :mod:`.partitions`); the
#: partitions are not in this metadata, and the parent matches it as a plain table.
history = sa.Table(
    "history",
    metadata,
    sa.Column("point_key", sa.Integer, sa.ForeignKey("points.key"), nullable=False),
    sa.Column("time", sa.Float(53), nullable=False),
    sa.Column("value", sa.Float(53), nullable=True),
    sa.Column("quality", sa.SmallInteger, nullable=False),
    sa.Index("ix_history_point_time", "point_key", "time"),
    sa.Index("ix_history_time", "time"),
)

#: Current state of every alarm: what a restart restores.
alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("alarm_id", sa.String(200), primary_key=True),
    sa.Column("source_id", sa.String(130), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("state", sa.String(32), nullable=False, server_default="normal"),
    sa.Column("condition", sa.String(32), nullable=False, server_default=""),
    sa.Column("severity", sa.Integer, nullable=False, server_default="0"),
    sa.Column("value", sa.Float(53), nullable=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("active_since", sa.Float(53), nullable=True),
    sa.Column("changed", sa.Float(53), nullable=False, server_default="0"),
    # ISA-18.2 lifecycle (migration 0002)
    sa.Column("confirmed", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("shelving", sa.String(16), nullable=False, server_default=""),
    sa.Column("shelved_until", sa.Float(53), nullable=True),
    sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("out_of_service", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("last_user", sa.String(128), nullable=False, server_default=""),
)

#: Every transition and operator action, append-only.
alarm_journal = sa.Table(
    "alarm_journal",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alarm_id", sa.String(200), sa.ForeignKey("alarms.alarm_id"), nullable=False),
    sa.Column("time", sa.Float(53), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("state_before", sa.String(32), nullable=False),
    sa.Column("state_after", sa.String(32), nullable=False),
    sa.Column("condition", sa.String(32), nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("value", sa.Float(53), nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("shelved_until", sa.Float(53), nullable=True),
    sa.Index("ix_alarm_journal_alarm_time", "alarm_id", "time"),
    sa.Index("ix_alarm_journal_time", "time"),
)

#: Users who may act on alarms, with their role and scrypt password hash (see plantguard.auth).
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created", sa.Float(53), nullable=False, server_default="0"),
)
