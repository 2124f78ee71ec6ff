"""DataChangeNotifications encoded by numpy, a whole publish at a time.

asyncua encodes every MonitoredItemNotification field by field through generic
dataclass serializers (~6 µs each), after the server built a DataValue, a
Variant and the notification object for it (~3 µs more).  A point's
notification has one of a few fixed layouts — ClientHandle, then a DataValue
with an encoding mask, a Double/Int64/Boolean or no value, a StatusCode and one
or two timestamps — so the items of one layout are written as one numpy
structured array and turned into bytes in a single step.

The result is the binary body of a ``DataChangeNotification`` wrapped in an
``ExtensionObject``, which asyncua writes out as it is; notifications asyncua
queued itself (first values, items with longer queues) are encoded by asyncua
and put first, so each item's values stay in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import struct_to_binary

from .values import BOOLEAN, DOUBLE, INT64

__all__ = ["NULL", "data_change_notification", "encode_items", "to_ticks"]

#: Variant type code of "no value" (a Bad StatusCode carries none).
NULL = 0
_TYPE_ID = ua.NodeId(ua.Int32(ObjectIds.DataChangeNotification_Encoding_DefaultBinary))
#: Seconds from 1601-01-01 (OPC UA DateTime's epoch) to 1970-01-01.
_EPOCH_OFFSET = 11_644_473_600
_VALUE_FORMATS = {DOUBLE: "<f8", INT64: "<i8", BOOLEAN: "u1"}
_HAS_VALUE, _HAS_STATUS, _HAS_SOURCE, _HAS_SERVER = 0x01, 0x02, 0x04, 0x08


def to_ticks(seconds: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Epoch seconds as OPC UA DateTime ticks (100 ns since 1601), rounded to the
    microsecond exactly as ``datetime.fromtimestamp`` rounds (half to even).

    Read values, events and history carry datetimes made that way; the ticks here
    are the ones asyncua would write for them, so a timestamp is the same whichever
    service a client got it from.  Whole seconds and the fraction are converted
    apart: ticks since 1601 need 58 bits, more than a double's mantissa holds.
    """
    whole = np.floor(seconds)
    micros = np.rint((seconds - whole) * 1_000_000).astype(np.int64)
    ticks: npt.NDArray[np.int64] = (
        whole.astype(np.int64) + _EPOCH_OFFSET
    ) * 10_000_000 + micros * 10
    return ticks


def _layout(variant: int, has_source: bool) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("handle", "<u4"), ("mask", "u1")]
    if variant != NULL:
        fields += [("variant", "u1"), ("value", _VALUE_FORMATS[variant])]
    fields.append(("status", "<u4"))
    if has_source:
        fields.append(("source", "<i8"))
    fields.append(("server", "<i8"))
    return np.dtype(fields)


_LAYOUTS = {
    (variant, source): _layout(variant, source)
    for variant in (NULL, DOUBLE, INT64, BOOLEAN)
    for source in (False, True)
}


def encode_items(
    *,
    handles: npt.NDArray[np.uint32],
    variants: npt.NDArray[np.uint8],
    values: npt.NDArray[np.float64],
    statuses: npt.NDArray[np.uint32],
    source_seconds: npt.NDArray[np.float64],
    server_ticks: npt.NDArray[np.int64],
) -> bytes:
    """The binary MonitoredItemNotifications of point values, concatenated.

    ``variants[i]`` is the Variant type code (``NULL`` for no value),
    ``source_seconds[i]`` 0 where the value has no source timestamp.
    """
    has_source = source_seconds > 0
    parts = []
    for (variant, source), layout in _LAYOUTS.items():
        chosen = np.flatnonzero((variants == variant) & (has_source == source))
        if chosen.size == 0:
            continue
        records = np.empty(chosen.size, dtype=layout)
        records["handle"] = handles[chosen]
        mask = _HAS_STATUS | _HAS_SERVER
        if variant != NULL:
            mask |= _HAS_VALUE
            records["variant"] = variant
            records["value"] = values[chosen]
        if source:
            mask |= _HAS_SOURCE
            records["source"] = to_ticks(source_seconds[chosen])
        records["mask"] = mask
        records["status"] = statuses[chosen]
        records["server"] = server_ticks[chosen]
        parts.append(records.tobytes())
    return b"".join(parts)


def data_change_notification(
    queued: Sequence[ua.MonitoredItemNotification], encoded: bytes, count: int
) -> ua.ExtensionObject:
    """One DataChangeNotification: asyncua's ``queued`` items, then ``count`` encoded ones."""
    body = b"".join(
        (
            np.int32(len(queued) + count).tobytes(),
            *(struct_to_binary(item) for item in queued),
            encoded,
            np.int32(0).tobytes(),  # DiagnosticInfos: none
        )
    )
    return ua.ExtensionObject(TypeId=_TYPE_ID, Body=ua.ByteString(body))
