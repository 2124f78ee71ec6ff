"""Out of sensor range: a value the instrument cannot physically report.

A 4–20 mA transmitter ranged 0–100 °C that reads 130 °C is broken (a wire
break, a short, a wrong scaling), not hot.  Such values must not be trusted by
process alarms, and the instrument technician must be told.  The range is the
point's configured ``range`` unless the rule sets ``low``/``high``; ``margin`` is
the fraction of the span tolerated beyond it (transmitters over-range a little
by design, e.g. 3.8–20.5 mA per NAMUR NE 43).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plantguard.plugin import (
    AlarmDefinition,
    Finding,
    Point,
    PriorityName,
    Rule,
    SettingError,
    ValueTable,
)

from .base import PointAlarms, PointRuleType, Slots, usable_at

__all__ = ["RangeConfig", "RangeRule", "RangeRuleType"]


class RangeConfig(BaseModel):
    """``rules: {range: {margin: 0.02}}`` (range from the point) or ``{low: 0, high: 100}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float | None = None
    high: float | None = None
    margin: float = Field(0.0, ge=0, le=1, description="fraction of the span tolerated outside")
    priority: PriorityName = "medium"
    message: str = "{name} {condition}: {value:.4g} {unit} outside sensor range {low:g}…{high:g}"

    @model_validator(mode="after")
    def _ordered(self) -> RangeConfig:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        return self


def _bounds(point: Point, cfg: RangeConfig) -> tuple[float, float]:
    low, high = cfg.low, cfg.high
    if point.range is not None:
        low = point.range[0] if low is None else low
        high = point.range[1] if high is None else high
    if low is None or high is None:
        raise SettingError(
            "rule 'range' needs the point's range or both low and high", point=point.id
        )
    if low >= high:
        field = "low" if cfg.low is not None else "high"
        raise SettingError(
            f"rule 'range' low {low} must be below high {high}", point=point.id, field=(field,)
        )
    return low, high


class RangeRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, RangeConfig]]) -> None:
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            "range",
            kind="system",
            configs=configs,
            conditions={1: "OVER_RANGE", -1: "UNDER_RANGE"},
        )
        self._slots = Slots(table.indices([p.id for p, _ in configs]))
        n = len(cfgs)
        self._level = np.empty(n, dtype=np.int8)
        self._cmp = np.empty(n, dtype=bool)
        bounds = np.array([_bounds(p, c) for p, c in configs], dtype=np.float64).reshape(-1, 2)
        self._low, self._high = bounds[:, 0], bounds[:, 1]
        span = self._high - self._low
        margin = np.array([c.margin for c in cfgs]) * span
        self._lo_trip, self._hi_trip = self._low - margin, self._high + margin

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        v = self._slots.of(table.values)
        level, cmp = self._level, self._cmp
        with np.errstate(invalid="ignore"):
            np.greater(v, self._hi_trip, out=cmp)
            np.copyto(level, cmp.view(np.int8))
            level -= np.less(v, self._lo_trip, out=cmp).view(np.int8)
        # Only rows whose level differs (or never reported) can change; of those,
        # only a usable sample is judged.
        levels = self._alarms.levels
        rows = np.flatnonzero(np.not_equal(level, levels.level, out=cmp))
        if levels.unseen.size:
            rows = np.union1d(rows, levels.unseen)
        rows = usable_at(table, self._slots, rows)
        return self._alarms.adopt(
            rows,
            level[rows],
            v[rows],
            now,
            columns=lambda rows: {
                "low": self._low[rows].tolist(),
                "high": self._high[rows].tolist(),
            },
        )


class RangeRuleType(PointRuleType):
    config_model = RangeConfig
    rule_class = RangeRule
