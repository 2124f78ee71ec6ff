"""The ISA-18.2 state machine as pure functions: a status in, the next status out.

No I/O, no clock, no listeners: :class:`~.manager.AlarmManager` decides *when*
and journals the result; these functions decide *what*.  Each raises an
:class:`~.errors.InvalidTransition` subclass when an action does not apply, so
tests can walk every edge of the diagram in :mod:`.states` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..model import Finding
from . import errors
from .states import Action, AlarmPolicy, AlarmState, AlarmStatus, Shelving

__all__ = ["apply_action", "apply_finding", "set_suppressed"]

_S = AlarmState


def _activated(status: AlarmStatus, now: float, policy: AlarmPolicy) -> AlarmStatus:
    """The alarm becomes UNACK: a new occurrence the operator has not seen."""
    annunciated = status.available
    return replace(
        status,
        state=_S.UNACK,
        active_since=status.active_since if status.state.active else now,
        confirmed=status.confirmed if not (annunciated and policy.confirm_required) else False,
    )


def apply_finding(
    status: AlarmStatus, finding: Finding, *, latching: bool, policy: AlarmPolicy
) -> tuple[Action, AlarmStatus] | None:
    """The rule's verdict applied to ``status``; None if nothing changes."""
    now = finding.time
    reported = replace(
        status,
        condition=finding.condition if finding.active else "",
        severity=finding.severity,
        value=finding.value,
        message=finding.message,
        changed=now,
    )
    state = status.state
    if finding.active:
        if not state.active:
            return Action.ACTIVATE, _activated(reported, now, policy)
        if finding.condition == status.condition:
            return None
        # H→HH is a new, more severe condition the operator has not seen: it needs
        # acknowledging again.  HH→H keeps the acknowledgement.
        if finding.severity > status.severity and state is _S.ACKED:
            return Action.CHANGE, _activated(reported, now, policy)
        return Action.CHANGE, reported
    if not state.active:
        if not status.process_active:
            return None
        # A clear the operator never had to see (restored state, or already latched).
        return Action.CLEAR, reported
    cleared = replace(reported, active_since=None)
    if not status.available:
        after = _S.NORMAL  # nobody was told of it: nothing to acknowledge
    elif state is _S.UNACK:
        after = _S.LATCHED_UNACK if latching else _S.RTN_UNACK
    else:
        after = _S.LATCHED if latching else _S.NORMAL
    new = replace(cleared, state=after)
    if status.shelving is Shelving.ONE_SHOT:
        # A one-shot shelve lasts until the alarm returns to normal.
        new = replace(new, shelving=Shelving.NONE, shelved_until=None)
        new = _made_available(new, policy) if new.available else new
    return Action.CLEAR, new


def _made_available(new: AlarmStatus, policy: AlarmPolicy) -> AlarmStatus:
    """The last of shelved / suppressed / out of service was removed: annunciate afresh.

    ISA-18.2: the alarm returns to normal if its process is normal, otherwise it
    is annunciated again as unacknowledged — unless the operator acknowledged it.
    An alarm annunciated again is an occurrence the operator has not seen, so
    where the policy asks for confirmation it needs a new one, exactly as when it
    activates while annunciated (:func:`_activated`; OPC UA Part 9 §5.7.3: Confirmed
    goes False with Acked).  An acknowledged alarm was seen: its confirmation stands.
    """
    if not new.process_active:
        return replace(new, state=_S.NORMAL, active_since=None)
    if new.state is _S.ACKED:
        return new
    return replace(new, state=_S.UNACK, confirmed=new.confirmed and not policy.confirm_required)


def set_suppressed(
    status: AlarmStatus, suppressed: bool, now: float, policy: AlarmPolicy
) -> AlarmStatus | None:
    """Suppression by design switched on or off; None if it already was."""
    if status.suppressed == suppressed:
        return None
    new = replace(status, suppressed=suppressed, changed=now)
    if not suppressed and new.available:
        new = _made_available(new, policy)
    elif suppressed and status.available:
        new = _hidden(new)
    return new


def _hidden(new: AlarmStatus) -> AlarmStatus:
    """The alarm stops being annunciated: a returned-to-normal alarm has nothing left to show."""
    if new.state in (_S.RTN_UNACK, _S.LATCHED_UNACK, _S.LATCHED):
        return replace(new, state=_S.NORMAL)
    return new


def apply_action(
    status: AlarmStatus,
    action: Action,
    *,
    now: float,
    user: str,
    comment: str,
    policy: AlarmPolicy,
    duration: float | None = None,
) -> AlarmStatus:
    """An operator's action applied to ``status``; raises if it does not apply."""
    step = _ACTIONS.get(action)
    if step is None:
        raise errors.InvalidTransition(f"{action.value} is not an operator action")
    if status.out_of_service and action not in _WHILE_OUT_OF_SERVICE:
        raise errors.AlarmDisabled(f"alarm {status.alarm_id!r} is out of service")
    base = replace(status, changed=now, last_user=user, comment=comment or status.comment)
    return step(_Act(status, base, policy, now, duration))


@dataclass(frozen=True, slots=True)
class _Act:
    """What one operator action works with: the status before, the status with the
    action's user, time and comment applied, the policy, and the shelving time."""

    status: AlarmStatus
    base: AlarmStatus
    policy: AlarmPolicy
    now: float
    duration: float | None

    @property
    def name(self) -> str:
        return repr(self.status.alarm_id)


_ACK_TO = {_S.UNACK: _S.ACKED, _S.RTN_UNACK: _S.NORMAL, _S.LATCHED_UNACK: _S.LATCHED}


def _acknowledge(a: _Act) -> AlarmStatus:
    state = a.status.state
    if state not in _ACK_TO:
        raise errors.AlreadyAcknowledged(f"alarm {a.name} is {state.value}: nothing to acknowledge")
    return replace(a.base, state=_ACK_TO[state])


def _confirm(a: _Act) -> AlarmStatus:
    if not a.status.state.acknowledged:
        raise errors.NotAcknowledged(f"alarm {a.name} must be acknowledged before confirming")
    if a.status.confirmed:
        raise errors.AlreadyConfirmed(f"alarm {a.name} is confirmed: nothing to confirm")
    return replace(a.base, confirmed=True)


def _reset(a: _Act) -> AlarmStatus:
    state = a.status.state
    if state is _S.LATCHED_UNACK:
        raise errors.NotAcknowledged(f"alarm {a.name} must be acknowledged before reset")
    if state is not _S.LATCHED:
        raise errors.NotLatched(f"alarm {a.name} is {state.value}: not latched")
    return replace(a.base, state=_S.NORMAL)


def _shelve(a: _Act) -> AlarmStatus:
    if a.status.shelved:
        raise errors.AlreadyShelved(f"alarm {a.name} is already shelved")
    duration, longest = a.duration, a.policy.max_shelve
    if duration is None or not 0 < duration <= longest:
        raise errors.ShelvingTimeOutOfRange(
            f"shelving time {duration} s is not in (0, {longest:g}] s"
        )
    return _hide_by(a, replace(a.base, shelving=Shelving.TIMED, shelved_until=a.now + duration))


def _one_shot_shelve(a: _Act) -> AlarmStatus:
    if a.status.shelved:
        raise errors.AlreadyShelved(f"alarm {a.name} is already shelved")
    until = a.now + a.policy.max_shelve
    return _hide_by(a, replace(a.base, shelving=Shelving.ONE_SHOT, shelved_until=until))


def _unshelve(a: _Act) -> AlarmStatus:
    if not a.status.shelved:
        raise errors.NotShelved(f"alarm {a.name} is not shelved")
    return _show_by(a, replace(a.base, shelving=Shelving.NONE, shelved_until=None))


def _remove_from_service(a: _Act) -> AlarmStatus:
    if a.status.out_of_service:
        raise errors.AlreadyOutOfService(f"alarm {a.name} is already out of service")
    return _hide_by(a, replace(a.base, out_of_service=True))


def _return_to_service(a: _Act) -> AlarmStatus:
    if not a.status.out_of_service:
        raise errors.NotOutOfService(f"alarm {a.name} is in service")
    return _show_by(a, replace(a.base, out_of_service=False))


def _hide_by(a: _Act, new: AlarmStatus) -> AlarmStatus:
    return _hidden(new) if a.status.available else new


def _show_by(a: _Act, new: AlarmStatus) -> AlarmStatus:
    return _made_available(new, a.policy) if new.available else new


_ACTIONS: dict[Action, Callable[[_Act], AlarmStatus]] = {
    Action.ACKNOWLEDGE: _acknowledge,
    Action.CONFIRM: _confirm,
    Action.COMMENT: lambda a: a.base,
    Action.RESET: _reset,
    Action.SHELVE: _shelve,
    Action.ONE_SHOT_SHELVE: _one_shot_shelve,
    Action.UNSHELVE: _unshelve,
    Action.REMOVE_FROM_SERVICE: _remove_from_service,
    Action.RETURN_TO_SERVICE: _return_to_service,
}
_WHILE_OUT_OF_SERVICE = (Action.RETURN_TO_SERVICE, Action.REMOVE_FROM_SERVICE, Action.COMMENT)
