"""Limit alarms: HH / H / L / LL with deadband, evaluated for all points at once.

Each configured point has one alarm (``<point>.limit``) whose condition is the
most extreme limit currently exceeded — an OPC UA exclusive limit alarm.  The
deadband is hysteresis on the way back: an alarm entered at ``h`` clears only
below ``h - deadband`` (above ``l + deadband`` for low limits), so a value
hovering at the limit does not chatter.

Per scan the rule compares every value with the least extreme limit of each
side (two comparisons per point: the floor of any limit check); only the rows
beyond a limit, and the alarms already active, go on to the level a value would
*enter* (no deadband) and the level it may *stay* at (limits moved by the
deadband towards normal), combined with the current level.  A value within its
limits with no active alarm stays normal whatever the deadband, so nothing is
lost.  Python code runs only for the points whose level changed.

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
    Rule,
    RuleContext,
    RuleType,
    Site,
    ValueTable,
)

from .base import PRIORITY, AlarmLevels, Slots, one_up, usable_at
from .delays import LevelDelay

__all__ = ["LimitConfig", "LimitRule", "LimitRuleType"]

CONDITIONS = {2: "HH", 1: "H", -1: "L", -2: "LL"}
_ALL = slice(None)


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
        self._slots = Slots(table.indices([p.id for p in self._points]))
        self._idx = self._slots.idx
        self._hh, self._h, self._l, self._ll = (_limits(cfgs, n) for n in ("hh", "h", "l", "ll"))
        # The least extreme limit of each side: a value within them is normal, so the
        # full four-limit level is worked out only for the values beyond them.
        self._hi1 = np.where(np.isnan(self._h), self._hh, self._h)
        self._lo1 = np.where(np.isnan(self._l), self._ll, self._l)
        self._db = np.array([c.deadband for c in cfgs], dtype=np.float64)
        self._delay = LevelDelay(
            np.array([c.on_delay for c in cfgs], dtype=np.float64),
            np.array([c.off_delay for c in cfgs], dtype=np.float64),
        )
        self._levels = AlarmLevels(len(cfgs))
        n = len(cfgs)
        self._beyond = np.empty(n, dtype=bool)
        self._low = np.empty(n, dtype=bool)
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

    @property
    def level(self) -> npt.NDArray[np.int8]:
        """The committed level per point (2 HH, 1 H, 0 normal, -1 L, -2 LL)."""
        return self._levels.level

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._definitions

    def levels(
        self, values: npt.NDArray[np.float64], rows: npt.NDArray[np.intp] | slice = _ALL
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        """(level entered without deadband, level that may be kept with deadband) of
        ``values``, the values of ``rows`` (default: every point)."""
        hh, h, lo, ll, db = (a[rows] for a in (self._hh, self._h, self._l, self._ll, self._db))
        with np.errstate(invalid="ignore"):
            enter = np.zeros(values.size, dtype=np.int8)
            stay = np.zeros(values.size, dtype=np.int8)
            # Later assignments win: most extreme last.
            enter[values <= lo] = -1
            enter[values <= ll] = -2
            enter[values >= h] = 1
            enter[values >= hh] = 2
            stay[values <= lo + db] = -1
            stay[values <= ll + db] = -2
            stay[values >= h - db] = 1
            stay[values >= hh - db] = 2
        return enter, stay

    def _beyond_normal(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Rows whose value reaches a limit: two comparisons per point, whatever
        limits the points set."""
        beyond, low = self._beyond, self._low
        with np.errstate(invalid="ignore"):
            np.greater_equal(values, self._hi1, out=beyond)
            beyond |= np.less_equal(values, self._lo1, out=low)
        rows: npt.NDArray[np.intp] = np.flatnonzero(beyond)
        return rows

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        values = self._slots.of(table.values)
        # A level can change only where a value reaches a limit or an alarm is
        # active (where neither, it is normal and stays so); the rest of the work is
        # on those rows alone.
        rows = self._beyond_normal(values)
        # (Through a bool mask: nonzero() on int8 is several times slower.)
        active = np.flatnonzero(np.not_equal(self._levels.level, 0, out=self._low))
        if active.size or self._levels.unseen.size:
            rows = np.unique(np.concatenate([rows, active, self._levels.unseen]))
        rows = usable_at(table, self._slots, rows)
        v = values[rows]
        cur = self._levels.level[rows]
        new = self._hysteresis(v, rows, cur)
        # Called on every scan, with no rows too: it forgets the delays of rows
        # whose level holds again.
        new = self._delay.apply_rows(rows, cur, new, now)
        if not rows.size:
            return []
        # The first usable value reports its level even if normal, so that an alarm
        # restored as active from the store clears if the process recovered meanwhile.
        report = self._levels.adopt_mask(rows, new)
        return [
            self._finding(i, value, level, now)
            for i, value, level in zip(
                rows[report].tolist(), v[report].tolist(), new[report].tolist(), strict=True
            )
        ]

    def _hysteresis(
        self, v: npt.NDArray[np.float64], rows: npt.NDArray[np.intp], cur: npt.NDArray[np.int8]
    ) -> npt.NDArray[np.int8]:
        """The level of ``rows`` (values ``v``, committed levels ``cur``) with deadband."""
        enter, stay = self.levels(v, rows)
        high_side = np.where(enter > cur, enter, np.minimum(cur, np.maximum(stay, enter)))
        low_side = np.where(enter < cur, enter, np.maximum(cur, np.minimum(stay, enter)))
        new: npt.NDArray[np.int8] = np.where(
            cur > 0, high_side, np.where(cur < 0, low_side, enter)
        ).astype(np.int8)
        return new

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
