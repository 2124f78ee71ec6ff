"""Safety-production risk register and hidden dangers (GB/T 33000).

Risk points with their assessment and change history; hidden dangers with their
lifecycle state and an append-only journal of every transition.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _text(name: str, length: int = 200) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "risk_points",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        _text("area", 64),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("point_id", sa.String(130), nullable=True),
        sa.Column("hazards", sa.Text, nullable=False),
        _text("method", 16),
        sa.Column("factors", sa.Text, nullable=False),
        sa.Column("score", sa.Float(53), nullable=False),
        _text("grade", 8),
        sa.Column("measures", sa.Text, nullable=False),
        _text("level", 32),
        _text("responsible"),
        sa.Column("plans", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_points"),
    )
    op.create_table(
        "risk_changes",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("risk_id", sa.String(100), nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_risk_changes"),
        sa.ForeignKeyConstraint(
            ["risk_id"], ["risk_points.id"], name="fk_risk_changes_risk_id_risk_points"
        ),
    )
    op.create_index("ix_risk_changes_risk_time", "risk_changes", ["risk_id", "time"])
    op.create_table(
        "hazards",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _text("source", 16),
        _text("source_ref"),
        sa.Column("risk_id", sa.String(100), nullable=True),
        _text("area", 64),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("point_id", sa.String(130), nullable=True),
        _text("state", 16),
        _text("grade", 8),
        _text("reported_by", 128),
        sa.Column("reported_at", sa.Float(53), nullable=False),
        sa.Column("measures", sa.Text, nullable=False),
        _text("assignee", 128),
        sa.Column("deadline", sa.Float(53), nullable=True),
        sa.Column("funds", sa.Float(53), nullable=True),
        _text("rectified_by", 128),
        sa.Column("rectified_at", sa.Float(53), nullable=True),
        sa.Column("evidence", sa.Text, nullable=False),
        _text("verified_by", 128),
        sa.Column("closed_at", sa.Float(53), nullable=True),
        sa.Column("changed", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hazards"),
        sa.ForeignKeyConstraint(
            ["risk_id"], ["risk_points.id"], name="fk_hazards_risk_id_risk_points"
        ),
    )
    op.create_index("ix_hazards_state", "hazards", ["state"])
    op.create_index("ix_hazards_source_ref", "hazards", ["source_ref"])
    op.create_table(
        "hazard_journal",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("hazard_id", sa.String(100), nullable=False),
        sa.Column("time", sa.Float(53), nullable=False),
        _text("action", 32),
        _text("state_before", 16),
        _text("state_after", 16),
        _text("user", 128),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_hazard_journal"),
        sa.ForeignKeyConstraint(
            ["hazard_id"], ["hazards.id"], name="fk_hazard_journal_hazard_id_hazards"
        ),
    )
    op.create_index("ix_hazard_journal_hazard_time", "hazard_journal", ["hazard_id", "time"])
    op.create_index("ix_hazard_journal_time", "hazard_journal", ["time"])


def downgrade() -> None:
    op.drop_table("hazard_journal")
    op.drop_table("hazards")
    op.drop_table("risk_changes")
    op.drop_table("risk_points")
