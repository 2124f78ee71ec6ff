"""Method arguments checked against the method's InputArguments before any handler runs.

asyncua hands a Call's arguments to the linked Python function as they came:
``ConditionRefresh("abc")`` reached ``int()`` and came back as
BadUnexpectedError with a traceback in the log, ``TimedShelve(true)`` shelved
for a millisecond, an extra argument was ignored.  Part 4 §5.11.2 says what a
server answers instead, and every method node already declares what it takes
(its ``InputArguments`` property), so one check serves the A&C methods, the
records methods and any a plugin adds:

* fewer arguments than declared → ``BadArgumentsMissing``;
* more → ``BadTooManyArguments``;
* an argument of the wrong type → ``BadInvalidArgument``, with
  ``BadTypeMismatch`` in that argument's InputArgumentResults;
* text longer than :data:`MAX_TEXT` characters → ``BadInvalidArgument``, with
  ``BadOutOfRange`` for that argument.

Types are matched by their built-in base type, as a client library encodes
them: any integer Variant whose value fits an integer parameter (clients differ
in Int32/UInt32 for an IntegerId), any number for a Double or Duration, String or
LocalizedText for text.  Booleans are never numbers here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

__all__ = ["MAX_TEXT", "ArgumentCheck"]

#: Longest text argument (a comment, a record's field), in characters.
MAX_TEXT = 4096

_V = ua.VariantType
_INTEGER_RANGES: dict[int, tuple[int, int]] = {
    _V.SByte.value: (-(2**7), 2**7 - 1),
    _V.Byte.value: (0, 2**8 - 1),
    _V.Int16.value: (-(2**15), 2**15 - 1),
    _V.UInt16.value: (0, 2**16 - 1),
    _V.Int32.value: (-(2**31), 2**31 - 1),
    _V.UInt32.value: (0, 2**32 - 1),
    _V.Int64.value: (-(2**63), 2**63 - 1),
    _V.UInt64.value: (0, 2**64 - 1),
}
_INTEGER_VARIANTS = frozenset(_V(v) for v in _INTEGER_RANGES)
_NUMBER_VARIANTS = _INTEGER_VARIANTS | {_V.Float, _V.Double}
_TEXT_VARIANTS = frozenset({_V.String, _V.LocalizedText})
#: Abstract types a declared argument may have: BaseDataType, Number, Integer, UInteger.
_ANY, _NUMBER, _INTEGER, _UINTEGER = (
    ObjectIds.BaseDataType,
    ObjectIds.Number,
    ObjectIds.Integer,
    ObjectIds.UInteger,
)
_BUILTIN_MAX = 25  # DiagnosticInfo: built-in type ids are 1..25


def _node(number: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(number))


_HAS_PROPERTY = _node(ObjectIds.HasProperty)


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


class ArgumentCheck:
    """Checks calls against the InputArguments of the method they name.

    ``lookup(node_id)`` is the address space's ``get`` (the view's, so rendered
    methods are found too); ``base_type(data_type)`` walks HasSubtype to a
    built-in or abstract type.  The declared arguments of each method are cached.
    """

    def __init__(
        self,
        lookup: Callable[[ua.NodeId], Any],
        base_type: Callable[[ua.NodeId], int],
        *,
        cache_size: int = 4096,
    ) -> None:
        self._lookup = lookup
        self._base_type = base_type
        self._declared: dict[ua.NodeId, list[int] | None] = {}
        self._cache_size = cache_size

    def __call__(self, request: ua.CallMethodRequest) -> ua.CallMethodResult | None:
        """A refusal for ``request``, or None when its arguments are as declared."""
        declared = self.declared(request.MethodId)
        if declared is None:
            return None  # an unknown method or one that declares nothing: asyncua answers
        given = list(request.InputArguments or [])
        result = ua.CallMethodResult()
        if len(given) < len(declared):
            result.StatusCode = _status(StatusCodes.BadArgumentsMissing)
            return result
        if len(given) > len(declared):
            result.StatusCode = _status(StatusCodes.BadTooManyArguments)
            return result
        codes = [self._check(base, arg) for base, arg in zip(declared, given, strict=True)]
        if all(code == StatusCodes.Good for code in codes):
            return None
        result.StatusCode = _status(StatusCodes.BadInvalidArgument)
        result.InputArgumentResults = [_status(code) for code in codes]
        return result

    def declared(self, method_id: ua.NodeId) -> list[int] | None:
        """Base type of each declared input argument; None if the method declares none."""
        if method_id in self._declared:
            return self._declared[method_id]
        node = self._lookup(method_id)
        if node is None or node.attributes.get(AttributeIds.NodeClass) is None:
            return None
        node_class = node.attributes[AttributeIds.NodeClass].value.Value.Value
        if node_class != ua.NodeClass.Method:
            return None
        found: list[int] | None = []
        for ref in node.references:
            if ref.ReferenceTypeId != _HAS_PROPERTY or not ref.IsForward:
                continue
            if ref.BrowseName.Name != "InputArguments":
                continue
            prop = self._lookup(ref.NodeId)
            value = prop.attributes[AttributeIds.Value].value.Value.Value if prop else None
            found = [self._base_type(arg.DataType) for arg in value or []]
        if len(self._declared) >= self._cache_size:
            self._declared.pop(next(iter(self._declared)))
        self._declared[method_id] = found
        return found

    @staticmethod
    def _check(base: int, arg: Any) -> int:
        variant = arg if isinstance(arg, ua.Variant) else ua.Variant(arg)
        kind, value = variant.VariantType, variant.Value
        if base == _ANY:
            return StatusCodes.Good
        if value is None or variant.is_array:
            return StatusCodes.BadTypeMismatch
        if base in _INTEGER_RANGES or base in (_INTEGER, _UINTEGER):
            low, high = _INTEGER_RANGES.get(base, (0 if base == _UINTEGER else -(2**63), 2**64))
            if kind not in _INTEGER_VARIANTS:
                return StatusCodes.BadTypeMismatch
            return StatusCodes.Good if low <= value <= high else StatusCodes.BadOutOfRange
        if base in (_V.Double.value, _V.Float.value, _NUMBER):
            if kind not in _NUMBER_VARIANTS:
                return StatusCodes.BadTypeMismatch
            return StatusCodes.Good if math.isfinite(value) else StatusCodes.BadOutOfRange
        if base in (_V.String.value, _V.LocalizedText.value):
            if kind not in _TEXT_VARIANTS:
                return StatusCodes.BadTypeMismatch
            text = value.Text if isinstance(value, ua.LocalizedText) else value
            return StatusCodes.Good if len(text or "") <= MAX_TEXT else StatusCodes.BadOutOfRange
        if base <= _BUILTIN_MAX:
            return StatusCodes.Good if kind.value == base else StatusCodes.BadTypeMismatch
        return StatusCodes.Good  # a structure or enumeration: its handler decodes it


def base_type_finder(lookup: Callable[[ua.NodeId], Any]) -> Callable[[ua.NodeId], int]:
    """``base_type(data_type)``: the built-in or abstract type a DataType derives from."""
    has_subtype = _node(ObjectIds.HasSubtype)
    abstract = {_ANY, _NUMBER, _INTEGER, _UINTEGER}
    cache: dict[ua.NodeId, int] = {}

    def base_type(data_type: ua.NodeId) -> int:
        if data_type in cache:
            return cache[data_type]
        current: ua.NodeId | None = data_type
        found = _ANY
        for _ in range(32):  # type trees are shallow; this bounds a cycle
            if current is None:
                break
            if current.NamespaceIndex == 0 and isinstance(current.Identifier, int):
                ident = current.Identifier
                if ident <= _BUILTIN_MAX or ident in abstract:
                    found = ident
                    break
            node = lookup(current)
            current = None
            for ref in node.references if node is not None else ():
                if ref.ReferenceTypeId == has_subtype and not ref.IsForward:
                    current = ref.NodeId
                    break
        cache[data_type] = found
        return found

    return base_type
