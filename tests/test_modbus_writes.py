"""Writes: coils, single and multiple registers, 64-bit types, bit fields (read-modify-
write), and the refusals that name the device, the point and the address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from plantguard.drivers import DriverError
from plantguard.model import Point
from plantguard_modbus.driver import ModbusDriver
from plantguard_modbus.testing import make_device, make_driver
from plantguard_modbus.testserver import MiniModbusServer

pytestmark = pytest.mark.integration

RW = "read_write"
POINTS: list[dict[str, Any]] = [
    {"id": "valve", "access": RW, "data_type": "bool",
     "address": {"function": "coil", "register": 4}},
    {"id": "setpoint", "access": RW, "scale": 0.1, "address": {"register": 0, "type": "int16"}},
    {"id": "total", "access": RW, "address": {"register": 1, "type": "float64",
                                                "word_order": "little"}},
    {"id": "mode", "access": RW, "address": {"register": 10, "bit": 4, "bits": 3}},
    {"id": "flag", "access": RW, "address": {"register": 10, "bit": 15}},
    {"id": "tag", "access": RW, "address": {"register": 20, "type": "string", "length": 4}},
    {"id": "flow", "access": RW, "address": {"function": "input", "register": 0}},
    {"id": "fixed", "address": {"register": 30, "type": "uint16"}},
]  # fmt: skip


@pytest.fixture
async def setup() -> AsyncIterator[tuple[MiniModbusServer, ModbusDriver, dict[str, Point]]]:
    server = MiniModbusServer()
    server.units[1].holding[10] = 0b0000_0000_1000_1111
    async with server:
        device = make_device(POINTS)
        driver = make_driver(device, host="127.0.0.1", port=server.port, timeout=0.5)
        yield server, driver, {p.id.split(".")[1]: p for p in device.points}
        await driver.close()


async def test_writes_use_the_right_function_and_read_back(
    setup: tuple[MiniModbusServer, ModbusDriver, dict[str, Point]],
) -> None:
    server, driver, points = setup
    await driver.write(points["valve"], 1.0)
    await driver.write(points["setpoint"], -12.5)
    await driver.write(points["total"], 1234567.125)
    await driver.write(points["mode"], 5.0)
    await driver.write(points["flag"], 1.0)
    assert server.units[1].coils[4] == 1
    assert server.units[1].holding[0] == (-125) & 0xFFFF
    # the bit field kept the other bits of its register
    assert server.units[1].holding[10] == 0b1000_0000_1101_1111
    assert server.requests[(1, 5)] == 1
    assert server.requests[(1, 6)] == 3  # setpoint, and the two bit fields' registers
    assert server.requests[(1, 16)] == 1  # the float64
    result = await driver.read(list(points.values())[:5])
    assert result.values.tolist() == [1.0, -12.5, 1234567.125, 5.0, 1.0]


async def test_multiple_write_functions_when_single_writes_are_off() -> None:
    server = MiniModbusServer()
    async with server:
        device = make_device(POINTS[:2])
        driver = make_driver(device, host="127.0.0.1", port=server.port, single_writes=False)
        await driver.write(device.points[0], 1.0)
        await driver.write(device.points[1], 3.0)
        await driver.close()
    assert server.requests == {(1, 15): 1, (1, 16): 1}
    assert server.units[1].holding[0] == 30


async def test_refusals_name_device_point_and_address(
    setup: tuple[MiniModbusServer, ModbusDriver, dict[str, Point]],
) -> None:
    server, driver, points = setup
    with pytest.raises(DriverError, match=r"'dev.flow' of 'dev' at input 0 cannot be written"):
        await driver.write(points["flow"], 1.0)
    with pytest.raises(DriverError, match=r"'dev.fixed' of 'dev' is read-only"):
        await driver.write(points["fixed"], 1.0)
    with pytest.raises(DriverError, match=r"string at holding 20"):
        await driver.write(points["tag"], 1.0)
    with pytest.raises(DriverError, match=r"0 or 1 only"):
        await driver.write(points["valve"], 2.0)
    with pytest.raises(DriverError, match=r"does not fit a 3-bit field"):
        await driver.write(points["mode"], 8.0)
    with pytest.raises(DriverError, match=r"outside the int16 range"):
        await driver.write(points["setpoint"], 5000.0)
    server.faults[(1, 16, 1)] = 4
    with pytest.raises(DriverError, match=r"refused the write of 'dev.total' at holding 1 "
                                          r"\(exception 4 \(device_failure\)\)"):  # fmt: skip
        await driver.write(points["total"], 1.0)
    assert driver.connected
