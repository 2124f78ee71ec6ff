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

from .base import PointAlarms, PointRuleType, usable

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
        self._idx = table.indices([p.id for p, _ in configs])
        self._duration = np.array([c.duration for c in cfgs])
        self._tol = np.array([c.tolerance for c in cfgs])
        self._anchor_v = np.full(len(cfgs), np.nan)
        self._anchor_t = np.full(len(cfgs), np.nan)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        ok = usable(table, self._idx)
        v = table.values[self._idx]
        with np.errstate(invalid="ignore"):
            moved = ok & ~(np.abs(v - self._anchor_v) <= self._tol)
        self._anchor_v[moved] = v[moved]
        self._anchor_t[moved] = now
        flat_for = now - self._anchor_t
        level = (ok & (flat_for >= self._duration)).astype(np.int8)
        return self._alarms.findings(
            level, ok, v, now, lambda i: {"minutes": float(flat_for[i]) / 60}
        )


class StuckRuleType(PointRuleType):
    config_model = StuckConfig
    rule_class = StuckRule
