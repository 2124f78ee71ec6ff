"""The alarm manager: the one source of truth for alarm state.

Rules report findings; operators act; the gateway itself expires shelves and
suppresses alarms of devices that are offline or under maintenance.  All three
go through :class:`AlarmManager`, which applies the state machine
(:mod:`.machine`), journals the transitions *before* anyone hears of them, and
then tells the listeners (OPC UA, sinks, the console).  A crash after the
journal write loses nothing: the state is rebuilt from the store.

Every operator action — from OPC UA, the CLI or a future web view — enters
through :meth:`AlarmManager.act`, which checks the user's role, applies the
transition, journals user, time and comment, and then publishes it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from ..auth import SYSTEM, Principal, Role, UserDirectory, authenticate
from ..model import AlarmDefinition, Finding
from . import errors, machine
from .detect import ChatterDetector, FloodDetector
from .states import Action, AlarmPolicy, AlarmState, AlarmStatus, Transition

__all__ = ["AlarmJournal", "AlarmManager", "Listener", "is_comm_alarm"]

log = logging.getLogger("plantguard.alarms")

Listener = Callable[[Sequence[Transition]], Awaitable[None]]

#: Operator actions :meth:`AlarmManager.act` accepts.
OPERATOR_ACTIONS = frozenset(a for a in Action if a.required_role < Role.ADMIN)


class AlarmJournal(Protocol):
    """Where transitions go before they are published (the store implements it)."""

    def define_alarms(self, definitions: Sequence[AlarmDefinition]) -> None: ...

    def record(self, transitions: Sequence[Transition]) -> None: ...

    def load_status(self) -> dict[str, AlarmStatus]: ...


def is_comm_alarm(definition: AlarmDefinition) -> bool:
    """A device's communication-loss alarm (``<device>.comm``, kind ``system``).

    While it is active the device is *offline*, and its other alarms are
    suppressed by design: their values are stale, so they can neither raise nor
    clear meaningfully, and the one alarm the operator needs is the comm alarm.
    """
    return definition.kind == "system" and definition.id == f"{definition.device_id}.comm"


class AlarmManager:
    def __init__(
        self,
        journal: AlarmJournal,
        definitions: Iterable[AlarmDefinition],
        *,
        policy: AlarmPolicy | None = None,
        users: UserDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._journal = journal
        self.policy = policy or AlarmPolicy()
        #: Where users and their password hashes are kept (None: nobody can log in).
        self.users = users
        self._clock = clock
        self.definitions: dict[str, AlarmDefinition] = {d.id: d for d in definitions}
        journal.define_alarms(list(self.definitions.values()))
        restored = journal.load_status()
        self.status: dict[str, AlarmStatus] = {
            alarm_id: restored.get(alarm_id, AlarmStatus(alarm_id)) for alarm_id in self.definitions
        }
        self._listeners: list[Listener] = []
        self._by_device: dict[str, list[str]] = {}
        for d in self.definitions.values():
            self._by_device.setdefault(d.device_id, []).append(d.id)
        self._maintenance: set[str] = set()
        # Devices whose comm alarm is active, as restored.
        self._offline: set[str] = {
            d.device_id
            for d in self.definitions.values()
            if is_comm_alarm(d) and self.status[d.id].process_active
        }
        self._suppression_dirty = True
        self.chatter = ChatterDetector(self.policy.chatter_count, self.policy.chatter_window)
        self.flood = FloodDetector(self.policy.flood_count, self.policy.flood_window)

    # --- observers ----------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after each commit; return the function that unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def active(self) -> list[AlarmStatus]:
        return [s for s in self.status.values() if s.state is not AlarmState.NORMAL]

    @property
    def flooding(self) -> bool:
        return self.flood.flooding

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The principal for a user name and password, if the manager has a user directory."""
        if self.users is None or not name:
            return None
        return authenticate(self.users, name, password)

    # --- rules ----------------------------------------------------------------------------

    async def apply_findings(self, findings: Sequence[Finding]) -> list[Transition]:
        """Turn rule findings into transitions, journal them, then publish them."""
        work = dict(self.status)
        transitions: list[Transition] = []
        offline_changed: set[str] = set()
        for finding in findings:
            definition = self.definitions.get(finding.alarm_id)
            if definition is None:
                log.warning("finding for undeclared alarm %s ignored", finding.alarm_id)
                continue
            old = work[finding.alarm_id]
            result = machine.apply_finding(
                old, finding, latching=definition.latching, policy=self.policy
            )
            if result is None:
                continue
            action, new = result
            work[new.alarm_id] = new
            transitions.append(_transition(old, new, action, finding.time))
            if action is Action.ACTIVATE:
                transitions.extend(self._on_activation(new, work, finding.time))
            if is_comm_alarm(definition) and new.process_active != old.process_active:
                target = self._offline.add if new.process_active else self._offline.discard
                target(definition.device_id)
                offline_changed.add(definition.device_id)
        for device_id in offline_changed:
            transitions.extend(self._suppression(device_id, work, self._clock_of(findings)))
        await self._commit(transitions)
        return transitions

    def _on_activation(
        self, status: AlarmStatus, work: dict[str, AlarmStatus], now: float
    ) -> list[Transition]:
        extra = []
        if self.chatter.activation(status.alarm_id, now):
            log.warning("alarm %s is chattering", status.alarm_id)
            extra.append(
                _transition(
                    status,
                    status,
                    Action.CHATTERING,
                    now,
                    user=SYSTEM.name,
                    comment=(
                        f"{self.policy.chatter_count} or more activations within "
                        f"{self.policy.chatter_window:g} s"
                    ),
                )
            )
        if status.available and self.flood.activation(now):
            log.warning(
                "alarm flood: more than %d alarms within %g s",
                self.policy.flood_count,
                self.policy.flood_window,
            )
        return extra

    @staticmethod
    def _clock_of(findings: Sequence[Finding]) -> float:
        return max(f.time for f in findings)

    # --- operators: the one entry point ---------------------------------------------------

    async def act(
        self,
        action: Action,
        alarm_id: str,
        principal: Principal,
        *,
        comment: str = "",
        duration: float | None = None,
        now: float | None = None,
    ) -> Transition:
        """Apply an operator's action: check the role, apply, journal, then publish.

        ``duration`` is the shelving time in seconds for :attr:`Action.SHELVE`.
        Raises :class:`~.errors.UnknownAlarm`, :class:`~.errors.AccessDenied` or an
        :class:`~.errors.InvalidTransition`; nothing is journalled then.
        """
        old = self._status_of(alarm_id)
        _check_comment(comment)
        if action not in OPERATOR_ACTIONS:
            raise errors.InvalidTransition(f"{action.value} is not an operator action")
        if not principal.may(action.required_role):
            who = principal.name if principal.authenticated else "an anonymous user"
            raise errors.AccessDenied(
                f"{who} ({principal.role.label}) may not {action.value.replace('_', ' ')}: "
                f"it needs the {action.required_role.label} role"
            )
        now = self._clock() if now is None else now
        new = machine.apply_action(
            old,
            action,
            now=now,
            user=principal.name,
            comment=comment,
            policy=self.policy,
            duration=duration,
        )
        transition = _transition(old, new, action, now, user=principal.name, comment=comment)
        await self._commit([transition])
        return transition

    async def acknowledge(
        self, alarm_id: str, *, user: str | Principal, comment: str = "", now: float | None = None
    ) -> Transition:
        """Acknowledge through :meth:`act`.  A plain user name is an in-process caller
        (tests, plugins) and is trusted with the operator role."""
        principal = user if isinstance(user, Principal) else Principal(user, Role.OPERATOR)
        return await self.act(Action.ACKNOWLEDGE, alarm_id, principal, comment=comment, now=now)

    def _status_of(self, alarm_id: str) -> AlarmStatus:
        try:
            return self.status[alarm_id]
        except KeyError:
            raise errors.UnknownAlarm(f"no alarm {alarm_id!r}") from None

    # --- the gateway: time and device state -----------------------------------------------

    def set_maintenance(self, device_ids: Iterable[str]) -> None:
        """Devices under maintenance (or retired) from now on; applied at the next :meth:`tick`."""
        new = set(device_ids)
        if new != self._maintenance:
            self._maintenance = new
            self._suppression_dirty = True

    async def set_device_maintenance(
        self, device_id: str, on: bool, now: float | None = None
    ) -> list[Transition]:
        """Put a device under maintenance or back in service, suppressing its alarms by design."""
        (self._maintenance.add if on else self._maintenance.discard)(device_id)
        now = self._clock() if now is None else now
        work = dict(self.status)
        transitions = self._suppression(device_id, work, now)
        await self._commit(transitions)
        return transitions

    async def tick(self, now: float | None = None) -> list[Transition]:
        """Periodic duties: expire shelves, apply pending suppression, end chatter and flood."""
        now = self._clock() if now is None else now
        work = dict(self.status)
        transitions: list[Transition] = []
        for status in self.status.values():
            if status.shelved and status.shelved_until is not None and status.shelved_until <= now:
                new = machine.apply_action(
                    status,
                    Action.UNSHELVE,
                    now=now,
                    user=SYSTEM.name,
                    comment="shelving time expired",
                    policy=self.policy,
                )
                work[status.alarm_id] = new
                transitions.append(
                    _transition(
                        status,
                        new,
                        Action.UNSHELVE,
                        now,
                        user=SYSTEM.name,
                        comment="shelving time expired",
                    )
                )
        if self._suppression_dirty:
            self._suppression_dirty = False
            for device_id in self._by_device:
                transitions.extend(self._suppression(device_id, work, now))
        for alarm_id in self.chatter.expire(now):
            log.info("alarm %s stopped chattering", alarm_id)
        if self.flood.expire(now):
            log.info("alarm flood over")
        await self._commit(transitions)
        return transitions

    def _suppression(
        self, device_id: str, work: dict[str, AlarmStatus], now: float
    ) -> list[Transition]:
        transitions = []
        for alarm_id in self._by_device.get(device_id, ()):
            definition = self.definitions[alarm_id]
            if device_id in self._maintenance:
                reason = f"device {device_id} under maintenance"
            elif device_id in self._offline and not is_comm_alarm(definition):
                reason = f"device {device_id} offline"
            else:
                reason = ""
            old = work[alarm_id]
            new = machine.set_suppressed(old, bool(reason), now, self.policy)
            if new is None:
                continue
            new = replace(new, last_user=SYSTEM.name)
            work[alarm_id] = new
            action = Action.SUPPRESS if reason else Action.UNSUPPRESS
            comment = reason or f"device {device_id} back in service"
            transitions.append(
                _transition(old, new, action, now, user=SYSTEM.name, comment=comment)
            )
        return transitions

    # --- journal, then publish ------------------------------------------------------------

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


def _transition(
    old: AlarmStatus,
    new: AlarmStatus,
    action: Action,
    now: float,
    *,
    user: str = "",
    comment: str = "",
) -> Transition:
    return Transition(
        alarm_id=old.alarm_id,
        time=now,
        action=action.value,
        before=old.state,
        after=new.state,
        condition=new.condition,
        severity=new.severity,
        value=new.value,
        message=new.message,
        user=user,
        comment=comment,
        status=new,
    )


#: Longest operator comment journalled, in characters (OPC UA, Home Assistant, CLI alike).
MAX_COMMENT = 4096
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _check_comment(comment: str) -> None:
    if len(comment) > MAX_COMMENT:
        raise errors.InvalidComment(
            f"comment of {len(comment):,} characters; the limit is {MAX_COMMENT:,}"
        )
    bad = _CONTROL.search(comment)
    if bad is not None:
        raise errors.InvalidComment(
            f"comment holds control character U+{ord(bad.group()):04X} at {bad.start()}"
        )
