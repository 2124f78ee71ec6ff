"""Why an alarm action was refused.

Each refusal has its own class so that every client maps it to its own vocabulary
(an OPC UA status code, a CLI exit message) without parsing text::

    AlarmError
    ├── UnknownAlarm                  no alarm with that id
    ├── AccessDenied                  the user's role does not allow the action
    ├── InvalidComment                too long, or with control characters
    └── InvalidTransition             the action does not apply to the alarm's state
        ├── AlreadyAcknowledged       nothing to acknowledge
        ├── NotAcknowledged           confirm or reset before acknowledging
        ├── AlreadyConfirmed          nothing to confirm
        ├── NotLatched                reset of an alarm that is not latched
        ├── AlreadyShelved
        ├── NotShelved
        ├── ShelvingTimeOutOfRange    zero, negative, or above the maximum shelving time
        ├── AlreadyOutOfService       (OPC UA: already disabled)
        ├── NotOutOfService           (OPC UA: already enabled)
        └── AlarmDisabled             the alarm is out of service: act on it after enabling
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AlarmDisabled",
    "AlarmError",
    "AlreadyAcknowledged",
    "AlreadyConfirmed",
    "AlreadyOutOfService",
    "AlreadyShelved",
    "InvalidComment",
    "InvalidTransition",
    "NotAcknowledged",
    "NotLatched",
    "NotOutOfService",
    "NotShelved",
    "ShelvingTimeOutOfRange",
    "UnknownAlarm",
]


class AlarmError(Exception):
    """An operator action that does not apply (unknown alarm, nothing to acknowledge …)."""


class UnknownAlarm(AlarmError):
    pass


class AccessDenied(AlarmError):
    pass


class InvalidComment(AlarmError):
    pass


class InvalidTransition(AlarmError):
    pass


class AlreadyAcknowledged(InvalidTransition):
    pass


class NotAcknowledged(InvalidTransition):
    pass


class AlreadyConfirmed(InvalidTransition):
    pass


class NotLatched(InvalidTransition):
    pass


class AlreadyShelved(InvalidTransition):
    pass


class NotShelved(InvalidTransition):
    pass


class ShelvingTimeOutOfRange(InvalidTransition):
    pass


class AlreadyOutOfService(InvalidTransition):
    pass


class NotOutOfService(InvalidTransition):
    pass


class AlarmDisabled(InvalidTransition):
    pass
