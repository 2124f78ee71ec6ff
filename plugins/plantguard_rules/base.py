"""Pieces every built-in rule shares: priorities, alarm definitions, change reporting.

A rule keeps one integer *level* per alarm (0 = normal; a rule-specific code
otherwise) in a numpy array.  :class:`AlarmLevels` compares the new levels with
the old ones in one vectorised step and hands back only the indices that
changed, so Python runs per alarm only on the rare state change — the property
that lets the gateway scan 100,000 points in a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from plantguard.plugin import (
    PRIORITY_BY_NAME,
    AlarmDefinition,
    Finding,
    Point,
    Priority,
    PriorityName,
    Quality,
    Rule,
    RuleContext,
    RuleType,
    Site,
    ValueTable,
)

__all__ = [
    "PRIORITY",
    "AlarmLevels",
    "AlarmSettings",
    "FloatArray",
    "IntArray",
    "Levels",
    "PointAlarms",
    "PointRuleType",
    "new_samples",
    "one_up",
    "usable",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Levels = npt.NDArray[np.int8]

PRIORITY = PRIORITY_BY_NAME


def one_up(priority: Priority) -> Priority:
    """The next higher priority (``urgent`` stays ``urgent``)."""
    order = sorted(Priority)
    return order[min(order.index(priority) + 1, len(order) - 1)]


def usable(table: ValueTable, idx: IntArray) -> npt.NDArray[np.bool_]:
    """Samples a process rule may judge: not Bad quality and a finite value.

    Losing a transmitter neither raises nor clears a process alarm; communication
    loss and stale data have rules of their own.
    """
    return (table.quality[idx] < Quality.BAD) & np.isfinite(table.values[idx])


def new_samples(table: ValueTable, idx: IntArray, last_time: FloatArray) -> npt.NDArray[np.bool_]:
    """Points whose source time moved since ``last_time`` (updated in place).

    Statistical rules (rate, drift, forecast) must count each sample once even
    when the scan runs faster than the poll.
    """
    t = table.source_time[idx]
    fresh = t > last_time
    last_time[fresh] = t[fresh]
    result: npt.NDArray[np.bool_] = fresh & usable(table, idx)
    return result


class AlarmLevels:
    """Current level per alarm, and which alarms changed in a scan.

    The first usable scan of each alarm reports its level even when normal, so
    an alarm restored as active from the store clears if the process recovered
    while the gateway was down.
    """

    def __init__(self, n: int) -> None:
        self.level: Levels = np.zeros(n, dtype=np.int8)
        self._seen = np.zeros(n, dtype=bool)

    def update(self, new: Levels, judged: npt.NDArray[np.bool_] | None = None) -> IntArray:
        """Adopt ``new`` where ``judged`` (default: everywhere); return changed indices."""
        if judged is None:
            judged = np.ones(new.size, dtype=bool)
        new = np.where(judged, new, self.level).astype(np.int8)
        report = judged & ((new != self.level) | ~self._seen)
        self._seen |= judged
        self.level = new
        changed: IntArray = np.flatnonzero(report)
        return changed


class AlarmSettings(Protocol):
    """What the per-point settings of every built-in rule carry for its alarm."""

    @property
    def priority(self) -> PriorityName: ...

    @property
    def message(self) -> str: ...


class PointAlarms:
    """One alarm per configured point: definitions, levels and findings.

    ``conditions`` maps a non-zero level to its condition name (``{1: "STUCK"}``);
    each point's ``message`` setting is the template, filled with ``name``,
    ``unit``, ``condition``, ``value`` and whatever fields the rule passes per
    finding.
    """

    def __init__(
        self,
        rule: str,
        *,
        kind: Literal["limit", "discrete", "deviation", "rate", "system", "security"],
        configs: Sequence[tuple[Point, AlarmSettings]],
        conditions: Mapping[int, str],
    ) -> None:
        self.points = [p for p, _ in configs]
        self.conditions = dict(conditions)
        self.definitions = [
            AlarmDefinition(
                id=f"{p.id}.{rule}",
                source_id=p.id,
                device_id=p.device_id,
                kind=kind,
                rule=rule,
                priority=PRIORITY[c.priority],
                message=c.message,
            )
            for p, c in configs
        ]
        self.levels = AlarmLevels(len(self.points))

    @property
    def level(self) -> Levels:
        return self.levels.level

    def findings(
        self,
        new: Levels,
        judged: npt.NDArray[np.bool_] | None,
        values: FloatArray,
        now: float,
        fields: Callable[[int], Mapping[str, object]] | None = None,
    ) -> list[Finding]:
        """Adopt ``new`` levels; findings for the alarms that changed."""
        out = []
        for i in self.levels.update(new, judged).tolist():
            point, definition = self.points[i], self.definitions[i]
            value = float(values[i])
            level = int(self.levels.level[i])
            name = point.name or point.id
            if level == 0:
                out.append(
                    Finding(definition.id, False, "", 0, f"{name} back to normal", value, now)
                )
                continue
            condition = self.conditions[level]
            extra = fields(i) if fields is not None else {}
            message = definition.render(
                name=name, unit=point.unit, condition=condition, value=value, **extra
            )
            out.append(
                Finding(
                    definition.id, True, condition, int(definition.priority), message, value, now
                )
            )
        return out


class PointRuleFactory(Protocol):
    """The constructor of a rule built from its points' settings alone."""

    def __call__(self, table: ValueTable, configs: list[tuple[Point, Any]], /) -> Rule: ...


class PointRuleType(RuleType):
    """A rule type whose rule is built from its points' settings alone: ``create``
    keeps the configs of ``config_model`` and hands them to ``rule_class``."""

    rule_class: ClassVar[PointRuleFactory]

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        return self.rule_class(
            table, [(p, c) for p, c in configs if isinstance(c, self.config_model)]
        )
