"""The ``audit`` table: who changed users and records from the command line, and when.

Alarm actions have their journal, device basic information its change history;
what remained unrecorded were the offline commands — a user added or removed, a
maintenance record or an import written straight into the store.  Each now
names its acting user (``--as``, see :mod:`plantguard.cli.acting`) and leaves a
row here.  Append-only, like the alarm journal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import metadata

__all__ = ["AuditEntry", "AuditLog", "audit"]

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float(53), nullable=False),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_time", "time"),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: float
    user: str
    action: str
    target: str
    detail: str


class AuditLog:
    """The audit rows of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(
        self,
        user: str,
        action: str,
        target: str,
        detail: str = "",
        *,
        conn: sa.Connection | None = None,
    ) -> None:
        """Append one row (inside ``conn``'s transaction when given, so it commits with the change)."""
        row = {
            "time": time.time(),
            "user": user,
            "action": action,
            "target": target[:200],
            "detail": detail,
        }
        if conn is not None:
            conn.execute(audit.insert().values(row))
            return
        with self._engine.begin() as own:
            own.execute(audit.insert().values(row))

    def entries(self) -> list[AuditEntry]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(audit).order_by(audit.c.seq)).all()
        return [AuditEntry(r.time, r.user, r.action, r.target, r.detail) for r in rows]
