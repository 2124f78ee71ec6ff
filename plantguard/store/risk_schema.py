"""Tables of the risk register and the hidden dangers (migration 0005).

Risk points carry their assessment as JSON text (hazards, factors, measures,
linked plans) because they are exchanged and shown whole, never queried by part.
Hidden-danger times are float epoch seconds like the alarm tables: the lifecycle
is driven by the same clock as the alarms it raises.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

__all__ = ["hazard_journal", "hazards", "risk_changes", "risk_points"]


def _text(name: str, length: int = 200) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


risk_points = sa.Table(
    "risk_points",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
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
)

#: Who changed which field of a risk point, when, from what to what (as for devices).
risk_changes = sa.Table(
    "risk_changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("risk_id", sa.String(100), sa.ForeignKey("risk_points.id"), nullable=False),
    sa.Column("time", sa.DateTime, nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Index("ix_risk_changes_risk_time", "risk_id", "time"),
)

#: Current state of every hidden danger (and of every candidate a rule opened).
hazards = sa.Table(
    "hazards",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    _text("source", 16),
    _text("source_ref"),
    sa.Column("risk_id", sa.String(100), sa.ForeignKey("risk_points.id"), nullable=True),
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
    sa.Index("ix_hazards_state", "state"),
    sa.Index("ix_hazards_source_ref", "source_ref"),
)

#: Every transition of a hidden danger, append-only, written in the transaction of the change.
hazard_journal = sa.Table(
    "hazard_journal",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hazard_id", sa.String(100), sa.ForeignKey("hazards.id"), nullable=False),
    sa.Column("time", sa.Float(53), nullable=False),
    _text("action", 32),
    _text("state_before", 16),
    _text("state_after", 16),
    _text("user", 128),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_hazard_journal_hazard_time", "hazard_id", "time"),
    sa.Index("ix_hazard_journal_time", "time"),
)
