"""Reading and writing the risk register and the hidden dangers (GB/T 33000).

Two promises, the same as for alarms and device records:

* **A transition and its journal entry commit together.**  The hidden danger's
  row is updated only if it is still in the state the caller saw (``WHERE state
  = before``), and the journal row is inserted in the same transaction: a crash
  leaves either both or neither, and two people acting at once cannot both move
  the same hidden danger out of one state.
* **Imports land whole or not at all**, and a risk point keeps its change
  history field by field with the user who changed it, as device information does.

What may happen in which state, and who may do it, is not decided here: the
lifecycle (``plantguard_risk.lifecycle``) decides, then calls :meth:`RiskStore.transition`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from .records_schema import connection_events, maintenance_records
from .risk_schema import hazard_journal, hazards, risk_changes, risk_points
from .schema import alarm_journal, alarms

__all__ = [
    "AlarmOverview",
    "HazardConflict",
    "HazardRow",
    "JournalEntry",
    "PlantState",
    "RiskChange",
    "RiskPointRow",
    "RiskStore",
]

_JSON_FIELDS = ("hazards", "factors", "measures", "plans")
#: Alarm states an operator has not acknowledged (plantguard.alarms.AlarmState values).
_UNACK_STATES = ("active_unacknowledged", "returned_unacknowledged", "latched_unacknowledged")


class HazardConflict(Exception):
    """The hidden danger is not (any more) in the state the transition started from."""


@dataclass(frozen=True, slots=True)
class RiskPointRow:
    """One risk point (风险点) as stored."""

    id: str
    name: str
    area: str = ""
    device_id: str | None = None
    point_id: str | None = None
    hazards: list[str] = field(default_factory=list)
    method: str = "lec"
    factors: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    grade: str = "blue"
    measures: list[str] = field(default_factory=list)
    level: str = ""
    responsible: str = ""
    plans: list[str] = field(default_factory=list)
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RiskChange:
    time: dt.datetime
    user: str
    field: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class HazardRow:
    """One hidden danger (隐患), or a candidate a rule opened, as stored."""

    id: str
    title: str
    state: str
    reported_by: str
    reported_at: float
    description: str = ""
    source: str = "person"
    source_ref: str = ""
    risk_id: str | None = None
    area: str = ""
    device_id: str | None = None
    point_id: str | None = None
    grade: str = ""
    measures: str = ""
    assignee: str = ""
    deadline: float | None = None
    funds: float | None = None
    rectified_by: str = ""
    rectified_at: float | None = None
    evidence: str = ""
    verified_by: str = ""
    closed_at: float | None = None
    changed: float = 0.0


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One transition of a hidden danger: who did what, when, from which state to which."""

    hazard_id: str
    time: float
    action: str
    state_before: str
    state_after: str
    user: str
    comment: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlarmOverview:
    """What the index and the candidate rules need of one alarm (its current state row)."""

    alarm_id: str
    source_id: str
    device_id: str
    kind: str
    priority: int
    state: str
    condition: str
    active_since: float | None
    annunciated: bool  # not shelved, suppressed or out of service


def _risk_values(row: RiskPointRow, now: dt.datetime) -> dict[str, Any]:
    values = asdict(row)
    for name in _JSON_FIELDS:
        values[name] = json.dumps(values[name], ensure_ascii=False, sort_keys=True)
    values["updated_at"] = now
    return values


def _risk_from(row: sa.Row[Any]) -> RiskPointRow:
    data = dict(row._mapping)
    for name in _JSON_FIELDS:
        data[name] = json.loads(data[name])
    return RiskPointRow(**data)


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _entry_values(entry: JournalEntry) -> dict[str, Any]:
    values = asdict(entry)
    values["detail"] = json.dumps(entry.detail, ensure_ascii=False, sort_keys=True)
    return values


class RiskStore:
    """The risk register and hidden dangers of one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    # --- risk points ------------------------------------------------------------

    def upsert_risks(
        self, rows: Sequence[RiskPointRow], user: str, now: dt.datetime | None = None
    ) -> int:
        """Insert or update ``rows`` in one transaction; journal every changed field."""
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self._engine.begin() as conn:
            existing = {
                r.id: _risk_from(r)
                for r in conn.execute(
                    sa.select(risk_points).where(risk_points.c.id.in_([x.id for x in rows]))
                )
            }
            for row in rows:
                values = _risk_values(row, now)
                old = existing.get(row.id)
                if old is None:
                    conn.execute(risk_points.insert().values(values))
                    changes = [("created", None, row.name)]
                else:
                    changes = _changed_fields(old, row)
                    if changes:
                        conn.execute(
                            risk_points.update().where(risk_points.c.id == row.id).values(values)
                        )
                for name, before, after in changes:
                    conn.execute(
                        risk_changes.insert().values(
                            risk_id=row.id,
                            time=now,
                            user=user,
                            field=name,
                            old=_shown(before),
                            new=_shown(after),
                        )
                    )
        return len(rows)

    def risks(self) -> list[RiskPointRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(risk_points).order_by(risk_points.c.id)).all()
        return [_risk_from(r) for r in rows]

    def risk(self, risk_id: str) -> RiskPointRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(risk_points).where(risk_points.c.id == risk_id)).first()
        return None if row is None else _risk_from(row)

    def risk_changes(self, risk_id: str) -> list[RiskChange]:
        query = (
            sa.select(risk_changes)
            .where(risk_changes.c.risk_id == risk_id)
            .order_by(risk_changes.c.seq)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [RiskChange(r.time, r.user, r.field, r.old, r.new) for r in rows]

    # --- hidden dangers ---------------------------------------------------------

    def add_hazards(self, rows: Sequence[HazardRow], entries: Sequence[JournalEntry]) -> int:
        """Insert new hidden dangers with their first journal entries, all or nothing."""
        with self._engine.begin() as conn:
            for row in rows:
                conn.execute(hazards.insert().values(asdict(row)))
            for entry in entries:
                conn.execute(hazard_journal.insert().values(_entry_values(entry)))
        return len(rows)

    def transition(self, entry: JournalEntry, changes: Mapping[str, Any]) -> None:
        """Move one hidden danger from ``entry.state_before`` to ``entry.state_after``.

        ``changes`` are the other columns the transition sets.  Raises
        :class:`HazardConflict` (and writes nothing) if the hidden danger is not in
        ``state_before`` when the update runs.
        """
        values = {**changes, "state": entry.state_after, "changed": entry.time}
        with self._engine.begin() as conn:
            result = conn.execute(
                hazards.update()
                .where(hazards.c.id == entry.hazard_id, hazards.c.state == entry.state_before)
                .values(values)
            )
            if int(result.rowcount or 0) != 1:
                raise HazardConflict(
                    f"hidden danger {entry.hazard_id} is no longer {entry.state_before}"
                )
            conn.execute(hazard_journal.insert().values(_entry_values(entry)))

    def hazard(self, hazard_id: str) -> HazardRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(hazards).where(hazards.c.id == hazard_id)).first()
        return None if row is None else HazardRow(**row._mapping)

    def hazards(self, states: Iterable[str] | None = None) -> list[HazardRow]:
        query = sa.select(hazards).order_by(hazards.c.reported_at, hazards.c.id)
        if states is not None:
            query = query.where(hazards.c.state.in_(list(states)))
        with self._engine.connect() as conn:
            return [HazardRow(**r._mapping) for r in conn.execute(query)]

    def hazards_by_ref(self, refs: Iterable[str]) -> dict[str, list[HazardRow]]:
        """Hidden dangers and candidates opened from each source reference."""
        wanted = sorted(set(refs))
        found: dict[str, list[HazardRow]] = {}
        if not wanted:
            return found
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                query = sa.select(hazards).where(
                    hazards.c.source_ref.in_(wanted[start : start + 500])
                )
                for r in conn.execute(query):
                    found.setdefault(r.source_ref, []).append(HazardRow(**r._mapping))
        return found

    def journal(self, hazard_id: str | None = None, since: float = 0.0) -> list[JournalEntry]:
        query = (
            sa.select(hazard_journal)
            .where(hazard_journal.c.time >= since)
            .order_by(hazard_journal.c.seq)
        )
        if hazard_id is not None:
            query = query.where(hazard_journal.c.hazard_id == hazard_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            JournalEntry(
                r.hazard_id,
                r.time,
                r.action,
                r.state_before,
                r.state_after,
                r.user,
                r.comment,
                json.loads(r.detail),
            )
            for r in rows
        ]


class PlantState:
    """Read-only queries of alarm and connection state, for the index and the candidates."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def alarms(
        self, ids: Iterable[str] | None = None, *, active_before: float | None = None
    ) -> list[AlarmOverview]:
        """Alarms by id, or those whose condition has been present since before
        ``active_before`` — filtered in the database, so a site of a hundred
        thousand alarms reads only the few that matter."""
        query = sa.select(alarms)
        if ids is not None:
            query = query.where(alarms.c.alarm_id.in_(sorted(set(ids))[:5000]))
        if active_before is not None:
            query = query.where(alarms.c.condition != "", alarms.c.active_since <= active_before)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AlarmOverview(
                r.alarm_id,
                r.source_id,
                r.device_id,
                r.kind,
                int(r.priority),
                r.state,
                r.condition,
                r.active_since,
                not (r.shelving or r.suppressed or r.out_of_service),
            )
            for r in rows
        ]

    def alarm_counts(
        self, standing_before: float, detection_kinds: Sequence[str]
    ) -> tuple[dict[int, int], dict[int, int], int]:
        """Annunciated alarms counted in the database: unacknowledged by priority,
        standing (active since before ``standing_before``) by priority, and active
        alarms of the detection kinds."""
        shown = sa.and_(
            alarms.c.shelving == "",
            alarms.c.suppressed == sa.false(),
            alarms.c.out_of_service == sa.false(),
        )
        unack = (
            sa.select(alarms.c.priority, sa.func.count())
            .where(shown, alarms.c.state.in_(_UNACK_STATES))
            .group_by(alarms.c.priority)
        )
        standing = (
            sa.select(alarms.c.priority, sa.func.count())
            .where(shown, alarms.c.condition != "", alarms.c.active_since <= standing_before)
            .group_by(alarms.c.priority)
        )
        detection = (
            sa.select(sa.func.count())
            .select_from(alarms)
            .where(shown, alarms.c.condition != "", alarms.c.kind.in_(list(detection_kinds)))
        )
        with self._engine.connect() as conn:
            by_unack = {int(p): int(n) for p, n in conn.execute(unack).all()}
            by_standing = {int(p): int(n) for p, n in conn.execute(standing).all()}
            flags = int(conn.execute(detection).scalar_one())
        return by_unack, by_standing, flags

    def activations_since(self, since: float) -> dict[str, int]:
        """How often each alarm was activated from ``since`` on (chattering)."""
        query = (
            sa.select(alarm_journal.c.alarm_id, sa.func.count())
            .where(alarm_journal.c.action == "activate", alarm_journal.c.time >= since)
            .group_by(alarm_journal.c.alarm_id)
        )
        with self._engine.connect() as conn:
            return {str(a): int(n) for a, n in conn.execute(query).all()}

    def failed_inspections(self, since: float) -> list[tuple[str, str, str]]:
        """(record id, device, work done) of records with ``passed: false`` performed
        from ``since`` (epoch seconds) on."""
        start = dt.datetime.fromtimestamp(since, dt.UTC).replace(tzinfo=None)
        query = (
            sa.select(
                maintenance_records.c.id,
                maintenance_records.c.device_id,
                maintenance_records.c.work_done,
            )
            .where(
                maintenance_records.c.passed == sa.false(),
                maintenance_records.c.performed_at >= start,
            )
            .order_by(maintenance_records.c.performed_at, maintenance_records.c.id)
        )
        with self._engine.connect() as conn:
            return [(str(i), str(d), str(w)) for i, d, w in conn.execute(query).all()]

    def connection_states(self) -> dict[str, str]:
        """The last connection state recorded for each device."""
        last = (
            sa.select(
                connection_events.c.device_id, sa.func.max(connection_events.c.seq).label("seq")
            )
            .group_by(connection_events.c.device_id)
            .subquery()
        )
        query = sa.select(connection_events.c.device_id, connection_events.c.state).join(
            last, connection_events.c.seq == last.c.seq
        )
        with self._engine.connect() as conn:
            return {str(d): str(s) for d, s in conn.execute(query).all()}


def _changed_fields(old: RiskPointRow, new: RiskPointRow) -> list[tuple[str, Any, Any]]:
    before, after = asdict(old), asdict(new)
    return [
        (name, before[name], after[name])
        for name in before
        if name not in ("id", "updated_at") and before[name] != after[name]
    ]
