"""Every data type, byte order and word order, read from two real Modbus servers.

The register image is laid out with ``struct`` and explicit byte permutations
(ABCD / CDAB / BADC / DCBA), independently of the driver's numpy codec, and
served by pymodbus' server and by the minimal test server; the driver must
read the same values from both.
"""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from plantguard.model import Quality
from plantguard_modbus.codec import encode_value
from plantguard_modbus.models import ModbusAddress
from plantguard_modbus.testing import make_device, make_driver, pymodbus_server
from plantguard_modbus.testserver import MiniModbusServer, UnitImage

pytestmark = pytest.mark.integration

FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
SAMPLES: dict[str, float] = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -1_234_567_890,
    "uint32": 3_456_789_012,
    "int64": -(2**40) - 12345,
    "uint64": 2**52 + 987_654_321,
    "float32": -273.15,
    "float64": 6.02214076e23,
}
ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


def layout(value: float, fmt: str, byte_order: str, word_order: str) -> list[int]:
    """Registers of ``value`` as a device with these orders sends them."""
    data = struct.pack(fmt, int(value) if fmt[-1] not in "fd" else value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def exact(type_name: str, value: float) -> float:
    """The value after a round trip through the type (float32 rounding)."""
    fmt = FORMATS[type_name]
    raw = int(value) if fmt[-1] not in "fd" else value
    return float(struct.unpack(fmt, struct.pack(fmt, raw))[0])


class Image:
    """Build a register image and the points that read it, side by side."""

    def __init__(self) -> None:
        self.unit = UnitImage()
        self.points: list[dict[str, Any]] = []
        self.expected: dict[str, float] = {}
        self.next = 0

    def put(self, key: str, words: list[int], address: dict[str, Any], expected: float) -> None:
        self.unit.holding[self.next : self.next + len(words)] = words
        self.points.append({"id": key, "address": {"register": self.next, **address}})
        self.expected[f"dev.{key}"] = expected
        self.next += len(words) + 1  # a one-register hole between points: bridged


def build_image() -> Image:
    image = Image()
    for type_name, fmt in FORMATS.items():
        for byte_order, word_order in ORDERS:
            value = SAMPLES[type_name]
            image.put(
                f"{type_name}_{byte_order[0]}{word_order[0]}",
                layout(value, fmt, byte_order, word_order),
                {"type": type_name, "byte_order": byte_order, "word_order": word_order},
                exact(type_name, value),
            )
    # bit fields: single bits and a 4-bit field of a uint16, a field across the words of a uint32
    image.put("bit0", [0b1010_0000_1100_0101], {"bit": 0}, 1.0)
    image.put("bit1", [0b1010_0000_1100_0101], {"bit": 1}, 0.0)
    image.put("nibble", [0b1010_0000_1100_0101], {"bit": 4, "bits": 4}, 0b1100)
    image.put(
        "cross",
        layout(0x0003_C000, ">I", "big", "little"),
        {"type": "uint32", "bit": 14, "bits": 4, "word_order": "little"},
        0b1111,
    )
    # strings: high byte first, and byte-swapped; NUL padding is stripped
    text = b"PUMP-A7\0"
    image.put("name", [int.from_bytes(text[i : i + 2], "big") for i in range(0, 8, 2)],
              {"type": "string", "length": 8}, 7.0)  # fmt: skip
    image.put("name_swapped", [int.from_bytes(text[i : i + 2], "little") for i in range(0, 8, 2)],
              {"type": "string", "length": 8, "byte_order": "little"}, 7.0)  # fmt: skip
    # scale and offset: a raw int16 of 653 tenths of a degree above -40 °C
    image.put("temp", [653], {"type": "int16"}, 653 * 0.1 - 40)
    image.points[-1].update(scale=0.1, offset=-40)
    # 1837 × 0.1 is 183.70000000000002 in binary floating point: read as the 183.7 it means
    image.put("level", [1837], {"type": "uint16"}, 183.7)
    image.points[-1].update(scale=0.1)
    image.put("ratio", [3], {"type": "uint16"}, 0.75)
    image.points[-1].update(scale=0.25)
    # coils, discrete inputs and input registers
    image.unit.coils[3:8] = [1, 0, 1, 1, 0]
    image.unit.discrete[100:103] = [0, 1, 1]
    image.unit.input[10:12] = layout(123.5, ">f", "big", "big")
    for key, function, register, value in [
        ("coil3", "coil", 3, 1.0),
        ("coil4", "coil", 4, 0.0),
        ("coil6", "coil", 6, 1.0),
        ("di101", "discrete_input", 101, 1.0),
        ("di100", "discrete_input", 100, 0.0),
    ]:
        image.points.append({"id": key, "data_type": "bool",
                             "address": {"function": function, "register": register}})  # fmt: skip
        image.expected[f"dev.{key}"] = value
    image.points.append({"id": "flow", "address": {"function": "input", "register": 10}})
    image.expected["dev.flow"] = 123.5
    return image


IMAGE = build_image()


@pytest.fixture(params=["pymodbus", "mini"])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    if request.param == "pymodbus":
        async with pymodbus_server(IMAGE.unit, size=IMAGE.next + 8) as bound:
            yield bound
    else:
        server = MiniModbusServer()
        server.units[1] = IMAGE.unit
        async with server:
            yield server.port


async def test_every_type_and_order_reads_the_same_from_both_servers(port: int) -> None:
    device = make_device(IMAGE.points)
    driver = make_driver(device, host="127.0.0.1", port=port, timeout=1, retries=0)
    try:
        result = await driver.read(device.points)
    finally:
        await driver.close()
    ids = [p.id for p in device.points]
    assert result.quality.tolist() == [Quality.GOOD] * len(ids)
    got = dict(zip(ids, result.values.tolist(), strict=True))
    for point_id, expected in IMAGE.expected.items():
        assert got[point_id] == pytest.approx(expected, rel=1e-12, abs=1e-9), point_id
    assert driver.texts == {"dev.name": "PUMP-A7", "dev.name_swapped": "PUMP-A7"}
    # Scaled integer registers carry no binary-fraction artefacts (OPC UA shows them as read).
    assert (repr(got["dev.level"]), repr(got["dev.ratio"])) == ("183.7", "0.75")
    assert repr(got["dev.temp"]) == "25.3"


async def test_planner_reads_the_whole_image_in_one_request_per_object_type(port: int) -> None:
    device = make_device(IMAGE.points)
    driver = make_driver(device, host="127.0.0.1", port=port, timeout=1, retries=0)
    try:
        await driver.read(device.points)
    finally:
        await driver.close()
    plan = driver._plans[tuple(p.id for p in device.points)]
    functions = [b.function for b in plan.blocks]
    # ~150 holding registers need two requests; the bit and input tables one each
    assert sorted(functions) == ["coil", "discrete_input", "holding", "holding", "input"]
    assert all(b.count <= 125 for b in plan.blocks)


async def test_device_orders_apply_and_points_override_them() -> None:
    server = MiniModbusServer()
    unit = server.units[1]
    unit.holding[0:2] = layout(1.5, ">f", "little", "little")
    unit.holding[2:4] = layout(1.5, ">f", "big", "big")
    device = make_device(
        [
            {"id": "device_order", "address": {"register": 0}},
            {
                "id": "own_order",
                "address": {"register": 2, "byte_order": "big", "word_order": "big"},
            },
        ]
    )
    async with server:
        driver = make_driver(
            device, host="127.0.0.1", port=server.port, byte_order="little", word_order="little"
        )
        try:
            result = await driver.read(device.points)
        finally:
            await driver.close()
    assert result.values.tolist() == [1.5, 1.5]


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@pytest.mark.parametrize("type_name", sorted(FORMATS))
def test_encode_matches_the_device_layout(type_name: str, byte_order: str, word_order: str) -> None:
    address = ModbusAddress.model_validate({"register": 0, "type": type_name})
    value = SAMPLES[type_name]
    words = encode_value(address, value, byte_order=byte_order, word_order=word_order)
    assert words == layout(value, FORMATS[type_name], byte_order, word_order)


def test_encode_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="range"):
        encode_value(ModbusAddress(register=0, type="uint64"), -1.0)
    with pytest.raises(ValueError, match="nan"):
        encode_value(ModbusAddress(register=0, type="int64"), math.nan)
    with pytest.raises(ValueError, match="string"):
        encode_value(ModbusAddress(register=0, type="string", length=4), 1.0)
    assert np.isnan(struct.unpack(">f", struct.pack(">f", math.nan))[0])
