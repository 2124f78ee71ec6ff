"""Alarm sinks: plugins that receive every alarm transition after it is journalled."""

from __future__ import annotations

import abc

from .alarms import Transition

__all__ = ["AlarmSink"]


class AlarmSink(abc.ABC):
    @abc.abstractmethod
    async def deliver(self, transition: Transition) -> None:
        """Called once per transition, in order.  A sink that fails is logged and skipped;
        it never blocks the alarm manager."""
