"""Rate of change: a value that rises or falls faster than the process allows.

A level that climbs 5 %/min in a tank filled at 1 %/min means a wrong valve or
a failing transmitter long before any level limit.  The rate is measured over
at least ``window`` seconds of source time — over single samples, noise would
dominate — as the change between a reference sample and the newest one; the
reference then moves to the newest sample.  ``rise`` and ``fall`` are in units
per ``per`` seconds (default per minute).  The alarm clears when a later window
is back within its limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plantguard.plugin import AlarmDefinition, Finding, Point, PriorityName, Rule, ValueTable

from .base import IntArray, PointAlarms, PointRuleType, Slots, every, fresh_samples

__all__ = ["RateConfig", "RateRule", "RateRuleType"]


class RateConfig(BaseModel):
    """``rules: {rate: {rise: 5, fall: 10, per: 60, window: 10}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rise: float | None = Field(None, gt=0, description="largest allowed increase per `per` s")
    fall: float | None = Field(None, gt=0, description="largest allowed decrease per `per` s")
    per: float = Field(60.0, gt=0, description="seconds the rates are given per")
    window: float = Field(10.0, gt=0, description="seconds of data each rate spans, at least")
    priority: PriorityName = "medium"
    message: str = "{name} {direction} at {rate:.3g} {unit} per {per:g} s (limit {limit:.3g})"

    @model_validator(mode="after")
    def _one_limit(self) -> RateConfig:
        if self.rise is None and self.fall is None:
            raise ValueError("set rise, fall or both")
        return self


class RateRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, RateConfig]]) -> None:
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            "rate",
            kind="rate",
            configs=configs,
            conditions={1: "RISE", -1: "FALL"},
        )
        self._slots = Slots(table.indices([p.id for p, _ in configs]))
        self._rise = np.array([np.inf if c.rise is None else c.rise for c in cfgs])
        self._fall = np.array([np.inf if c.fall is None else c.fall for c in cfgs])
        self._per = np.array([c.per for c in cfgs])
        self._window = np.array([c.window for c in cfgs])
        n = len(cfgs)
        self._ref_v = np.full(n, np.nan)
        self._ref_t = np.full(n, np.nan)
        self._last_t = np.full(n, -np.inf)
        self._unreferenced = n  # rows without a reference sample yet
        self._fresh = np.empty(n, dtype=bool)
        self._due = np.empty(n, dtype=bool)
        self._span = np.empty(n)
        #: The latest measured rate per point (units per ``per`` seconds).
        self.rate = np.full(n, np.nan)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        fresh = fresh_samples(table, self._slots, self._last_t, self._fresh)
        t = self._slots.of(table.source_time)
        if self._unreferenced:
            first = fresh & np.isnan(self._ref_t)
            if first.any():
                v_all = self._slots.of(table.values)
                np.copyto(self._ref_v, v_all, where=first)
                np.copyto(self._ref_t, t, where=first)
                self._unreferenced -= int(np.count_nonzero(first))
        # A rate is judged once at least `window` s lie between the reference and a
        # new sample (0 for the rows just referenced: never, as window > 0).
        with np.errstate(invalid="ignore"):
            span = np.subtract(t, self._ref_t, out=self._span)
            due = np.greater_equal(span, self._window, out=self._due)
        due &= fresh
        rows = np.flatnonzero(due)
        if not rows.size:
            return []
        v = self._slots.at(table.values, rows)
        at = every(rows, self._ref_v.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (v - self._ref_v[at]) / span[at] * self._per[at]
        self.rate[at] = rate
        level = np.where(rate > self._rise[at], 1, np.where(rate < -self._fall[at], -1, 0)).astype(
            np.int8
        )
        self._ref_v[at] = v
        self._ref_t[at] = t[at]

        return self._alarms.adopt(rows, level, v, now, columns=self._columns)

    def _columns(self, rows: IntArray) -> dict[str, list[object]]:
        rate = self.rate[rows]
        up = rate > 0
        return {
            "direction": ["rising" if u else "falling" for u in up.tolist()],
            "rate": np.abs(rate).tolist(),
            "per": self._per[rows].tolist(),
            "limit": np.where(up, self._rise[rows], self._fall[rows]).tolist(),
        }


class RateRuleType(PointRuleType):
    config_model = RateConfig
    rule_class = RateRule
