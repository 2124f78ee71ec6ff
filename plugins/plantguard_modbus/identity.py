"""Read Device Identification (function 43, MEI type 14) into named fields.

Why: a device's vendor, product code and revision are the facts a plant's
records and its security monitoring both need — a changed revision is a
firmware update (or a swapped device) nobody wrote down.  The objects are
requested with the *regular* category (objects 0–6) and, for devices that only
implement the mandatory *basic* category, again with basic; the stream access
is followed while the device says more objects follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OBJECT_NAMES", "parse_objects", "read_identity"]

#: Object ids of the basic and regular categories and the names the driver reports.
OBJECT_NAMES: dict[int, str] = {
    0x00: "vendor_name",
    0x01: "product_code",
    0x02: "revision",
    0x03: "vendor_url",
    0x04: "product_name",
    0x05: "model_name",
    0x06: "user_application_name",
}
_BASIC, _REGULAR = 0x01, 0x02
_MAX_ROUNDS = 8  # stream access continuations; a device looping forever is cut off


def parse_objects(information: Mapping[int, Any]) -> dict[str, str]:
    """Named, decoded, non-empty identification objects."""
    named: dict[str, str] = {}
    for object_id, raw in information.items():
        name = OBJECT_NAMES.get(object_id)
        if name is None:
            continue
        data = raw[0] if isinstance(raw, list) and raw else raw
        text = bytes(data).decode("utf-8", errors="replace") if not isinstance(data, str) else data
        text = text.strip("\0 ").strip()
        if text:
            named[name] = text
    return named


async def read_identity(client: Any, unit: int) -> dict[str, str] | None:
    """Identification objects of ``unit``; None if the device does not implement 43/14.

    :raises ModbusException: or OSError/TimeoutError when the transport fails.
    """
    for category in (_REGULAR, _BASIC):
        information: dict[int, Any] = {}
        object_id = 0
        for _ in range(_MAX_ROUNDS):
            response = await client.read_device_information(
                read_code=category, object_id=object_id, device_id=unit
            )
            if response.isError():
                break
            information.update(response.information)
            if not response.more_follows or response.next_object_id <= object_id:
                return parse_objects(information)
            object_id = response.next_object_id
        else:
            return parse_objects(information)
        if information:
            return parse_objects(information)
    return None
