"""Limit alarms: HH / H / L / LL with deadband, evaluated for all points at once.

Each configured point has one alarm (``<point>.limit``) whose condition is the
most extreme limit currently exceeded — an OPC UA exclusive limit alarm.  The
deadband is hysteresis on the way back: an alarm entered at ``h`` clears only
below ``h - deadband`` (above ``l + deadband`` for low limits), so a value
hovering at the limit does not chatter.

Per scan the rule computes, for every point in one numpy pass, the level a
value would *enter* (no deadband) and the level it may *stay* at (limits moved
by the deadband towards normal), and combines them with the current level.
Python code runs only for the points whose level changed.

Samples of Bad quality or NaN leave the level as it is: losing a transmitter
neither raises nor clears a process alarm (communication loss has its own).

``on_delay`` and ``off_delay`` (seconds) hold back a more severe level until it
has lasted that long, and a return towards normal likewise
(:mod:`plantguard_rules.delays`), applied after the deadband.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plantguard.plugin import (
    AlarmDefinition,
    Finding,
    Point,
    PriorityName,
    Quality,
    Rule,
    RuleContext,
    RuleType,
    Site,
    ValueTable,
)

from .base import PRIORITY, one_up
from .delays import LevelDelay

__all__ = ["LimitConfig", "LimitRule", "LimitRuleType"]

CONDITIONS = {2: "HH", 1: "H", -1: "L", -2: "LL"}


class LimitConfig(BaseModel):
    """``rules: {limit: {...}}`` of a point.

    ``priority`` applies to H and L; HH and LL are one priority higher
    (``urgent`` stays ``urgent``) unless ``priority_extreme`` says otherwise.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    hh: float | None = None
    h: float | None = None
    l: float | None = None  # noqa: E741 - the ISA-18.2 name of the low limit
    ll: float | None = None
    deadband: float = Field(0.0, ge=0)
    on_delay: float = Field(0.0, ge=0, description="seconds a level must last before it is raised")
    off_delay: float = Field(0.0, ge=0, description="seconds a return must last before it clears")
    priority: PriorityName = "medium"
    priority_extreme: PriorityName | None = None
    message: str = "{name} {condition}: {value:.4g} {unit} (limit {limit:.4g})"

    @model_validator(mode="after")
    def _ordered(self) -> LimitConfig:
        given = [
            (n, v)
            for n, v in (("ll", self.ll), ("l", self.l), ("h", self.h), ("hh", self.hh))
            if v is not None
        ]
        if not given:
            raise ValueError("set at least one of hh, h, l, ll")
        for (n1, v1), (n2, v2) in itertools.pairwise(given):
            if v1 >= v2:
                raise ValueError(f"limit {n1}={v1} must be below {n2}={v2}")
        return self


def _limits(configs: Sequence[LimitConfig], name: str) -> npt.NDArray[np.float64]:
    return np.array(
        [np.nan if getattr(c, name) is None else getattr(c, name) for c in configs],
        dtype=np.float64,
    )


class LimitRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, LimitConfig]]) -> None:
        self._points = [p for p, _ in configs]
        cfgs = [c for _, c in configs]
        self._cfgs = cfgs
        self._idx = table.indices([p.id for p in self._points])
        self._hh, self._h, self._l, self._ll = (_limits(cfgs, n) for n in ("hh", "h", "l", "ll"))
        self._db = np.array([c.deadband for c in cfgs], dtype=np.float64)
        self._delay = LevelDelay(
            np.array([c.on_delay for c in cfgs], dtype=np.float64),
            np.array([c.off_delay for c in cfgs], dtype=np.float64),
        )
        self.level = np.zeros(len(cfgs), dtype=np.int8)
        self._seen = np.zeros(len(cfgs), dtype=bool)
        self._definitions = [
            AlarmDefinition(
                id=f"{p.id}.limit",
                source_id=p.id,
                device_id=p.device_id,
                kind="limit",
                rule="limit",
                priority=PRIORITY[c.priority],
                message=c.message,
            )
            for p, c in configs
        ]
        self._severity_normal = np.array([PRIORITY[c.priority] for c in cfgs], dtype=np.int32)
        self._severity_extreme = np.array(
            [
                PRIORITY[c.priority_extreme] if c.priority_extreme else one_up(PRIORITY[c.priority])
                for c in cfgs
            ],
            dtype=np.int32,
        )

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._definitions

    def levels(
        self, values: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        """(level entered without deadband, level that may be kept with deadband)."""
        with np.errstate(invalid="ignore"):
            enter = np.zeros(values.size, dtype=np.int8)
            stay = np.zeros(values.size, dtype=np.int8)
            db = self._db
            # Later assignments win: most extreme last.
            enter[values <= self._l] = -1
            enter[values <= self._ll] = -2
            enter[values >= self._h] = 1
            enter[values >= self._hh] = 2
            stay[values <= self._l + db] = -1
            stay[values <= self._ll + db] = -2
            stay[values >= self._h - db] = 1
            stay[values >= self._hh - db] = 2
        return enter, stay

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        values = table.values[self._idx]
        usable = (table.quality[self._idx] < Quality.BAD) & np.isfinite(values)
        enter, stay = self.levels(values)
        cur = self.level
        high_side = np.where(enter > cur, enter, np.minimum(cur, np.maximum(stay, enter)))
        low_side = np.where(enter < cur, enter, np.maximum(cur, np.minimum(stay, enter)))
        new = np.where(cur > 0, high_side, np.where(cur < 0, low_side, enter)).astype(np.int8)
        new = np.where(usable, new, cur)
        new = self._delay.apply(cur, new, now)
        # The first usable value reports its level even if normal, so that an alarm
        # restored as active from the store clears if the process recovered meanwhile.
        report = usable & ((new != cur) | ~self._seen)
        self._seen |= usable
        self.level = new
        return [
            self._finding(int(i), float(values[i]), int(new[i]), now)
            for i in np.flatnonzero(report)
        ]

    def _finding(self, i: int, value: float, level: int, now: float) -> Finding:
        point, cfg, definition = self._points[i], self._cfgs[i], self._definitions[i]
        if level == 0:
            return Finding(
                definition.id, False, "", 0, f"{point.name or point.id} back to normal", value, now
            )
        condition = CONDITIONS[level]
        severity = int(self._severity_extreme[i] if abs(level) == 2 else self._severity_normal[i])
        limit = getattr(cfg, condition.lower())
        message = definition.render(
            name=point.name or point.id,
            condition=condition,
            value=value,
            unit=point.unit,
            limit=limit,
        )
        return Finding(definition.id, True, condition, severity, message, value, now)


class LimitRuleType(RuleType):
    config_model = LimitConfig

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        typed = [(p, c) for p, c in configs if isinstance(c, LimitConfig)]
        return LimitRule(table, typed)
