"""Device records: basic information and its changes, connection history,
maintenance plans and records.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _text(name: str, length: int = 200) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), nullable=False),
        _text("name"),
        _text("category", 64),
        _text("manufacturer"),
        _text("model"),
        _text("serial_number"),
        _text("hardware_version", 64),
        _text("firmware_version", 64),
        _text("protocol", 64),
        _text("address"),
        _text("site", 64),
        _text("area", 64),
        _text("position"),
        sa.Column("commissioned", sa.Date, nullable=True),
        _text("responsible"),
        sa.Column("safety_critical", sa.Boolean, nullable=False),
        _text("status", 32),
        sa.Column("rated", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
    )
    op.create_table(
        "device_changes",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_device_changes"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_changes_device_id_devices"
        ),
    )
    op.create_index("ix_device_changes_device_time", "device_changes", ["device_id", "time"])
    op.create_table(
        "connection_events",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("time", sa.Float(53), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_connection_events"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_connection_events_device_id_devices"
        ),
    )
    op.create_index("ix_connection_events_device_time", "connection_events", ["device_id", "time"])
    op.create_table(
        "maintenance_plans",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        _text("kind", 16),
        sa.Column("title", sa.Text, nullable=False),
        _text("trigger", 16),
        sa.Column("interval", sa.Float(53), nullable=False),
        sa.Column("lead", sa.Float(53), nullable=False),
        sa.Column("point", sa.String(130), nullable=True),
        sa.Column("alarm", sa.String(200), nullable=True),
        sa.Column("start", sa.Date, nullable=True),
        _text("overdue_priority", 8),
        sa.Column("procedure", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_plans"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_maintenance_plans_device_id_devices"
        ),
    )
    op.create_table(
        "maintenance_records",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(100), nullable=True),
        _text("kind", 16),
        sa.Column("performed_at", sa.DateTime, nullable=False),
        _text("performer"),
        sa.Column("work_done", sa.Text, nullable=False),
        _text("result", 16),
        sa.Column("passed", sa.Boolean, nullable=True),
        _text("certificate_number", 100),
        sa.Column("measurements", sa.Text, nullable=False),
        sa.Column("parts", sa.Text, nullable=False),
        sa.Column("meter_reading", sa.Float(53), nullable=True),
        sa.Column("next_due", sa.Date, nullable=True),
        sa.Column("attachments", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_records"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_maintenance_records_device_id_devices"
        ),
    )
    op.create_index(
        "ix_maintenance_records_device_time", "maintenance_records", ["device_id", "performed_at"]
    )
    op.create_index(
        "ix_maintenance_records_plan_time", "maintenance_records", ["plan_id", "performed_at"]
    )


def downgrade() -> None:
    op.drop_table("maintenance_records")
    op.drop_table("maintenance_plans")
    op.drop_table("connection_events")
    op.drop_table("device_changes")
    op.drop_table("devices")
