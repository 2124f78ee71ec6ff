"""Alarm management per ISA-18.2 / IEC 62682.

* :mod:`.states` — states, the status of one alarm, transitions, actions, policy;
* :mod:`.machine` — the state machine as pure functions;
* :mod:`.detect` — chattering and flood detection;
* :mod:`.manager` — the manager: the one entry point, journal first, then publish;
* :mod:`.errors` — why an action was refused (one class per reason).
"""

from .errors import (
    AccessDenied,
    AlarmDisabled,
    AlarmError,
    AlreadyAcknowledged,
    AlreadyConfirmed,
    AlreadyOutOfService,
    AlreadyShelved,
    InvalidComment,
    InvalidTransition,
    NotAcknowledged,
    NotLatched,
    NotOutOfService,
    NotShelved,
    ShelvingTimeOutOfRange,
    UnknownAlarm,
)
from .manager import AlarmJournal, AlarmManager, Listener, is_comm_alarm
from .states import Action, AlarmPolicy, AlarmState, AlarmStatus, Shelving, Transition

__all__ = [
    "AccessDenied",
    "Action",
    "AlarmDisabled",
    "AlarmError",
    "AlarmJournal",
    "AlarmManager",
    "AlarmPolicy",
    "AlarmState",
    "AlarmStatus",
    "AlreadyAcknowledged",
    "AlreadyConfirmed",
    "AlreadyOutOfService",
    "AlreadyShelved",
    "InvalidComment",
    "InvalidTransition",
    "Listener",
    "NotAcknowledged",
    "NotLatched",
    "NotOutOfService",
    "NotShelved",
    "Shelving",
    "ShelvingTimeOutOfRange",
    "Transition",
    "UnknownAlarm",
    "is_comm_alarm",
]
