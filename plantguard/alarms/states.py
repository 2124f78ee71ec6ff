"""The data of the alarm lifecycle: states, the status of one alarm, a transition.

ISA-18.2 (IEC 62682) figure 5 names eight states, A–H.  The first five are one
axis — where the process is and whether the operator has seen it — and are the
values of :class:`AlarmState`.  Shelved (F), suppressed by design (G) and out of
service (H) can apply to an alarm in any of those, so they are flags of
:class:`AlarmStatus` instead; while any of them is set the alarm is *not
annunciated* (see :attr:`AlarmStatus.available`)::

    A NORMAL ──activate──► B UNACK ──acknowledge──► C ACKED
       ▲                     │                        │
       │                   clear                    clear
       │                     ▼                        │
       ├──acknowledge── D RTN_UNACK                    │  (not latching: ACKED → NORMAL)
       │                                               ▼
       └────reset──── E LATCHED ◄──acknowledge── LATCHED_UNACK   (latching alarms only)

    F shelved (timed / one-shot) · G suppressed by design · H out of service:
    flags; while one is set a clear goes straight to NORMAL, and when the last is
    removed an alarm whose process is still abnormal is annunciated again.

OPC UA's ConfirmedState is a further flag: an activation needs a Confirm after
its acknowledgement before the condition leaves the alarm list (Retain).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..auth import Role

__all__ = [
    "Action",
    "AlarmPolicy",
    "AlarmState",
    "AlarmStatus",
    "Shelving",
    "Transition",
]


class AlarmState(enum.StrEnum):
    NORMAL = "normal"
    UNACK = "active_unacknowledged"
    ACKED = "active_acknowledged"
    RTN_UNACK = "returned_unacknowledged"
    LATCHED_UNACK = "latched_unacknowledged"
    LATCHED = "latched_acknowledged"

    @property
    def active(self) -> bool:
        """The process is abnormal (latched alarms are not: they wait for a reset)."""
        return self in (AlarmState.UNACK, AlarmState.ACKED)

    @property
    def acknowledged(self) -> bool:
        return self in (AlarmState.NORMAL, AlarmState.ACKED, AlarmState.LATCHED)

    @property
    def latched(self) -> bool:
        return self in (AlarmState.LATCHED_UNACK, AlarmState.LATCHED)


class Shelving(enum.StrEnum):
    NONE = ""
    TIMED = "timed"
    ONE_SHOT = "oneshot"


class Action(enum.StrEnum):
    """What can happen to an alarm; the value is what the journal records."""

    # from rules
    ACTIVATE = "activate"
    CHANGE = "change"
    CLEAR = "clear"
    # from operators
    ACKNOWLEDGE = "acknowledge"
    CONFIRM = "confirm"
    COMMENT = "comment"
    RESET = "reset"
    SHELVE = "shelve"
    ONE_SHOT_SHELVE = "oneshot_shelve"
    UNSHELVE = "unshelve"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
    # from the gateway
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    CHATTERING = "chattering"

    @property
    def required_role(self) -> Role:
        """The least role that may request this action."""
        return _REQUIRED.get(self, Role.ADMIN)


_REQUIRED: dict[Action, Role] = {
    Action.ACKNOWLEDGE: Role.OPERATOR,
    Action.CONFIRM: Role.OPERATOR,
    Action.COMMENT: Role.OPERATOR,
    Action.RESET: Role.OPERATOR,
    Action.SHELVE: Role.ENGINEER,
    Action.ONE_SHOT_SHELVE: Role.ENGINEER,
    Action.UNSHELVE: Role.ENGINEER,
    Action.REMOVE_FROM_SERVICE: Role.ENGINEER,
    Action.RETURN_TO_SERVICE: Role.ENGINEER,
}


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """Site-wide alarm management settings (EEMUA 191 / ISA-18.2 defaults)."""

    #: Longest a shelve may last, timed or one-shot (seconds).
    max_shelve: float = 8 * 3600.0
    #: Whether an activation must be confirmed (OPC UA Confirm) after it is acknowledged.
    confirm_required: bool = True
    #: Chattering: this many activations …
    chatter_count: int = 3
    #: … within this many seconds.
    chatter_window: float = 60.0
    #: Flood: more than this many activations …
    flood_count: int = 10
    #: … within this many seconds.
    flood_window: float = 600.0


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
    confirmed: bool = True
    shelving: Shelving = Shelving.NONE
    shelved_until: float | None = None
    suppressed: bool = False
    out_of_service: bool = False
    comment: str = ""
    last_user: str = ""

    @property
    def process_active(self) -> bool:
        """The rule last reported the alarm's condition present (whatever the operator did)."""
        return bool(self.condition)

    @property
    def shelved(self) -> bool:
        return self.shelving is not Shelving.NONE

    @property
    def available(self) -> bool:
        """Annunciated to operators: not shelved, suppressed or out of service."""
        return not (self.shelved or self.suppressed or self.out_of_service)

    @property
    def retain(self) -> bool:
        """Still of interest to an operator (OPC UA Retain): not normal, or not yet confirmed."""
        if self.out_of_service:
            return False
        return self.state is not AlarmState.NORMAL or not self.confirmed


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
