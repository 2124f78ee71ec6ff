"""What one poll put on the wire, for ``plantguard probe`` (:meth:`ModbusDriver.probe`).

Why a module of its own: a probe reads exactly like a poll (the same plan, the
same splitting of refused blocks) and then says more — each point's registers
or bits as received, and each request with the device's answer — so that a
commissioning engineer sees ``FFFF`` where the table shows 65535, and which
request the device answered with which exception code.  None of this is needed
on the hot path, so it is built here, per point in Python, once per probe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from plantguard.plugin import RawPoint, RawRequest

from .codec import decode_text
from .models import ModbusAddress, ModbusConnection
from .planner import Block
from .readplan import ReadPlan
from .splits import Answer, Failure

__all__ = ["raw_points", "raw_requests"]

_OBJECT = {"coil": "coil", "discrete_input": "discrete input"}


def address_text(address: ModbusAddress, device_unit: int) -> str:
    """``holding 40``, ``holding 40 bit 3``, ``coil 7``, ``unit 2 input 10``."""
    text = f"{_OBJECT.get(address.function, address.function)} {address.register}"
    if address.bit is not None:
        last = address.bit + address.bits - 1
        text += f" bit {address.bit}" if address.bits == 1 else f" bits {address.bit}–{last}"
    if address.unit is not None and address.unit != device_unit:
        text = f"unit {address.unit} {text}"
    return text


def _type_of(address: ModbusAddress) -> str:
    """The encoding ``plantguard probe`` judges: a bit field is a ``bool`` or ``bits``."""
    if address.bit is not None:
        return "bool" if address.bits == 1 else "bits"
    return address.type


def raw_points(
    plan: ReadPlan,
    raw: npt.NDArray[np.float64],
    *,
    addresses: Mapping[str, ModbusAddress],
    connection: ModbusConnection,
    words: npt.NDArray[np.uint16],
    bits: npt.NDArray[np.uint8],
    failures: Sequence[Failure],
) -> dict[str, RawPoint]:
    """Each point's registers or bits as received (empty when its request failed);
    ``raw`` holds the decoded numbers before scaling, by position in ``plan``."""
    read = plan.point_block >= 0
    for failure in failures:
        read[failure.positions] = False
    points: dict[str, RawPoint] = {}
    for position, point_id in enumerate(plan.point_ids):
        address = addresses.get(point_id)
        if address is None:
            continue
        where = address_text(address, connection.unit)
        kind = _type_of(address)
        if not read[position]:
            points[point_id] = RawPoint(where, kind)
            continue
        first = int(plan.first[position])
        value = float(raw[position])
        if not address.is_register:
            points[point_id] = RawPoint(where, kind, bits=(int(bits[first]),), raw=value)
            continue
        registers = words[first : first + address.width]
        text = None
        if address.type == "string":
            swap = (address.byte_order or connection.byte_order) == "little"
            text = decode_text(registers, swap=swap, length=address.length or 0)
        got = tuple(int(w) for w in registers)
        points[point_id] = RawPoint(where, kind, words=got, raw=value, text=text)
    return points


def raw_requests(
    plan: ReadPlan, log: Sequence[tuple[Block, Answer]], describe: Callable[[Block], str]
) -> list[RawRequest]:
    """Each request of the poll, the points it read and the device's answer."""
    requests = []
    for block, answer in log:
        positions = plan.positions_of(block).tolist()
        points = tuple(plan.point_ids[i] for i in positions)
        if answer.data is not None:
            requests.append(RawRequest(describe(block), points))
        else:
            requests.append(RawRequest(describe(block), points, answer.reason, answer.code))
    return requests
