"""Stale or no data: a point whose source timestamp stopped advancing.

Communication loss is seen by the driver (a read fails); staleness is not: the
device answers, but with the same sample time — a data logger that stopped, a
PLC whose scan halted, an OPC server serving its cache.  A point is stale when
``now - source_time`` exceeds ``max_age``; a point that never delivered a sample
is stale ``max_age`` after the rule started.  Judged on every scan, whatever the
quality, because no data is exactly what it detects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import AlarmDefinition, Finding, Point, PriorityName, Rule, ValueTable

from .base import PointAlarms, PointRuleType, Slots

__all__ = ["StaleConfig", "StaleRule", "StaleRuleType"]


class StaleConfig(BaseModel):
    """``rules: {stale: {max_age: 30}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age: float = Field(gt=0, description="seconds since the last sample before the alarm")
    priority: PriorityName = "medium"
    message: str = "{name}: no new data for {age:.0f} s"


class StaleRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, StaleConfig]]) -> None:
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            "stale",
            kind="system",
            configs=configs,
            conditions={1: "STALE"},
        )
        self._slots = Slots(table.indices([p.id for p, _ in configs]))
        n = len(cfgs)
        self._age = np.empty(n)
        self._stale = np.empty(n, dtype=bool)
        self._max_age = np.array([c.max_age for c in cfgs])
        self._started: float | None = None

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        if self._started is None:
            self._started = now
        age = np.maximum(self._slots.of(table.source_time), self._started, out=self._age)
        np.subtract(now, age, out=age)
        level = np.greater(age, self._max_age, out=self._stale).view(np.int8)
        return self._alarms.changes(
            level,
            None,
            lambda rows: age[rows],
            now,
            columns=lambda rows: {"age": age[rows].tolist()},
        )


class StaleRuleType(PointRuleType):
    config_model = StaleConfig
    rule_class = StaleRule
