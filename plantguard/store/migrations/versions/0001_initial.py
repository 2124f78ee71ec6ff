"""Points, history, alarm state and alarm journal.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "points",
        sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("point_id", sa.String(130), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("key", name="pk_points"),
        sa.UniqueConstraint("point_id", name="uq_points_point_id"),
    )
    op.create_table(
        "history",
        sa.Column("point_key", sa.Integer, nullable=False),
        sa.Column("time", sa.Float(53), nullable=False),
        sa.Column("value", sa.Float(53), nullable=True),
        sa.Column("quality", sa.SmallInteger, nullable=False),
        sa.ForeignKeyConstraint(["point_key"], ["points.key"], name="fk_history_point_key_points"),
    )
    op.create_index("ix_history_point_time", "history", ["point_key", "time"])
    op.create_index("ix_history_time", "history", ["time"])
    op.create_table(
        "alarms",
        sa.Column("alarm_id", sa.String(200), nullable=False),
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
        sa.PrimaryKeyConstraint("alarm_id", name="pk_alarms"),
    )
    op.create_table(
        "alarm_journal",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alarm_id", sa.String(200), nullable=False),
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
        sa.PrimaryKeyConstraint("seq", name="pk_alarm_journal"),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.alarm_id"], name="fk_alarm_journal_alarm_id_alarms"
        ),
    )
    op.create_index("ix_alarm_journal_alarm_time", "alarm_journal", ["alarm_id", "time"])
    op.create_index("ix_alarm_journal_time", "alarm_journal", ["time"])


def downgrade() -> None:
    op.drop_table("alarm_journal")
    op.drop_table("alarms")
    op.drop_table("history")
    op.drop_table("points")
