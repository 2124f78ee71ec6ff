"""Event filter WhereClauses that match event *subtypes*, as OPC UA Part 4 §7.7.3 requires.

asyncua 2.1's evaluator compares ``OfType`` with the event's exact type, so a
client filtering on ``OfType(AlarmConditionType)`` — what generic HMIs and
node-opcua's alarm list do — never sees an ``ExclusiveLimitAlarmType`` event.
It also reads only the first element of a browse path (``ActiveState/Id`` becomes
``ActiveState``).  This evaluator does both properly and is installed per
monitored item by :mod:`.compat`; it knows nothing of asyncua's internals beyond
the ``ua`` structures, and asks its caller whether one type is a subtype of another.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds

__all__ = ["SubtypeAwareWhereClause", "event_value"]

log = logging.getLogger(__name__)

#: ``is_subtype(type, ancestor)``: True if ``type`` is ``ancestor`` or derives from it.
IsSubtype = Callable[[ua.NodeId, ua.NodeId], bool]

_F = ua.FilterOperator


def event_value(event: Any, path: Sequence[ua.QualifiedName], attribute_id: int) -> Any:
    """The value an operand selects from ``event`` (None if the event lacks the field)."""
    if not path:
        if attribute_id == AttributeIds.NodeId:
            return getattr(event, "NodeId", None)
        return None
    name = "/".join(q.Name for q in path)
    field = getattr(event, "field", None)
    if callable(field):
        variant = field(name)
        return None if variant is None else variant.Value
    return getattr(event, name, None)


#: Operators over lazily evaluated operands (``v(i)`` evaluates the i-th).
_LOGICAL: dict[Any, Callable[[Callable[[int], Any]], Any]] = {
    _F.And: lambda v: bool(v(0)) and bool(v(1)),
    _F.Or: lambda v: bool(v(0)) or bool(v(1)),
    _F.Not: lambda v: not v(0),
}
#: Ordering comparisons: false when either side is missing.
_COMPARISONS: dict[Any, Callable[[Any, Any], bool]] = {
    _F.GreaterThan: operator.gt,
    _F.LessThan: operator.lt,
    _F.GreaterThanOrEqual: operator.ge,
    _F.LessThanOrEqual: operator.le,
}
#: Operators that compute a value from their operands.
_VALUES: dict[Any, Callable[[Callable[[int], Any]], Any]] = {
    _F.IsNull: lambda v: v(0) is None,
    _F.Equals: lambda v: bool(v(0) == v(1)),
    _F.Like: lambda v: _like(v(0), v(1)),
    _F.Cast: lambda v: v(0),
    _F.BitwiseAnd: lambda v: int(v(0)) & int(v(1)),
    _F.BitwiseOr: lambda v: int(v(0)) | int(v(1)),
}


def _like(value: Any, pattern: Any) -> bool:
    """OPC UA ``Like``: ``%`` any run, ``_`` one character, ``[...]`` a set."""
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    regex = "".join(
        ".*" if c == "%" else "." if c == "_" else c if c in "[]^" else re.escape(c)
        for c in pattern
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


class SubtypeAwareWhereClause:
    """Evaluates a ``ContentFilter`` against one event; the interface asyncua calls (``eval``)."""

    def __init__(self, where: ua.ContentFilter, is_subtype: IsSubtype) -> None:
        self.elements = list(where.Elements or [])
        self._is_subtype = is_subtype

    def eval(self, event: Any) -> bool:
        if not self.elements:
            return True
        try:
            return bool(self._element(0, event))
        except Exception:
            log.warning("where clause could not be evaluated; event not delivered", exc_info=True)
            return False

    def _element(self, index: int, event: Any) -> Any:
        element = self.elements[index]
        op = element.FilterOperator
        args = element.FilterOperands or []

        def v(i: int) -> Any:
            return self._operand(args[i], event)

        if op == _F.OfType:
            wanted = v(0)
            event_type = getattr(event, "EventType", None)
            return (
                isinstance(wanted, ua.NodeId)
                and isinstance(event_type, ua.NodeId)
                and self._is_subtype(event_type, wanted)
            )
        if op == _F.InList:
            first = v(0)
            return any(first == v(i) for i in range(1, len(args)))
        if op == _F.Between:
            a, low, high = v(0), v(1), v(2)
            return None not in (a, low, high) and low <= a <= high
        if op in _LOGICAL:  # operands evaluated only as far as needed
            return _LOGICAL[op](v)
        if op in _COMPARISONS:
            a, b = v(0), v(1)
            return a is not None and b is not None and _COMPARISONS[op](a, b)
        if op in _VALUES:
            return _VALUES[op](v)
        raise NotImplementedError(f"filter operator {op!r}")

    def _operand(self, operand: Any, event: Any) -> Any:
        if isinstance(operand, ua.ElementOperand):
            return self._element(operand.Index, event)
        if isinstance(operand, ua.LiteralOperand):
            return None if operand.Value is None else operand.Value.Value
        if isinstance(operand, ua.SimpleAttributeOperand):
            return event_value(event, operand.BrowsePath or [], operand.AttributeId)
        if isinstance(operand, ua.AttributeOperand):
            elements = operand.BrowsePath.Elements if operand.BrowsePath else []
            return event_value(event, [e.TargetName for e in elements], operand.AttributeId)
        raise NotImplementedError(f"filter operand {type(operand).__name__}")
