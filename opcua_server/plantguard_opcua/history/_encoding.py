"""HistoryData bodies written straight from the columns of a :class:`.Series`.

asyncua builds and encodes one ``DataValue`` object per value (tens of µs each, more
than the store's own read); :func:`history_data` writes the binary ``HistoryData``
body from the arrays instead, so a HistoryRead costs little more than the
``Store.trend`` beneath it.  The live values' encoder (:mod:`plantguard_opcua.encoding`)
cannot serve here: a MonitoredItemNotification has a few fixed layouts, one numpy
record type each, while the DataValues of a HistoryData differ in length (a Bad value
carries no value, a Good one no StatusCode), so every field is scattered at offsets
from a cumulative sum.  Both write DateTimes with :func:`.encoding.to_ticks`.
"""

from __future__ import annotations

from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.ua.object_ids import ObjectIds

from ..encoding import to_ticks
from ._series import F64, GOOD, Ints, Series, is_bad

__all__ = ["history_data"]

_V = ua.VariantType
_VALUE_DTYPES: Final[dict[ua.VariantType, str]] = {
    _V.Double: "<f8",
    _V.Int64: "<i8",
    _V.Int32: "<i4",
    _V.Boolean: "u1",
}
_INT_LIMITS: Final = {_V.Int64: (-(2.0**63), 2.0**63 - 1024), _V.Int32: (-(2.0**31), 2.0**31 - 1)}
_HISTORY_DATA: Final = ua.NodeId(ua.Int32(ObjectIds.HistoryData_Encoding_DefaultBinary))


def _value_bytes(values: F64, variant: ua.VariantType) -> npt.NDArray[np.uint8]:
    """Little-endian encodings of ``values`` as ``variant`` (Int64 truncated and clamped,
    Boolean ``value != 0``, as live values are converted)."""
    if variant in _INT_LIMITS:
        low, high = _INT_LIMITS[variant]
        typed: npt.NDArray[Any] = np.trunc(np.clip(values, low, high)).astype(
            _VALUE_DTYPES[variant]
        )
    elif variant == _V.Boolean:
        typed = (values != 0.0).astype(np.uint8)
    else:
        typed = values.astype("<f8")
    return typed.view(np.uint8).reshape(values.size, typed.dtype.itemsize)


def _scatter(out: npt.NDArray[np.uint8], at: Ints, columns: npt.NDArray[np.uint8]) -> None:
    """Write row ``k`` of ``columns`` to ``out[at[k] : at[k] + width]``, all rows at once."""
    if at.size:
        out[at[:, None] + np.arange(columns.shape[1])] = columns


def _encode_history_data(
    series: Series, variant: ua.VariantType, *, source_timestamps: bool = True
) -> bytes:
    """The OPC UA binary body of a ``HistoryData`` holding ``series`` (Part 6 §5.2.2.17).

    Each DataValue gets a value unless it is NaN or its StatusCode is Bad (Part 4
    §7.7.1), a StatusCode unless it is Good, and the source timestamp.  Records
    differ in length, so their offsets come from a cumulative sum and every field
    is scattered into one byte array.
    """
    n = len(series)
    has_value = ~np.isnan(series.value) & ~is_bad(series.status)
    has_status = series.status != GOOD
    width = np.dtype(_VALUE_DTYPES[variant]).itemsize
    lengths = 1 + has_value * (1 + width) + has_status * 4 + (8 if source_timestamps else 0)
    ends = np.cumsum(lengths)
    starts = (ends - lengths).astype(np.intp)
    out = np.zeros(4 + int(ends[-1] if n else 0), dtype=np.uint8)
    out[:4] = np.array([n], dtype="<i4").view(np.uint8)
    body = out[4:]
    mask = has_value * 0x01 | has_status * 0x02 | (0x04 if source_timestamps else 0)
    body[starts] = mask
    cursor = starts + 1
    at = cursor[has_value]
    body[at] = int(variant)
    _scatter(body, at + 1, _value_bytes(series.value[has_value], variant))
    cursor = cursor + has_value * (1 + width)
    statuses = series.status[has_status].astype("<u4")
    _scatter(body, cursor[has_status], statuses.view(np.uint8).reshape(-1, 4))
    cursor = cursor + has_status * 4
    if source_timestamps:
        ticks = to_ticks(series.time)  # as Read values and events
        _scatter(body, cursor, ticks.view(np.uint8).reshape(-1, 8))
    return out.tobytes()


def history_data(series: Series, variant: ua.VariantType) -> ua.ExtensionObject:
    """``series`` as the already-encoded HistoryData extension object of a result
    (asyncua writes an ExtensionObject's body as it is)."""
    body = cast(ua.ByteString, _encode_history_data(series, variant))
    return ua.ExtensionObject(TypeId=_HISTORY_DATA, Body=body)
