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

from .base import PointAlarms, PointRuleType, new_samples

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
        self._idx = table.indices([p.id for p, _ in configs])
        self._rise = np.array([np.inf if c.rise is None else c.rise for c in cfgs])
        self._fall = np.array([np.inf if c.fall is None else c.fall for c in cfgs])
        self._per = np.array([c.per for c in cfgs])
        self._window = np.array([c.window for c in cfgs])
        n = len(cfgs)
        self._ref_v = np.full(n, np.nan)
        self._ref_t = np.full(n, np.nan)
        self._last_t = np.full(n, -np.inf)
        #: The latest measured rate per point (units per ``per`` seconds).
        self.rate = np.full(n, np.nan)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        fresh = new_samples(table, self._idx, self._last_t)
        if not fresh.any():
            return []
        v = table.values[self._idx]
        t = table.source_time[self._idx]
        first = fresh & np.isnan(self._ref_t)
        self._ref_v[first] = v[first]
        self._ref_t[first] = t[first]
        span = t - self._ref_t
        judged = fresh & ~first & (span >= self._window)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (v - self._ref_v) / span * self._per
        self.rate = np.where(judged, rate, self.rate)
        level = np.where(rate > self._rise, 1, np.where(rate < -self._fall, -1, 0)).astype(np.int8)
        self._ref_v[judged] = v[judged]
        self._ref_t[judged] = t[judged]

        def fields(i: int) -> dict[str, object]:
            up = self.rate[i] > 0
            return {
                "direction": "rising" if up else "falling",
                "rate": abs(float(self.rate[i])),
                "per": float(self._per[i]),
                "limit": float(self._rise[i] if up else self._fall[i]),
            }

        return self._alarms.findings(level, judged, v, now, fields)


class RateRuleType(PointRuleType):
    config_model = RateConfig
    rule_class = RateRule
