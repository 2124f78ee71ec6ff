"""Stuck / flat-line: a live signal that stopped moving.

A frozen transmitter (a failed loop card, a value held by a gateway, a sensor
iced over) keeps reporting Good quality and a plausible value — the most
dangerous failure, because every other rule believes it.  Real process signals
always carry a little noise; a point whose value stays within ``tolerance`` of
an anchor for ``duration`` seconds is flagged.  Any larger move re-anchors it
and clears the alarm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import AlarmDefinition, Finding, Point, PriorityName, Rule, ValueTable

from .base import PointAlarms, PointRuleType, Slots

__all__ = ["StuckConfig", "StuckRule", "StuckRuleType"]


class StuckConfig(BaseModel):
    """``rules: {stuck: {duration: 600, tolerance: 0.01}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration: float = Field(gt=0, description="seconds without movement before the alarm")
    tolerance: float = Field(0.0, ge=0, description="changes up to this size do not count")
    priority: PriorityName = "low"
    message: str = "{name} flat at {value:.4g} {unit} for {minutes:.0f} min (stuck sensor?)"


class StuckRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, StuckConfig]]) -> None:
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            "stuck",
            kind="system",
            configs=configs,
            conditions={1: "STUCK"},
        )
        self._slots = Slots(table.indices([p.id for p, _ in configs]))
        n = len(cfgs)
        self._duration = np.array([c.duration for c in cfgs])
        self._tol = np.array([c.tolerance for c in cfgs])
        # Infinite until the first usable sample: any value "moves" from it.
        self._anchor_v = np.full(n, np.inf)
        self._anchor_t = np.full(n, np.nan)
        self._ok = np.empty(n, dtype=bool)
        self._moved = np.empty(n, dtype=bool)
        self._flat = np.empty(n, dtype=bool)
        self._work = np.empty(n)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        ok = self._slots.usable(table, self._ok)
        v = self._slots.of(table.values)
        work, moved = self._work, self._moved
        with np.errstate(invalid="ignore"):
            np.abs(np.subtract(v, self._anchor_v, out=work), out=work)
            np.greater(work, self._tol, out=moved)
        moved &= ok
        np.copyto(self._anchor_v, v, where=moved)
        np.copyto(self._anchor_t, now, where=moved)
        flat_for = np.subtract(now, self._anchor_t, out=work)
        with np.errstate(invalid="ignore"):
            level = np.greater_equal(flat_for, self._duration, out=self._flat).view(np.int8)
        return self._alarms.changes(
            level,
            ok,
            lambda rows: v[rows],
            now,
            columns=lambda rows: {"minutes": (flat_for[rows] / 60).tolist()},
        )


class StuckRuleType(PointRuleType):
    config_model = StuckConfig
    rule_class = StuckRule
