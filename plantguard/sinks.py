"""Alarm sinks: how a plugin receives every alarm transition after it is journalled.

There is one fan-out of alarm transitions: the alarm manager journals a batch of
transitions, then hands it to its listeners (:meth:`AlarmManager.subscribe
<plantguard.alarms.AlarmManager.subscribe>`).  A plugin does not subscribe
itself: it registers an :class:`AlarmSink` (``plantguard_register_sinks``) and
the engine subscribes a :class:`SinkFeed` for it.  ``subscribe`` is the engine's
implementation detail (its own views — the console, the OPC UA conditions — use
it); the sink is the plugin contract, because only the engine can keep its
promises: every transition, in journal order, after the journal, from a task of
the sink's own so that a slow or failing sink never holds up the alarm manager,
and the last transitions delivered before ``plantguard_shutdown``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Sequence

from .alarms import Transition

__all__ = ["AlarmSink", "SinkFeed"]

log = logging.getLogger(__name__)


class AlarmSink(abc.ABC):
    @abc.abstractmethod
    async def deliver(self, transition: Transition) -> None:
        """Called once per transition, in journal order, from the sink's own task.

        An exception is logged with the sink's and plugin's names and the next
        transition is delivered; a slow sink delays only itself (up to
        :data:`SinkFeed.capacity` transitions wait for it, later ones are dropped
        and counted).
        """


class SinkFeed:
    """Feeds one :class:`AlarmSink` from a queue: the alarm manager only enqueues.

    Called as an alarm-manager listener; :meth:`start` runs the delivery task,
    :meth:`stop` delivers what is queued (for at most ``timeout`` seconds) and ends it.
    """

    #: Transitions waiting for a slow sink before newer ones are dropped.
    capacity = 10_000

    def __init__(self, name: str, sink: AlarmSink, plugin: str | None = None) -> None:
        self.name = name
        self.sink = sink
        self.plugin = plugin
        #: Transitions dropped because the sink fell ``capacity`` behind.
        self.dropped = 0
        self._queue: asyncio.Queue[Transition] = asyncio.Queue(self.capacity)
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SinkFeed {self.name!r} of plugin {self.plugin!r}>"

    async def __call__(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            try:
                self._queue.put_nowait(transition)
            except asyncio.QueueFull:
                if not self.dropped:
                    log.error(
                        "alarm sink %r (plugin %r) is %d transitions behind; dropping new ones",
                        self.name,
                        self.plugin,
                        self.capacity,
                    )
                self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"alarm sink {self.name}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (at most ``timeout`` s), then stop the task."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.error(
                "alarm sink %r (plugin %r): %d transitions not delivered at shutdown",
                self.name,
                self.plugin,
                self._queue.qsize(),
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            transition = await self._queue.get()
            try:
                await self.sink.deliver(transition)
            except Exception:
                log.exception(
                    "alarm sink %r (plugin %r) failed on %s %s",
                    self.name,
                    self.plugin,
                    transition.alarm_id,
                    transition.action,
                )
            finally:
                self._queue.task_done()
