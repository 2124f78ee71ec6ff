"""Point values as OPC UA publishes them, straight from the value table.

NaN is how the table says "no value" (never read, or lost with a Bad quality).
A NaN is never published as a new value: a point shows the last value it
published (NaN for a Double never read, 0/False for Int64/Boolean), with the
current StatusCode.  Following Part 4 §7.7.1, a Bad StatusCode carries no value,
so clients see the last value again once quality recovers.

:class:`PointValues` keeps that "last published" column beside the table and
turns table slots into DataValues — one at a time for Read, and as arrays for
the subscriptions (:mod:`.subscriptions`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from asyncua import ua

from plantguard.model import Point
from plantguard.table import ValueTable

from .quality import STATUS_CODES

__all__ = ["BOOLEAN", "DOUBLE", "INT64", "PointValues", "to_datetime"]

#: Variant type codes of point variables, as stored per point.
DOUBLE, INT64, BOOLEAN = (
    ua.VariantType.Double.value,
    ua.VariantType.Int64.value,
    ua.VariantType.Boolean.value,
)
_CODES = {"float": DOUBLE, "int": INT64, "bool": BOOLEAN}
_INT64_MIN, _INT64_MAX = -(2.0**63), 2.0**63 - 1024  # the largest double below 2**63


def to_datetime(seconds: float) -> ua.DateTime | None:
    """Epoch seconds as the aware UTC datetime asyncua encodes (0 means never read)."""
    if seconds <= 0 or not math.isfinite(seconds):
        return None
    return cast(ua.DateTime, dt.datetime.fromtimestamp(seconds, tz=dt.UTC))


class PointValues:
    """The variant type and last published value of every table slot."""

    def __init__(self, table: ValueTable, points: Sequence[Point]) -> None:
        self.table = table
        n = len(table)
        self.variant: npt.NDArray[np.uint8] = np.full(n, DOUBLE, dtype=np.uint8)
        for point in points:
            index = table.index.get(point.id)
            if index is not None:
                self.variant[index] = _CODES[point.data_type]
        #: The value each point last published (its initial value until it has one).
        self.last: npt.NDArray[np.float64] = np.where(self.variant == DOUBLE, np.nan, 0.0)
        self.refresh(np.arange(n, dtype=np.intp))

    def refresh(self, indices: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Take the table's values at ``indices`` as published; return them, converted
        to each variable's type (Int64 truncated and clamped, Boolean 0/1)."""
        raw = self.table.values[indices]
        variant = self.variant[indices]
        converted = raw.copy()
        ints = variant == INT64
        if ints.any():
            with np.errstate(invalid="ignore"):
                converted[ints] = np.trunc(np.clip(raw[ints], _INT64_MIN, _INT64_MAX))
            converted[ints & np.isinf(raw)] = np.nan
        bools = variant == BOOLEAN
        if bools.any():
            converted[bools] = np.where(np.isnan(raw[bools]), np.nan, raw[bools] != 0.0)
        have = ~np.isnan(converted)
        self.last[indices[have]] = converted[have]
        published: npt.NDArray[np.float64] = self.last[indices]
        return published

    def datavalue(self, index: int) -> ua.DataValue:
        """The current DataValue of one slot (for Read)."""
        status = STATUS_CODES[int(self.table.quality[index])]
        if status.is_bad():
            value = ua.Variant(None, ua.VariantType.Null)  # Part 4 §7.7.1: no value
        else:
            value = self.variant_of(index, float(self.last[index]))
        return ua.DataValue(
            Value=value,
            StatusCode=status,
            SourceTimestamp=to_datetime(float(self.table.source_time[index])),
            ServerTimestamp=cast(ua.DateTime, dt.datetime.now(dt.UTC)),
        )

    def variant_of(self, index: int, value: float) -> ua.Variant:
        code = int(self.variant[index])
        if code == INT64:
            return ua.Variant(int(value), ua.VariantType.Int64)
        if code == BOOLEAN:
            return ua.Variant(bool(value), ua.VariantType.Boolean)
        return ua.Variant(value, ua.VariantType.Double)
