"""Sparkplug NDATA/DDATA straight from the protobuf message: the ingest hot path.

Why not pysparkplug's ``DData.decode``: it builds a frozen ``Metric`` dataclass,
a ``DataType`` enum and an optional ``Metadata`` per metric, about 1 ms for 100
metrics — most of the driver's time per message.  Here the payload is parsed with
the official Sparkplug B schema as pysparkplug compiles it
(``pysparkplug._protobuf.Payload``, the class the publishing side already uses)
and each metric becomes a :data:`Sample` — the name, the value as the driver
stores it (or why it is no number), the timestamp — without intermediate objects.

Behaviour is pysparkplug's, which stays the reference: names of alias-only
metrics and missing datatypes come from the last birth's maps (an unknown alias or
name fails the message), integers follow Sparkplug's conventions (INT8/16/32 as
two's complement in ``int_value``, INT64 in ``long_value``; out of range fails the
message), ``is_null``, ``is_historical`` and the timestamps are read as it reads
them.  Metrics that are no numeric scalar (strings, dates, arrays, bytes …) are
rare: they go through pysparkplug's own ``Metric.from_pb``.  And whatever this
path refuses, :func:`library_data` decodes with pysparkplug, so an undecodable
message fails with the library's own exception and message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pysparkplug as sp
from pysparkplug._protobuf import Payload

from .decode import NotANumber, as_number

__all__ = ["DataMessage", "Sample", "birth_maps", "fast_data", "library_data", "samples_of"]

#: A metric as the driver needs it: name (None: the message had none and there is no
#: birth), value (a finite float; a str saying why it is no number; None: historical,
#: not a live value) and timestamp in ms (0: none, the message's time applies).
Sample = tuple[str | None, float | str | None, int]

#: Integer datatypes: bits and whether the protobuf value is two's complement.
_INTEGERS: dict[int, tuple[int, bool]] = {
    int(sp.DataType.INT8): (8, True),
    int(sp.DataType.INT16): (16, True),
    int(sp.DataType.INT32): (32, True),
    int(sp.DataType.INT64): (64, True),
    int(sp.DataType.UINT8): (8, False),
    int(sp.DataType.UINT16): (16, False),
    int(sp.DataType.UINT32): (32, False),
    int(sp.DataType.UINT64): (64, False),
}
_SCALARS = frozenset(
    {*_INTEGERS, int(sp.DataType.FLOAT), int(sp.DataType.DOUBLE), int(sp.DataType.BOOLEAN)}
)
_FLOATS = frozenset({int(sp.DataType.FLOAT), int(sp.DataType.DOUBLE)})
_FLOAT_FIELDS = frozenset({"float_value", "double_value"})
_NUMBER_FIELDS = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value"}
)


class _Refused(Exception):
    """Something this path does not decide itself (pysparkplug decides it)."""


class DataMessage:
    """A decoded NDATA/DDATA: what the node tracker and the drivers read of it."""

    __slots__ = ("_metrics", "samples", "seq", "timestamp")

    def __init__(self, timestamp: int, seq: int, samples: list[Sample], metrics: Any) -> None:
        self.timestamp = timestamp
        self.seq = seq
        self.samples = samples
        self._metrics = metrics  # protobuf metrics, or pysparkplug's

    @property
    def labels(self) -> list[str]:
        """Each metric's name, or ``alias N`` (a sequence error's fault names them);
        computed when asked, not per message."""
        out: list[str] = []
        for (name, _, _), metric in zip(self.samples, self._metrics, strict=True):
            if name:
                out.append(name)
            elif isinstance(metric, sp.Metric):
                out.append(f"alias {metric.alias}")
            else:
                out.append(f"alias {metric.alias if metric.HasField('alias') else None}")
        return out


def birth_maps(birth: sp.NBirth | sp.DBirth) -> tuple[dict[int, str], dict[str, int]]:
    """A birth's alias → name and name → datatype maps, as pysparkplug keeps them."""
    aliases: dict[int, str] = {}
    datatypes: dict[str, int] = {}
    for metric in birth.metrics:
        assert metric.name is not None  # a Birth refuses nameless metrics
        if metric.alias is not None:
            aliases[metric.alias] = metric.name
        datatypes[metric.name] = int(metric.datatype)
    return aliases, datatypes


def fast_data(
    payload: bytes,
    maps: tuple[Mapping[int, str], Mapping[str, int]] | None,
) -> DataMessage:
    """Decode NDATA/DDATA ``payload`` given the last birth's :func:`birth_maps`.

    :raises Exception: whatever makes the message unusable (protobuf's DecodeError,
        an unknown alias, an out-of-range integer …) or what this path leaves to
        pysparkplug; :func:`library_data` says which, in the library's words.
    """
    message = Payload.FromString(payload)
    if not message.HasField("timestamp") or not message.HasField("seq"):
        raise _Refused("no timestamp or seq")
    metrics = message.metrics
    samples: list[Sample] = []
    append = samples.append
    aliases, datatypes = maps if maps is not None else (None, None)
    isfinite = math.isfinite
    for metric in metrics:
        name: str | None = metric.name
        if not name:
            if aliases is None:
                name = name if metric.HasField("name") else None
            else:
                name = aliases[metric.alias]
        datatype: int = metric.datatype
        if not datatype and datatypes is not None:
            datatype = datatypes[name]  # type: ignore[index]
        field = metric.WhichOneof("value")
        if field in _FLOAT_FIELDS and datatype in _FLOATS and not metric.is_null:
            value = getattr(metric, field)  # the common case, inline
            if not isfinite(value):
                value = f"{value} is not a finite number"
        elif datatype in _SCALARS and (field is None or field in _NUMBER_FIELDS):
            value = _number(metric, datatype, field)
        else:
            value = _other(metric, name, datatype)
        append((name, None if metric.is_historical else value, metric.timestamp))
    return DataMessage(message.timestamp, message.seq, samples, metrics)


def _number(metric: Any, datatype: int, field: str | None) -> float | str:
    """A numeric scalar's value as the driver stores it (or why it is none)."""
    if field is None:
        return "null"
    value = getattr(metric, field)
    integer = _INTEGERS.get(datatype)
    if integer is not None:
        bits, signed = integer
        if not 0 <= value < 1 << bits:
            raise _Refused("integer out of range")  # pysparkplug: OverflowError
        if signed and value >= 1 << (bits - 1):
            value -= 1 << bits
    if metric.is_null:
        return "null"
    if type(value) is float:
        return value if math.isfinite(value) else f"{value} is not a finite number"
    return float(value)


def _other(metric: Any, name: str | None, datatype: int) -> float | str:
    """Any other metric: pysparkplug's ``Metric.from_pb`` decodes it (and may refuse it)."""
    if name is not None:
        metric.name = name
    metric.datatype = datatype
    return _value_of(sp.Metric.from_pb(metric))


def _value_of(metric: sp.Metric) -> float | str:
    if metric.is_null or metric.value is None:
        return "null"
    if not isinstance(metric.value, (bool, int, float)):
        return f"a {metric.datatype.name} metric, not a number"
    try:
        return as_number(metric.value)
    except NotANumber as exc:
        return str(exc)


def samples_of(metrics: Sequence[sp.Metric]) -> list[Sample]:
    """pysparkplug's metrics (a birth's, or a data message it decoded) as samples."""
    return [(m.name, None if m.is_historical else _value_of(m), m.timestamp or 0) for m in metrics]


def library_data(
    kind: type[sp.NData | sp.DData], payload: bytes, birth: sp.NBirth | sp.DBirth | None
) -> DataMessage:
    """``payload`` decoded by pysparkplug: the reference, and the fallback of
    :func:`fast_data` (so a bad message fails with pysparkplug's exception)."""
    decoded = kind.decode(payload, birth=birth)
    samples = samples_of(decoded.metrics)
    return DataMessage(decoded.timestamp, decoded.seq, samples, decoded.metrics)
