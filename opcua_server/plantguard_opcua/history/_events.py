"""ReadEvent from the alarm journal: the condition events live subscribers got, again.

A journal row records a transition, not every flag its event carried (shelving,
suppression, confirmation, the last severity); those are replayed from the latest
earlier row of each action, and the fields come from :func:`.events.condition_fields`
as live events' do, so a historical event reads like the live one and passes the
same WhereClause evaluator and select-clause mapping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from asyncua import ua

from plantguard.alarms import Action, AlarmManager, AlarmState, AlarmStatus, Shelving
from plantguard.store import Store
from plantguard.store.schema import alarm_journal

from ..event_filter import SubtypeAwareWhereClause
from ..events import ConditionEvent, ConditionInfo, condition_fields
from ._series import epoch_seconds

__all__ = ["EventCursor", "EventQuery", "Journal"]


@dataclass(slots=True)
class _Flags:
    """An alarm's state a journal row does not hold, as of some row: replayed from earlier rows."""

    shelving: Shelving = Shelving.NONE
    suppressed: bool = False
    out_of_service: bool = False
    confirmed: bool = True
    last_severity: int | None = None

    def apply(self, row: Any, confirm_required: bool) -> None:
        """Advance past ``row``, as :mod:`plantguard.alarms.machine` changed the status."""
        available = (
            self.shelving is Shelving.NONE and not self.suppressed and not self.out_of_service
        )
        action = row.action
        if action in (Action.SUPPRESS.value, Action.UNSUPPRESS.value):
            self.suppressed = action == Action.SUPPRESS.value
        elif action in (Action.REMOVE_FROM_SERVICE.value, Action.RETURN_TO_SERVICE.value):
            self.out_of_service = action == Action.REMOVE_FROM_SERVICE.value
        elif action == Action.SHELVE.value:
            self.shelving = Shelving.TIMED
        elif action == Action.ONE_SHOT_SHELVE.value:
            self.shelving = Shelving.ONE_SHOT
        elif action == Action.CONFIRM.value:
            self.confirmed = True
        elif _reannunciates(row) and available and confirm_required:
            self.confirmed = False
        if row.shelved_until is None:
            self.shelving = Shelving.NONE  # unshelved, expired, or a one-shot shelve ended


def _reannunciates(row: Any) -> bool:
    """An activation, or a change to a more severe condition that needs acknowledging again."""
    if row.action == Action.ACTIVATE.value:
        return True
    return bool(
        row.action == Action.CHANGE.value
        and row.state_before == AlarmState.ACKED.value
        and row.state_after == AlarmState.UNACK.value
    )


def _seeded(
    rows_by_action: dict[str, Any], confirm_required: bool, severity_of: Callable[[Any], int]
) -> _Flags:
    """An alarm's flags from the latest journal row of each action before some position
    (an approximation of replaying all of them: the latest row decides each flag)."""
    flags = _Flags()
    latest = sorted(rows_by_action.values(), key=lambda r: r.seq)
    for row in latest:  # oldest first: each action's latest row, in journal order
        flags.apply(row, confirm_required)
    evented = [r for r in latest if r.action != Action.CHATTERING.value]
    if evented:
        flags.last_severity = severity_of(evented[-1])
    return flags


def _event_id(seq: int) -> bytes:
    """A stable EventId for journal row ``seq`` (the same on every read and restart)."""
    return b"PGJ\x00" + seq.to_bytes(12, "big")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A ReadEvent request for one notifier: its domain, direction and filter."""

    low: float  # domain bounds; which end is included depends on the direction
    high: float
    reverse: bool
    count: int
    pages: bool  # count is a page size (both times given), not the whole answer
    filter: ua.EventFilter

    @staticmethod
    def of(details: ua.ReadEventDetails) -> EventQuery | None:
        start, end = epoch_seconds(details.StartTime), epoch_seconds(details.EndTime)
        count = int(details.NumValuesPerNode)
        evfilter = details.Filter if details.Filter is not None else ua.EventFilter()
        if start is not None and end is not None:
            reverse = end < start
            low, high = (end, start) if reverse else (start, end)
            return EventQuery(low, high, reverse, count, True, evfilter)
        if start is not None:
            return EventQuery(start, math.inf, False, count, False, evfilter)
        if end is not None:
            return EventQuery(-math.inf, end, True, count, False, evfilter)
        return None


@dataclass(slots=True)
class EventCursor:
    """Where a ReadEvent is in the journal: the last row consumed, in read order."""

    notifier: ua.NodeId
    alarms: frozenset[str] | None  # None: every alarm (the Server object)
    query: EventQuery
    where: SubtypeAwareWhereClause
    remaining: int | None  # values still to return when the count is the whole answer
    after: tuple[float, int] | None = None


def _domain(query: EventQuery) -> Any:
    """Forward reads include the start and exclude the end (Part 11 §4.4); reverse reads
    include their start (the later time) and exclude their end."""
    t = alarm_journal.c.time
    if query.reverse:
        return sa.and_(t > query.low, t <= query.high)
    return sa.and_(t >= query.low, t < query.high)


def _journal_rows(store: Store, cursor: EventCursor, limit: int) -> list[Any]:
    """The next ``limit`` journal rows of the cursor's alarms, in read order."""
    j = alarm_journal
    query = sa.select(j).where(_domain(cursor.query))
    if cursor.alarms is not None:
        query = query.where(j.c.alarm_id.in_(sorted(cursor.alarms)))
    if cursor.after is not None:
        t, seq = cursor.after
        if cursor.query.reverse:
            query = query.where(sa.or_(j.c.time < t, sa.and_(j.c.time == t, j.c.seq < seq)))
        else:
            query = query.where(sa.or_(j.c.time > t, sa.and_(j.c.time == t, j.c.seq > seq)))
    order = (j.c.time.desc(), j.c.seq.desc()) if cursor.query.reverse else (j.c.time, j.c.seq)
    with store.engine.connect() as conn:
        return list(conn.execute(query.order_by(*order).limit(limit)).all())


def _seed_flags(
    store: Store,
    alarm_ids: Sequence[str],
    oldest: Any,
    confirm_required: bool,
    severity_of: Callable[[Any], int],
) -> dict[str, _Flags]:
    """Each alarm's flags just before journal row ``oldest``, from the latest earlier row
    of each action (one grouped query, then those rows)."""
    j = alarm_journal
    before = sa.or_(j.c.time < oldest.time, sa.and_(j.c.time == oldest.time, j.c.seq < oldest.seq))
    latest = (
        sa.select(sa.func.max(j.c.seq))
        .where(j.c.alarm_id.in_(alarm_ids), before)
        .group_by(j.c.alarm_id, j.c.action)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(j).where(j.c.seq.in_(latest))).all()
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        grouped.setdefault(row.alarm_id, {})[row.action] = row
    return {a: _seeded(grouped.get(a, {}), confirm_required, severity_of) for a in alarm_ids}


class Journal:
    """Turns journal rows into condition events, as :class:`.conditions.ConditionPublisher`
    made them live (``_snapshot``), from what each row records and a replay of the rest."""

    def __init__(self, conditions: Mapping[str, ConditionInfo], alarms: AlarmManager) -> None:
        self.conditions = conditions
        self.alarms = alarms

    def events(
        self, store: Store, cursor: EventCursor, limit: int
    ) -> tuple[list[tuple[tuple[float, int], ConditionEvent | None]], bool]:
        """The next batch of rows as (position, event or None), in read order, and whether
        the journal is exhausted.  Runs in a worker thread."""
        rows = _journal_rows(store, cursor, limit)
        if not rows:
            return [], True
        ascending = rows[::-1] if cursor.query.reverse else rows
        confirm_required = self.alarms.policy.confirm_required
        ids = sorted({r.alarm_id for r in rows if r.alarm_id in self.conditions})
        flags = {}
        if ids:
            flags = _seed_flags(store, ids, ascending[0], confirm_required, self._severity)
        built: list[tuple[tuple[float, int], ConditionEvent | None]] = []
        for row in ascending:
            state = flags.get(row.alarm_id)
            event = None
            if state is not None and row.action != Action.CHATTERING.value:
                severity = self._severity(row)
                last_severity = state.last_severity or severity
                state.apply(row, confirm_required)
                state.last_severity = severity
                event = self._event(row, state, severity, last_severity, cursor.notifier)
            built.append(((float(row.time), int(row.seq)), event))
        if cursor.query.reverse:
            built.reverse()
        return built, len(rows) < limit

    def _severity(self, row: Any) -> int:
        """The event's Severity: the row's, else the alarm's priority (as live events)."""
        definition = self.alarms.definitions.get(row.alarm_id)
        return int(row.severity) or (int(definition.priority) if definition else 1)

    def _event(
        self, row: Any, flags: _Flags, severity: int, last_severity: int, notifier: ua.NodeId
    ) -> ConditionEvent | None:
        """The event live subscribers got for ``row`` (None where they got none)."""
        try:
            state = AlarmState(row.state_after)
        except ValueError:
            return None
        status = AlarmStatus(
            alarm_id=row.alarm_id, state=state, condition=row.condition,
            severity=int(row.severity), value=math.nan if row.value is None else float(row.value),
            message=row.message, changed=float(row.time), confirmed=flags.confirmed,
            shelving=flags.shelving, shelved_until=row.shelved_until,
            suppressed=flags.suppressed, out_of_service=flags.out_of_service,
            comment=row.comment, last_user=row.user,
        )  # fmt: skip
        if status.out_of_service and row.action != Action.REMOVE_FROM_SERVICE.value:
            return None  # a disabled condition sends only its Disable event
        info = self.conditions[row.alarm_id]
        fields = condition_fields(
            info, status, event_id=_event_id(int(row.seq)), time=float(row.time),
            message=row.message or row.alarm_id, client_user=row.user, comment=row.comment,
            severity=severity, last_severity=last_severity,
            max_time_shelved=self.alarms.policy.max_shelve,
        )  # fmt: skip
        fields["ReceiveTime"] = fields["Time"]  # received when it was journalled
        return ConditionEvent(fields, emitting_node=notifier, condition_id=info.node_id)
