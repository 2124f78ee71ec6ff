"""Notifications encoded by numpy decode to what asyncua's own encoding says."""

from __future__ import annotations

import datetime as dt
import io
from typing import cast

import numpy as np
import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import (
    extensionobject_from_binary,
    extensionobject_to_binary,
    from_binary,
    struct_to_binary,
)

from plantguard_opcua.encoding import NULL, data_change_notification, encode_items, to_ticks
from plantguard_opcua.values import BOOLEAN, DOUBLE, INT64

SOURCE = 1_700_000_000.25
SERVER = dt.datetime(2026, 11, 30, 5, 0, 0, 125000, tzinfo=dt.UTC)


def _expected() -> list[ua.MonitoredItemNotification]:
    # asyncua annotates DataValue timestamps as ua.DateTime (its datetime subclass) but
    # takes and encodes any aware datetime, as plantguard_opcua.values passes them.
    source = cast(ua.DateTime, dt.datetime.fromtimestamp(SOURCE, dt.UTC))

    def item(
        handle: int, variant: ua.Variant, status: int, with_source: bool = True
    ) -> ua.MonitoredItemNotification:
        return ua.MonitoredItemNotification(
            ClientHandle=handle,
            Value=ua.DataValue(
                variant,
                StatusCode=ua.StatusCode(ua.UInt32(status)),
                SourceTimestamp=source if with_source else None,
                ServerTimestamp=cast(ua.DateTime, SERVER),
            ),
        )

    return [
        item(7, ua.Variant(1.5, ua.VariantType.Double), StatusCodes.Good),
        item(8, ua.Variant(-3, ua.VariantType.Int64), StatusCodes.Uncertain),
        item(9, ua.Variant(True, ua.VariantType.Boolean), StatusCodes.Good, with_source=False),
        item(10, ua.Variant(None, ua.VariantType.Null), StatusCodes.BadCommunicationError),
        item(2**32 - 1, ua.Variant(-0.0, ua.VariantType.Double), StatusCodes.Good),
    ]


def _decode(body: bytes) -> list[ua.MonitoredItemNotification]:
    decoded = from_binary(ua.DataChangeNotification, io.BytesIO(body))
    return sorted(decoded.MonitoredItems, key=lambda n: n.ClientHandle)


def _comparable(items: list[ua.MonitoredItemNotification]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for n in items:
        value = n.Value
        variant = value.Value
        payload = None if variant is None or variant.Value is None else variant.Value
        kind = None if payload is None else variant.VariantType
        out.append(
            (n.ClientHandle, kind, payload, value.StatusCode, value.SourceTimestamp,
             value.ServerTimestamp)
        )  # fmt: skip
    return out


_STATUSES = [
    StatusCodes.Good,
    StatusCodes.Uncertain,
    StatusCodes.Good,
    StatusCodes.BadCommunicationError,
    StatusCodes.Good,
]


def test_items_decode_like_asyncuas_own() -> None:
    server = to_ticks(np.array([SERVER.timestamp()]))[0]
    encoded = encode_items(
        handles=np.array([7, 8, 9, 10, 2**32 - 1], np.uint32),
        variants=np.array([DOUBLE, INT64, BOOLEAN, NULL, DOUBLE], np.uint8),
        values=np.array([1.5, -3.0, 1.0, np.nan, -0.0]),
        statuses=np.array(_STATUSES, np.uint32),
        source_seconds=np.array([SOURCE, SOURCE, 0.0, SOURCE, SOURCE]),
        server_ticks=np.full(5, server, dtype=np.int64),
    )
    ours = _decode(np.int32(5).tobytes() + encoded + np.int32(0).tobytes())
    theirs = _decode(struct_to_binary(ua.DataChangeNotification(MonitoredItems=_expected())))
    assert _comparable(ours) == _comparable(theirs)


def test_notification_puts_asyncuas_queued_items_first() -> None:
    queued = _expected()[:2]
    server = to_ticks(np.array([SERVER.timestamp()]))
    encoded = encode_items(
        handles=np.array([7], np.uint32),
        variants=np.array([DOUBLE], np.uint8),
        values=np.array([2.5]),
        statuses=np.array([StatusCodes.Good], np.uint32),
        source_seconds=np.array([SOURCE]),
        server_ticks=server,
    )
    wrapped = data_change_notification(queued, encoded, 1)
    binary = extensionobject_to_binary(wrapped)
    decoded = extensionobject_from_binary(Buffer(binary))
    assert isinstance(decoded, ua.DataChangeNotification)
    assert [n.ClientHandle for n in decoded.MonitoredItems] == [7, 8, 7]
    assert decoded.MonitoredItems[-1].Value.Value.Value == 2.5
    # Nothing encoded: the same bytes asyncua would write for its own notification.
    plain = extensionobject_to_binary(ua.DataChangeNotification(MonitoredItems=queued))
    assert extensionobject_to_binary(data_change_notification(queued, b"", 0)) == plain


@pytest.mark.parametrize(
    "seconds", [0.000001, 1.5, 1_700_000_000.123456, 1_700_000_000.0000005, 4_102_444_800.0]
)
def test_ticks_match_asyncuas_datetime_conversion(seconds: float) -> None:
    expected = ua.datetime_to_win_epoch(dt.datetime.fromtimestamp(seconds, dt.UTC))
    assert int(to_ticks(np.array([seconds]))[0]) == expected


def test_ticks_match_datetime_rounding_on_random_times() -> None:
    seconds = np.random.default_rng(7).uniform(0, 4e9, 5000)
    expected = [ua.datetime_to_win_epoch(dt.datetime.fromtimestamp(x, dt.UTC)) for x in seconds]
    assert to_ticks(seconds).tolist() == expected
