"""The security event feed: what the protocol side saw, for the security rules to judge.

Security detections are rules like any other (docs/rules.md), but their inputs are
not point values: a client failed to log in to the OPC UA server, a certificate
was rejected, someone wrote to a point, a device reported a different serial
number or firmware.  The parts that see these things (the OPC UA server, the
drivers) *publish* a :class:`SecurityEvent`; each security rule owns an
:class:`EventReader` and drains what arrived since its last scan.

The bus is a bounded ring: a burst of thousands of failed logins costs fixed
memory, and a reader that fell behind learns how many events it missed
(:attr:`EventReader.missed`) instead of silently losing them.  Publishing is a
deque append under no lock: the gateway runs on one asyncio loop, and a
publisher on another thread only ever appends (atomic in CPython).

Publishers that have no handle on the engine use the process-wide bus::

    from plantguard.events import SecurityEvent, publish
    publish(SecurityEvent("failed_login", source="10.0.0.7", user="bob"))

Event kinds the gateway publishes (:data:`KINDS`): ``failed_login``,
``certificate_rejected``, ``write``, ``device_identity`` (each with a built-in rule),
and ``login_locked`` (a user name or client address locked out by
:mod:`plantguard.throttle`; no built-in rule reads it — the attempts refused during
the lock still arrive as ``failed_login``).  ``detail`` carries kind-specific
fields, documented in ``docs/rules.md``.
"""

from __future__ import annotations

import itertools
import time as _time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "KINDS",
    "EventBus",
    "EventReader",
    "SecurityEvent",
    "default_bus",
    "publish",
]

#: Event kinds the gateway publishes; others are kept and may be read by plugins.
KINDS: Final = ("failed_login", "certificate_rejected", "write", "device_identity", "login_locked")


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Something security-relevant that happened outside the value table.

    ``source`` is where it came from (a client address, a device id, a point id);
    ``user`` the authenticated or attempted user name when there is one.
    """

    kind: str
    source: str = ""
    user: str = ""
    detail: Mapping[str, str] = field(default_factory=dict)
    time: float = field(default_factory=_time.time)


class EventBus:
    """A bounded ring of events with independent readers."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: deque[tuple[int, SecurityEvent]] = deque(maxlen=capacity)
        self._next_seq = 0

    def publish(self, event: SecurityEvent) -> None:
        self._ring.append((self._next_seq, event))
        self._next_seq += 1

    def reader(self, *, from_start: bool = False) -> EventReader:
        """A reader that sees events published from now on (or everything still held)."""
        start = self._ring[0][0] if from_start and self._ring else self._next_seq
        return EventReader(self, start)

    @property
    def published(self) -> int:
        """Events published since the bus was made."""
        return self._next_seq


class EventReader:
    """One consumer's cursor on an :class:`EventBus`."""

    def __init__(self, bus: EventBus, start: int) -> None:
        self._bus = bus
        self._next = start
        #: Events that left the ring before this reader drained them.
        self.missed = 0

    def drain(self) -> list[SecurityEvent]:
        """Events published since the last drain, oldest first."""
        ring = self._bus._ring
        if not ring or self._next >= self._bus._next_seq:
            return []
        oldest = ring[0][0]
        if self._next < oldest:
            self.missed += oldest - self._next
            self._next = oldest
        out = [event for _, event in itertools.islice(ring, self._next - oldest, None)]
        self._next = self._bus._next_seq
        return out


_DEFAULT = EventBus()


def default_bus() -> EventBus:
    """The process-wide bus the engine's security rules read."""
    return _DEFAULT


def publish(event: SecurityEvent) -> None:
    """Publish on the process-wide bus."""
    _DEFAULT.publish(event)
