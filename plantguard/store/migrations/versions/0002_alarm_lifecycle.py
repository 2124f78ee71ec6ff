"""Alarm lifecycle (ISA-18.2): shelving, suppression, out of service, confirmation,
the last comment and user on each alarm; shelving expiry in the journal; users.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ALARM_COLUMNS = (
    "confirmed",
    "shelving",
    "shelved_until",
    "suppressed",
    "out_of_service",
    "comment",
    "last_user",
)


def upgrade() -> None:
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(
            sa.Column("confirmed", sa.Boolean, nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("shelving", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("shelved_until", sa.Float(53), nullable=True))
        batch.add_column(
            sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("out_of_service", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("comment", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("last_user", sa.String(128), nullable=False, server_default=""))
    with op.batch_alter_table("alarm_journal") as batch:
        batch.add_column(sa.Column("shelved_until", sa.Float(53), nullable=True))
    op.create_table(
        "users",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created", sa.Float(53), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("alarm_journal") as batch:
        batch.drop_column("shelved_until")
    with op.batch_alter_table("alarms") as batch:
        for column in reversed(_ALARM_COLUMNS):
            batch.drop_column(column)
