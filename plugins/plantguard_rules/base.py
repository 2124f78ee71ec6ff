"""Pieces every built-in rule shares: priorities, alarm definitions, change reporting.

A rule keeps one integer *level* per alarm (0 = normal; a rule-specific code
otherwise) in a numpy array.  :class:`AlarmLevels` compares the new levels with
the old ones in one vectorised step and hands back only the indices that
changed, so Python runs per alarm only on the rare state change — the property
that lets the gateway scan 100,000 points in a few milliseconds.

The scan cost is a handful of whole-array operations per rule, so the helpers
here avoid the hidden ones: :class:`Slots` reads a rule's points as a view of
the value table when they are one contiguous run (the usual case: a rule on
every point of a site or a device) instead of gathering a copy, and the sparse
helpers (:meth:`AlarmLevels.adopt`, :func:`usable_at`) work on the few rows a
scan actually changes.
"""

from __future__ import annotations

import functools
import re
import string
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
    "BoolArray",
    "Columns",
    "Fields",
    "FloatArray",
    "IntArray",
    "Levels",
    "PointAlarms",
    "PointRuleType",
    "Slots",
    "every",
    "new_samples",
    "one_up",
    "usable",
    "usable_at",
    "where_mask",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Levels = npt.NDArray[np.int8]

PRIORITY = PRIORITY_BY_NAME
_BAD = int(Quality.BAD)

#: Message fields of the findings of some rows, computed for all of them at once:
#: ``columns(rows)`` maps each field name to its values, one per row of ``rows``.
Columns = Callable[[IntArray], Mapping[str, Sequence[object]]]
#: Message fields of the finding of one row (``fields(i)``).
Fields = Callable[[int], Mapping[str, object]]


class _Fields(dict[str, object]):
    """Message fields; a placeholder without a field is shown as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_BASE_FIELDS = ("name", "unit", "condition", "value")


@functools.lru_cache(maxsize=256)
def _positional(template: str, keys: tuple[str, ...]) -> str | None:
    """``template`` with its named fields turned into positions in ``keys``, or None
    when it uses anything else (a positional or unknown field, a bad brace).

    Filling positions from a tuple skips building a dict per finding — most of
    the cost of a message once the rule's arrays are done.  A template this
    cannot compile is filled the general way, with the same result.
    """
    out = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, spec, conversion in parsed:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        head = re.match(r"[A-Za-z_]\w*", name)
        if head is None or head.group() not in keys or "{" in (spec or ""):
            return None
        field = str(keys.index(head.group())) + name[head.end() :]
        out.append("{" + field + (f"!{conversion}" if conversion else "") + f":{spec}" + "}")
    return "".join(out)


def one_up(priority: Priority) -> Priority:
    """The next higher priority (``urgent`` stays ``urgent``)."""
    order = sorted(Priority)
    return order[min(order.index(priority) + 1, len(order) - 1)]


def usable(table: ValueTable, idx: IntArray) -> BoolArray:
    """Samples a process rule may judge: not Bad quality and a finite value.

    Losing a transmitter neither raises nor clears a process alarm; communication
    loss and stale data have rules of their own.
    """
    return (table.quality[idx] < Quality.BAD) & np.isfinite(table.values[idx])


class Slots:
    """The value-table slots of a rule's points, in the rule's row order.

    :meth:`of` reads a whole column for the rule: a view (no copy, no gather)
    when the slots are one contiguous run, a gathered copy otherwise.  Never
    write into what it returns: it may be the table itself.
    """

    def __init__(self, idx: IntArray) -> None:
        self.idx = idx
        n = idx.size
        start = int(idx[0]) if n else 0
        run = n == 0 or bool(np.array_equal(idx, np.arange(start, start + n)))
        self._key: slice | IntArray = slice(start, start + n) if run else idx
        self.size = n

    def of(self, column: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``column`` at every slot, in row order."""
        return column[self._key]

    def at(self, column: npt.NDArray[Any], rows: IntArray) -> npt.NDArray[Any]:
        """``column`` at the slots of the distinct, sorted ``rows`` only (all of them:
        as :meth:`of`)."""
        if rows.size == self.size:
            return self.of(column)
        return column[self.idx[rows]]

    def usable(self, table: ValueTable, out: BoolArray) -> BoolArray:
        """:func:`usable` for every row, into ``out`` (no new arrays)."""
        np.less(self.of(table.quality), _BAD, out=out)
        out &= np.isfinite(self.of(table.values))
        return out


def usable_at(table: ValueTable, slots: Slots, rows: IntArray) -> IntArray:
    """The distinct, sorted ``rows`` whose sample a process rule may judge (see
    :func:`usable`)."""
    ok = (slots.at(table.quality, rows) < _BAD) & np.isfinite(slots.at(table.values, rows))
    kept: IntArray = rows[ok]
    return kept


def where_mask(mask: BoolArray) -> BoolArray | bool:
    """``mask`` for a ufunc's ``where=``, or True when it holds everywhere: a masked
    loop costs about twice an unmasked one, and mostly every point has a sample."""
    return True if mask.all() else mask


def every(rows: IntArray, n: int) -> IntArray | slice:
    """The distinct, sorted ``rows`` of ``n`` as an index: a slice when they are all
    of them (a scan where every point has a new sample), which gathers nothing."""
    return slice(None) if rows.size == n else rows


def new_samples(table: ValueTable, idx: IntArray, last_time: FloatArray) -> BoolArray:
    """Points whose source time moved since ``last_time`` (updated in place).

    Statistical rules (rate, drift, forecast) must count each sample once even
    when the scan runs faster than the poll.
    """
    return fresh_samples(table, Slots(idx), last_time, np.empty(idx.size, dtype=bool))


def fresh_samples(
    table: ValueTable, slots: Slots, last_time: FloatArray, out: BoolArray
) -> BoolArray:
    """:func:`new_samples` into ``out``, with the rule's :class:`Slots`."""
    t = slots.of(table.source_time)
    np.greater(t, last_time, out=out)
    np.copyto(last_time, t, where=where_mask(out))
    out &= np.less(slots.of(table.quality), _BAD)
    out &= np.isfinite(slots.of(table.values))
    return out


class AlarmLevels:
    """Current level per alarm, and which alarms changed in a scan.

    The first usable scan of each alarm reports its level even when normal, so
    an alarm restored as active from the store clears if the process recovered
    while the gateway was down.  The alarms not reported yet are kept as an index
    array (:attr:`unseen`), empty after the first scans, so that this costs
    nothing on a running gateway.
    """

    def __init__(self, n: int) -> None:
        self.level: Levels = np.zeros(n, dtype=np.int8)
        self._seen = np.zeros(n, dtype=bool)
        #: Rows never reported yet.
        self.unseen: IntArray = np.arange(n, dtype=np.intp)
        self._diff = np.empty(n, dtype=bool)

    def update(self, new: Levels, judged: BoolArray | None = None) -> IntArray:
        """Adopt ``new`` where ``judged`` (default: everywhere); return changed indices."""
        diff = np.not_equal(new, self.level, out=self._diff)
        if judged is not None:
            diff &= judged
        rows = np.flatnonzero(diff)
        if self.unseen.size:
            first = self.unseen if judged is None else self.unseen[judged[self.unseen]]
            rows = np.union1d(rows, first)
        return self.adopt(rows, new[rows])

    def adopt(self, rows: IntArray, new: Levels) -> IntArray:
        """Adopt ``new[k]`` at the distinct ``rows[k]``; return the rows to report.

        ``rows`` (sorted) must hold every judged row whose level differs and every judged
        row in :attr:`unseen`; other rows may be included (they report only if
        their level changes).
        """
        changed: IntArray = rows[self.adopt_mask(rows, new)]
        return changed

    def adopt_mask(self, rows: IntArray, new: Levels) -> BoolArray:
        """:meth:`adopt`, returning which of ``rows`` to report."""
        at = every(rows, self.level.size)
        report: BoolArray = new != self.level[at]
        if self.unseen.size:
            first = ~self._seen[at]
            if first.any():
                report |= first
                self._seen[at] = True
                self.unseen = self.unseen[~self._seen[self.unseen]]
        self.level[at] = new
        return report


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
        # Per-finding work is Python: everything that does not depend on the scan
        # is prepared once.
        self._ids = [d.id for d in self.definitions]
        self._names = [p.name or p.id for p in self.points]
        self._severity = [int(d.priority) for d in self.definitions]
        self._back = [f"{name} back to normal" for name in self._names]
        self._templates = [d.message for d in self.definitions]
        self._units = [p.unit for p in self.points]

    @property
    def level(self) -> Levels:
        return self.levels.level

    def findings(
        self,
        new: Levels,
        judged: BoolArray | None,
        values: FloatArray,
        now: float,
        fields: Fields | None = None,
        *,
        columns: Columns | None = None,
    ) -> list[Finding]:
        """Adopt ``new`` levels; findings for the alarms that changed."""
        return self.changes(new, judged, values, now, fields, columns=columns)

    def changes(
        self,
        new: Levels,
        judged: BoolArray | None,
        values: FloatArray | Callable[[IntArray], FloatArray],
        now: float,
        fields: Fields | None = None,
        *,
        columns: Columns | None = None,
    ) -> list[Finding]:
        """:meth:`findings` with ``values`` computed for the changed rows only."""
        rows = self.levels.update(new, judged)
        if not rows.size:
            return []
        shown = values(rows) if callable(values) else values[rows]
        return self.report(rows, shown, now, fields, columns=columns)

    def adopt(
        self,
        rows: IntArray,
        new: Levels,
        values: FloatArray,
        now: float,
        fields: Fields | None = None,
        *,
        columns: Columns | None = None,
    ) -> list[Finding]:
        """Adopt ``new`` at ``rows`` (see :meth:`AlarmLevels.adopt`); ``values``
        holds the value shown per row of ``rows``."""
        if not rows.size:
            return []
        report = np.flatnonzero(self.levels.adopt_mask(rows, new))  # few: index, not mask
        return self.report(rows[report], values[report], now, fields, columns=columns)

    def report(
        self,
        rows: IntArray,
        values: FloatArray,
        now: float,
        fields: Fields | None = None,
        *,
        columns: Columns | None = None,
    ) -> list[Finding]:
        """Findings for ``rows`` (just adopted), ``values[k]`` shown for ``rows[k]``.

        Extra message fields come from ``fields(i)`` per finding or, cheaper, from
        ``columns`` for all active findings at once.
        """
        out: list[Finding] = []
        if not rows.size:
            return out
        levels = self.levels.level[rows]
        active = levels != 0
        cols = columns(rows[active]) if columns is not None and active.any() else {}
        names = tuple(cols)
        extras = iter(zip(*cols.values(), strict=True)) if names else iter(())
        keys = _BASE_FIELDS + names
        ids, back, templates = self._ids, self._back, self._templates
        labels, units, severity, conditions = (
            self._names,
            self._units,
            self._severity,
            self.conditions,
        )
        compiled: dict[str, str | None] = {}
        for i, value, level in zip(rows.tolist(), values.tolist(), levels.tolist(), strict=True):
            if level == 0:
                out.append(Finding(ids[i], False, "", 0, back[i], value, now))
                continue
            condition = conditions[level]
            head = (labels[i], units[i], condition, value)
            filled = head + next(extras) if names else head
            template = templates[i]
            if fields is not None:
                fast = None
            elif template in compiled:
                fast = compiled[template]
            else:
                fast = compiled[template] = _positional(template, keys)
            if fast is None:
                extra = _Fields(zip(keys, filled, strict=True))
                if fields is not None:
                    extra.update(fields(i))
                    extra.update(zip(_BASE_FIELDS, head, strict=True))
                message = _fill(template, extra)
            else:
                try:
                    message = fast.format(*filled)
                except (ValueError, IndexError, AttributeError, TypeError):
                    message = template
            out.append(Finding(ids[i], True, condition, severity[i], message, value, now))
        return out


def _fill(template: str, fields: _Fields) -> str:
    """As :meth:`AlarmDefinition.render`: a message that does not fit its fields is
    shown as written."""
    try:
        return template.format_map(fields)
    except (ValueError, IndexError, AttributeError, TypeError):
        return template


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
