"""Chattering and flood detection, online, from the activations the manager sees.

ISA-18.2 / EEMUA 191 definitions: an alarm *chatters* when it activates
``chatter_count`` (3) or more times within ``chatter_window`` (60 s); the plant is
in *flood* while more than ``flood_count`` (10) alarms were annunciated within
``flood_window`` (10 min).  Only annunciated activations count: a shelved or
suppressed alarm is, by design, not bothering anyone.  The same definitions,
applied to the journal after the fact, give the KPIs in :mod:`plantguard.kpi`.
"""

from __future__ import annotations

from collections import deque

__all__ = ["ChatterDetector", "FloodDetector"]


class ChatterDetector:
    """Per-alarm sliding windows of activation times."""

    def __init__(self, count: int, window: float) -> None:
        self.count = count
        self.window = window
        self._times: dict[str, deque[float]] = {}
        self.chattering: set[str] = set()

    def activation(self, alarm_id: str, now: float) -> bool:
        """Record an activation; True if the alarm has just *started* chattering."""
        times = self._times.setdefault(alarm_id, deque())
        times.append(now)
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) >= self.count and alarm_id not in self.chattering:
            self.chattering.add(alarm_id)
            return True
        return False

    def expire(self, now: float) -> list[str]:
        """Alarms that stopped chattering (no longer enough activations in the window)."""
        stopped = []
        for alarm_id in list(self.chattering):
            times = self._times[alarm_id]
            while times and times[0] < now - self.window:
                times.popleft()
            if len(times) < self.count:
                self.chattering.discard(alarm_id)
                stopped.append(alarm_id)
        return stopped


class FloodDetector:
    """One plant-wide sliding window of annunciated activations."""

    def __init__(self, count: int, window: float) -> None:
        self.count = count
        self.window = window
        self._times: deque[float] = deque()
        self.flooding = False

    def rate(self, now: float) -> int:
        """Annunciated activations within the window ending at ``now``."""
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        return len(self._times)

    def activation(self, now: float) -> bool | None:
        """Record an activation; True when a flood starts, else None."""
        self._times.append(now)
        if not self.flooding and self.rate(now) > self.count:
            self.flooding = True
            return True
        return None

    def expire(self, now: float) -> bool:
        """True when a flood has just ended."""
        if self.flooding and self.rate(now) <= self.count:
            self.flooding = False
            return True
        return False
