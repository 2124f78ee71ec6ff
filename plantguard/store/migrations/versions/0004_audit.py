"""Audit of offline changes: users, maintenance records and imports, with the acting user.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("time", sa.Float(53), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit"),
    )
    op.create_index("ix_audit_time", "audit", ["time"])


def downgrade() -> None:
    op.drop_index("ix_audit_time", table_name="audit")
    op.drop_table("audit")
