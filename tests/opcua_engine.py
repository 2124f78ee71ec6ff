"""The engine as the OPC UA service sees it, for the OPC UA tests.

:class:`FakeEngine` is a :class:`~plantguard.services.EngineView` with a real value
table and a real alarm manager; ``push`` and ``lose`` change the table and call
the values listeners, as the engine does after each poll.  Tests that need a
store, a fixed clock or particular alarms pass their own alarm manager.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from plantguard.alarms import AlarmManager, AlarmStatus, Transition
from plantguard.auth import Principal
from plantguard.model import AlarmDefinition, Quality, Site
from plantguard.services import ValuesListener
from plantguard.store import Store
from plantguard.table import ValueTable
from plantguard.writes import NotWritable

__all__ = ["FakeEngine", "MemoryJournal"]


class MemoryJournal:
    """An alarm journal that keeps transitions in a list and restores nothing."""

    def __init__(self) -> None:
        self.recorded: list[Transition] = []

    def define_alarms(self, definitions: Sequence[AlarmDefinition]) -> None:
        pass

    def record(self, transitions: Sequence[Transition]) -> None:
        self.recorded.extend(transitions)

    def load_status(self) -> dict[str, AlarmStatus]:
        return {}


class FakeEngine:
    """Just enough engine for a service: site, table, alarms, store and values listeners."""

    def __init__(
        self,
        site: Site,
        *,
        alarms: Callable[[ValueTable], AlarmManager] | None = None,
        store: Store | None = None,
    ) -> None:
        self._site = site
        self._table = ValueTable(site.points)
        self._alarms = alarms(self._table) if alarms else AlarmManager(MemoryJournal(), [])
        self._store = store
        self.listeners: list[ValuesListener] = []

    @property
    def site(self) -> Site:
        return self._site

    @property
    def table(self) -> ValueTable:
        return self._table

    @property
    def alarms(self) -> AlarmManager:
        return self._alarms

    @property
    def store(self) -> Store | None:
        return self._store

    async def write_point(self, point_id: str, value: float, principal: Principal) -> None:
        raise NotWritable(point_id)  # writes are tested through the engine in test_point_writes.py

    def on_values(self, listener: ValuesListener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    async def push(
        self, values: dict[str, float], quality: Quality = Quality.GOOD, time: float = 0.0
    ) -> None:
        idx = self._table.indices(list(values))
        changed = self._table.update(
            idx,
            np.array(list(values.values()), dtype=np.float64),
            np.full(idx.size, quality, dtype=np.uint8),
            time,
        )
        await self._notify(changed)

    async def lose(self, point_ids: list[str], quality: Quality, time: float) -> None:
        changed = self._table.set_quality(self._table.indices(point_ids), quality, time)
        await self._notify(changed)

    async def _notify(self, changed: np.ndarray[Any, np.dtype[np.intp]]) -> None:
        for listener in self.listeners:
            await listener(changed)
