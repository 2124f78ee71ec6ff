"""Device counters: what each device's driver counted since the gateway started
(messages, malformed payloads …), so ``plantguard stats`` and OPC UA show them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_counters",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("since", sa.Float(53), nullable=False),
        sa.Column("updated_at", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "name", name="pk_device_counters"),
    )


def downgrade() -> None:
    op.drop_table("device_counters")
