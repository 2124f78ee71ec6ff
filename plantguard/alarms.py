"""The alarm manager: the one source of truth for alarm state.

Rules report findings; operators act; both go through :class:`AlarmManager`,
which applies the ISA-18.2 state machine, journals the transition *before*
anyone hears of it, and then tells the listeners (OPC UA, sinks).  A crash after
the journal write loses nothing: the state is rebuilt from the store.

States implemented so far (ISA-18.2 figure 5, the A–D core)::

    NORMAL ──activate──► UNACK ──acknowledge──► ACKED
       ▲                   │                      │
       │                 clear                  clear
       │                   ▼                      │
       └──acknowledge── RTN_UNACK ◄───────────────┘ (ACKED clears straight to NORMAL)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from .model import AlarmDefinition, Finding

__all__ = [
    "AlarmError",
    "AlarmJournal",
    "AlarmManager",
    "AlarmState",
    "AlarmStatus",
    "Transition",
]

log = logging.getLogger(__name__)


class AlarmState(enum.StrEnum):
    NORMAL = "normal"
    UNACK = "active_unacknowledged"
    ACKED = "active_acknowledged"
    RTN_UNACK = "returned_unacknowledged"

    @property
    def active(self) -> bool:
        return self in (AlarmState.UNACK, AlarmState.ACKED)

    @property
    def acknowledged(self) -> bool:
        return self in (AlarmState.NORMAL, AlarmState.ACKED)


class AlarmError(Exception):
    """An operator action that does not apply (unknown alarm, nothing to acknowledge)."""


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """Current state of one alarm, as restored from and written to the store."""

    alarm_id: str
    state: AlarmState = AlarmState.NORMAL
    condition: str = ""
    severity: int = 0
    value: float = float("nan")
    message: str = ""
    active_since: float | None = None
    changed: float = 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alarm's state, or an operator action on it, as journalled."""

    alarm_id: str
    time: float
    action: str
    before: AlarmState
    after: AlarmState
    condition: str
    severity: int
    value: float
    message: str
    user: str = ""
    comment: str = ""
    status: AlarmStatus = field(default_factory=lambda: AlarmStatus(""))


class AlarmJournal(Protocol):
    """Where transitions go before they are published (the store implements it)."""

    def define_alarms(self, definitions: Sequence[AlarmDefinition]) -> None: ...

    def record(self, transitions: Sequence[Transition]) -> None: ...

    def load_status(self) -> dict[str, AlarmStatus]: ...


Listener = Callable[[Sequence[Transition]], Awaitable[None]]


class AlarmManager:
    def __init__(self, journal: AlarmJournal, definitions: Iterable[AlarmDefinition]) -> None:
        self._journal = journal
        self.definitions: dict[str, AlarmDefinition] = {d.id: d for d in definitions}
        journal.define_alarms(list(self.definitions.values()))
        restored = journal.load_status()
        self.status: dict[str, AlarmStatus] = {
            alarm_id: restored.get(alarm_id, AlarmStatus(alarm_id)) for alarm_id in self.definitions
        }
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def active(self) -> list[AlarmStatus]:
        return [s for s in self.status.values() if s.state is not AlarmState.NORMAL]

    async def apply_findings(self, findings: Sequence[Finding]) -> list[Transition]:
        """Turn rule findings into transitions, journal them, then publish them."""
        transitions = [t for f in findings if (t := self._on_finding(f)) is not None]
        await self._commit(transitions)
        return transitions

    async def acknowledge(
        self, alarm_id: str, *, user: str, comment: str = "", now: float
    ) -> Transition:
        """The operator's acknowledge: the one entry point every client (OPC UA, CLI) uses."""
        status = self._status_of(alarm_id)
        if status.state is AlarmState.UNACK:
            after = AlarmState.ACKED
        elif status.state is AlarmState.RTN_UNACK:
            after = AlarmState.NORMAL
        else:
            raise AlarmError(f"alarm {alarm_id!r} is {status.state.value}: nothing to acknowledge")
        transition = self._transition(status, after, "acknowledge", now, user=user, comment=comment)
        await self._commit([transition])
        return transition

    def _status_of(self, alarm_id: str) -> AlarmStatus:
        try:
            return self.status[alarm_id]
        except KeyError:
            raise AlarmError(f"no alarm {alarm_id!r}") from None

    def _on_finding(self, finding: Finding) -> Transition | None:
        status = self.status.get(finding.alarm_id)
        if status is None:
            log.warning("finding for undeclared alarm %s ignored", finding.alarm_id)
            return None
        state = status.state
        if finding.active:
            if state in (AlarmState.NORMAL, AlarmState.RTN_UNACK):
                return self._transition(status, AlarmState.UNACK, "activate", finding.time, finding)
            if finding.condition != status.condition:
                # A limit alarm moving H→HH is a new, more severe condition the operator
                # has not seen: it needs acknowledging again.  HH→H keeps the acknowledgement.
                escalated = finding.severity > status.severity
                after = AlarmState.UNACK if escalated else state
                return self._transition(status, after, "change", finding.time, finding)
            return None
        if state is AlarmState.UNACK:
            return self._transition(status, AlarmState.RTN_UNACK, "clear", finding.time, finding)
        if state is AlarmState.ACKED:
            return self._transition(status, AlarmState.NORMAL, "clear", finding.time, finding)
        return None

    def _transition(
        self,
        status: AlarmStatus,
        after: AlarmState,
        action: str,
        now: float,
        finding: Finding | None = None,
        *,
        user: str = "",
        comment: str = "",
    ) -> Transition:
        if finding is not None:
            condition = finding.condition if finding.active else ""
            severity, value, message = finding.severity, finding.value, finding.message
        else:
            condition, severity, value, message = (
                status.condition,
                status.severity,
                status.value,
                status.message,
            )
        if after.active and not status.state.active:
            active_since: float | None = now
        elif after.active:
            active_since = status.active_since
        else:
            active_since = None
        new_status = replace(
            status,
            state=after,
            condition=condition,
            severity=severity,
            value=value,
            message=message,
            active_since=active_since,
            changed=now,
        )
        return Transition(
            alarm_id=status.alarm_id,
            time=now,
            action=action,
            before=status.state,
            after=after,
            condition=condition,
            severity=severity,
            value=value,
            message=message,
            user=user,
            comment=comment,
            status=new_status,
        )

    async def _commit(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        self._journal.record(transitions)  # durable first: a crash now loses nothing
        for t in transitions:
            self.status[t.alarm_id] = t.status
        for listener in self._listeners:
            try:
                await listener(transitions)
            except Exception:
                log.exception("alarm listener %r failed", listener)
