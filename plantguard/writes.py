"""Writing a point: the one path every client takes, with its role check and its trace.

A write reaches a field device — it can start a pump.  So, like an alarm action,
it goes through one function (:meth:`plantguard.engine.Engine.write_point`) that
checks the point is writable and the user may write (operator or above), then
publishes a ``write`` security event whether it was done or refused, so the
security rules see unexpected writes and refused attempts alike.

Exceptions::

    WriteError
    ├── UnknownPoint      no such point
    ├── NotWritable       the point is configured ``access: read``
    └── WriteDenied       the user's role may not write
    (a device that fails the write raises plantguard.drivers.DriverError)
"""

from __future__ import annotations

from .auth import Principal, Role
from .events import SecurityEvent, publish

__all__ = ["WRITE_ROLE", "NotWritable", "UnknownPoint", "WriteDenied", "WriteError", "trace"]

#: The lowest role that may write a point.
WRITE_ROLE = Role.OPERATOR


class WriteError(Exception):
    """A point write was refused before it reached the device."""


class UnknownPoint(WriteError):
    pass


class NotWritable(WriteError):
    pass


class WriteDenied(WriteError):
    pass


def trace(point_id: str, value: float, principal: Principal, outcome: str) -> None:
    """Publish the write (or the refusal) for the security rules."""
    publish(
        SecurityEvent(
            "write",
            source=point_id,
            user=principal.name,
            detail={"value": repr(value), "outcome": outcome},
        )
    )
