"""DataValues as columns, and the StatusCode and time helpers every history read shares.

A HistoryRead returns up to hundreds of thousands of DataValues; one ``ua.DataValue``
object each would cost more than reading them from the store.  :class:`Series` keeps
them as three numpy columns (source time, value, StatusCode) all the way from
``Store.trend`` through the aggregates to the binary encoder, and this module holds
what every stage needs to read or set in those columns: StatusCodes and the
historian bits of Part 11, and the conversions of request times.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from asyncua.ua.status_codes import StatusCodes

__all__ = [
    "BAD",
    "BAD_BOUND_NOT_FOUND",
    "BAD_NO_DATA",
    "CALCULATED",
    "F64",
    "GOOD",
    "INTERPOLATED",
    "MULTI_VALUE",
    "PARTIAL",
    "SEVERITY",
    "U32",
    "UNCERTAIN_SUBNORMAL",
    "Bools",
    "Ints",
    "Series",
    "after",
    "before",
    "epoch_seconds",
    "is_bad",
    "is_uncertain",
    "with_bits",
]

F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

# --- status codes ---------------------------------------------------------------------------

GOOD: Final = StatusCodes.Good
BAD_NO_DATA: Final = StatusCodes.BadNoData
BAD_BOUND_NOT_FOUND: Final = StatusCodes.BadBoundNotFound
UNCERTAIN_SUBNORMAL: Final = StatusCodes.UncertainDataSubNormal
BAD: Final = StatusCodes.Bad
#: InfoType "DataValue": the historian bits below are meaningful (Part 4 §7.39.1).
_INFO_DATAVALUE: Final = 0x400
CALCULATED: Final = 0x1
INTERPOLATED: Final = 0x2
PARTIAL: Final = 0x4
MULTI_VALUE: Final = 0x10
SEVERITY: Final = 0xC0000000
_SEVERITY_UNCERTAIN: Final = 0x40000000


def is_bad(status: U32) -> Bools:
    bad: Bools = (status & 0x80000000) != 0
    return bad


def is_uncertain(status: U32) -> Bools:
    uncertain: Bools = (status & SEVERITY) == _SEVERITY_UNCERTAIN
    return uncertain


def with_bits(status: U32, bits: npt.NDArray[np.uint32]) -> U32:
    """``status`` with historian bits set (and InfoType DataValue wherever any is)."""
    info = np.where(bits != 0, _INFO_DATAVALUE, 0).astype(np.uint32)
    return (status | bits | info).astype(np.uint32)


# --- time -------------------------------------------------------------------------------------

_UNSPECIFIED = dt.datetime(1601, 1, 2, tzinfo=dt.UTC)


def epoch_seconds(when: dt.datetime | None) -> float | None:
    """Epoch seconds of a request time; None for DateTime.MinValue ("not specified")."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when < _UNSPECIFIED:
        return None
    return when.timestamp()


def after(t: float) -> float:
    """The next representable time after ``t``: turns ``< t`` bounds into ``<= t``."""
    return float(np.nextafter(t, math.inf))


def before(t: float) -> float:
    """The representable time before ``t``: turns ``> t`` bounds into ``>= t``."""
    return float(np.nextafter(t, -math.inf))


# --- columns of DataValues --------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    """DataValues as columns: source time (s), value (NaN = no value), StatusCode value."""

    time: F64
    value: F64
    status: U32

    @staticmethod
    def empty() -> Series:
        return Series(np.empty(0), np.empty(0), np.empty(0, dtype=np.uint32))

    @staticmethod
    def single(at: float, status: int, value: float = math.nan) -> Series:
        return Series(np.array([at]), np.array([value]), np.array([status], dtype=np.uint32))

    @staticmethod
    def concat(*parts: Series) -> Series:
        return Series(
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.value for p in parts]),
            np.concatenate([p.status for p in parts]).astype(np.uint32),
        )

    def __len__(self) -> int:
        return int(self.time.size)

    def where(self, mask: Bools) -> Series:
        return Series(self.time[mask], self.value[mask], self.status[mask])

    def slice(self, start: int, stop: int | None = None) -> Series:
        return Series(self.time[start:stop], self.value[start:stop], self.status[start:stop])

    def reversed(self) -> Series:
        return Series(self.time[::-1], self.value[::-1], self.status[::-1])

    def last(self) -> Series:
        return self.slice(len(self) - 1) if len(self) else self
