"""Failures stay where they happen: exception responses and malformed frames affect only
the points they cover, a silent device is declared lost, a dead device never stalls the
others, and a device that disappears and comes back raises and clears its
communication-loss alarm."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest

from plantguard.alarms import AlarmState
from plantguard.drivers import DriverError
from plantguard.model import Quality
from plantguard.testing import RunningSite, free_tcp_port, wait_for
from plantguard_modbus.testing import make_device, make_driver, pymodbus_server
from plantguard_modbus.testserver import MiniModbusServer, UnitImage

pytestmark = pytest.mark.integration

# Three holding blocks (a gap of 20 > max_gap 8 splits them) and one coil block.
POINTS = [
    {"id": "a", "address": {"register": 0, "type": "uint16"}},
    {"id": "b", "address": {"register": 1, "type": "uint16"}},
    {"id": "c", "address": {"register": 30, "type": "uint16"}},
    {"id": "d", "address": {"register": 60, "type": "uint16"}},
    {"id": "k", "data_type": "bool", "address": {"function": "coil", "register": 5}},
]
GOOD = Quality.GOOD


@pytest.fixture
async def server() -> AsyncIterator[MiniModbusServer]:
    mini = MiniModbusServer()
    image = mini.units[1]
    image.holding[[0, 1, 30, 60]] = [10, 11, 30, 60]
    image.coils[5] = 1
    async with mini:
        yield mini


def driver_for(server: MiniModbusServer, **conn: object):  # type: ignore[no-untyped-def]
    device = make_device(POINTS)
    options = {"host": "127.0.0.1", "port": server.port, "timeout": 0.3, "retries": 0}
    return device, make_driver(device, **{**options, **conn})


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (2, "illegal_address"),
        (4, "device_failure"),
        (6, "device_busy"),
        (11, "gateway_no_response"),
    ],
)
async def test_exception_response_fails_only_its_block(
    server: MiniModbusServer, code: int, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults[(1, 3, 30)] = code
    device, driver = driver_for(server)
    with caplog.at_level(logging.WARNING, logger="plantguard_modbus"):
        result = await driver.read(device.points)
    await driver.close()
    bad = Quality.BAD_DEVICE_FAILURE
    assert result.quality.tolist() == [GOOD, GOOD, bad, GOOD, GOOD]
    assert result.values.tolist()[:2] == [10.0, 11.0]
    assert math.isnan(result.values[2])
    assert result.values.tolist()[3:] == [60.0, 1.0]
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"exception {code} ({name})" in line
    assert "holding registers 30–30" in line
    assert "dev.c" in line
    assert "dev.a" not in line


async def test_exception_from_pymodbus_server_for_an_address_it_does_not_have() -> None:
    image = UnitImage()
    image.holding[:2] = [7, 8]
    async with pymodbus_server(image, size=16) as port:
        device = make_device(
            [
                {"id": "ok", "address": {"register": 1, "type": "uint16"}},
                {"id": "beyond", "address": {"register": 40, "type": "uint16"}},
            ]
        )
        driver = make_driver(device, host="127.0.0.1", port=port, timeout=1, retries=0)
        result = await driver.read(device.points)
        assert driver.connected
        await driver.close()
    assert result.quality.tolist() == [GOOD, Quality.BAD_DEVICE_FAILURE]
    assert result.values[0] == 8.0


async def test_short_response_fails_only_its_block_and_keeps_the_connection(
    server: MiniModbusServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.malformed[(1, 3, 0)] = "short"
    device, driver = driver_for(server)
    with caplog.at_level(logging.WARNING, logger="plantguard_modbus"):
        result = await driver.read(device.points)
    comm = Quality.BAD_COMMUNICATION_ERROR
    assert result.quality.tolist() == [comm, comm, GOOD, GOOD, GOOD]
    assert driver.connected
    assert any("malformed" in r.getMessage() and "dev.a, dev.b" in r.getMessage()
               for r in caplog.records)  # fmt: skip

    del server.malformed[(1, 3, 0)]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="plantguard_modbus"):
        again = await driver.read(device.points)
    await driver.close()
    assert again.quality.tolist() == [GOOD] * 5
    assert any("readable again" in r.getMessage() for r in caplog.records)


async def test_garbage_frame_fails_only_its_block(server: MiniModbusServer) -> None:
    server.malformed[(1, 3, 60)] = "garbage"
    device, driver = driver_for(server)
    result = await driver.read(device.points)
    comm = Quality.BAD_COMMUNICATION_ERROR
    assert result.quality.tolist() == [GOOD, GOOD, GOOD, comm, GOOD]
    assert driver.connected
    # the next poll of the good blocks is not confused by the garbage
    del server.malformed[(1, 3, 60)]
    assert (await driver.read(device.points)).quality.tolist() == [GOOD] * 5
    await driver.close()


async def test_silent_device_is_lost_after_two_unanswered_requests(
    server: MiniModbusServer,
) -> None:
    server.silent.add(1)
    device, driver = driver_for(server)
    with pytest.raises(DriverError, match=r"'dev'.*lost reading unit 1 holding registers 30–30"):
        await driver.read(device.points)
    assert not driver.connected
    assert sum(server.requests.values()) == 2, "gives up after the second silent block"
    await driver.close()


async def test_unknown_unit_behind_a_gateway_is_a_device_failure(server: MiniModbusServer) -> None:
    device, driver = driver_for(server, unit=9)
    result = await driver.read(device.points)
    await driver.close()
    assert result.quality.tolist() == [Quality.BAD_DEVICE_FAILURE] * 5


async def test_points_of_several_units_are_planned_per_unit(server: MiniModbusServer) -> None:
    server.units[2] = UnitImage()
    server.units[2].holding[0] = 222
    device = make_device(
        [
            {"id": "u1", "address": {"register": 0, "type": "uint16"}},
            {"id": "u2", "address": {"register": 0, "type": "uint16", "unit": 2}},
        ]
    )
    driver = make_driver(device, host="127.0.0.1", port=server.port)
    result = await driver.read(device.points)
    await driver.close()
    assert result.values.tolist() == [10.0, 222.0]
    assert server.requests == {(1, 3): 1, (2, 3): 1}


# --- through the engine -----------------------------------------------------------------


def _site(good_port: int, dead_port: int, silent_port: int) -> str:
    def device(name: str, port: int) -> str:
        return f"""
      - id: {name}
        driver: modbus
        connection: {{host: 127.0.0.1, port: {port}, timeout: 0.2, retries: 0}}
        points:
          - {{id: a, address: {{register: 0, type: uint16}}}}
          - {{id: b, address: {{register: 1, type: uint16}}}}
          - {{id: fast, poll_group: fast, address: {{register: 40, type: uint16}}}}"""

    return f"""
id: t
poll_groups:
  default: {{interval: 0.1}}
  fast: {{interval: 0.05}}
scan_interval: 0.05
store: {{history: {{flush_interval: 0.1}}}}
areas:
  - id: a
    devices:{device("good", good_port)}{device("dead", dead_port)}{device("mute", silent_port)}
"""


async def test_device_disappears_and_comes_back_with_comm_alarm(
    running_site: RunningSite,
) -> None:
    good, silent = MiniModbusServer(), MiniModbusServer()
    good.units[1].holding[[0, 1, 40]] = [1, 2, 3]
    silent.silent.add(1)
    dead_port = free_tcp_port()
    await good.start()
    await silent.start()
    try:
        async with running_site(_site(good.port, dead_port, silent.port)) as engine:
            table, alarms = engine.table, engine.alarms
            idx = {pid: table.index[pid] for pid in table.point_ids}
            good_slots = [idx["good.a"], idx["good.b"], idx["good.fast"]]
            await wait_for(lambda: bool((table.quality[good_slots] == GOOD).all()))
            await wait_for(lambda: alarms.status["dead.comm"].state is AlarmState.UNACK)
            await wait_for(lambda: alarms.status["mute.comm"].state is AlarmState.UNACK)
            assert alarms.status["good.comm"].state is AlarmState.NORMAL
            assert alarms.definitions["dead.comm"].kind == "system"
            assert set(table.quality[[idx["dead.a"], idx["dead.fast"]]].tolist()) <= {
                Quality.BAD_NOT_CONNECTED,
                Quality.BAD_COMMUNICATION_ERROR,
            }
            # the dead and the silent device do not stall the live one
            seen = table.source_time[idx["good.fast"]]
            await wait_for(lambda: table.source_time[idx["good.fast"]] > seen + 0.2)

            # per poll group: the fast point is read by its own request, not with a and b
            plans = engine.drivers["good"]._plans  # type: ignore[attr-defined]
            assert sorted((b.start, b.count) for p in plans.values() for b in p.blocks) == [
                (0, 2),
                (40, 1),
            ]

            # the live device disappears …
            port = good.port
            await good.stop()
            await wait_for(lambda: alarms.status["good.comm"].state is AlarmState.UNACK)
            assert np.isin(
                table.quality[good_slots],
                [Quality.BAD_COMMUNICATION_ERROR, Quality.BAD_NOT_CONNECTED],
            ).all()
            # … and comes back on the same port: values Good, alarm cleared
            back = MiniModbusServer(port=port)
            back.units[1].holding[[0, 1, 40]] = [4, 5, 6]
            await back.start()
            try:
                await wait_for(
                    lambda: alarms.status["good.comm"].state is AlarmState.RTN_UNACK, timeout=20
                )
                await wait_for(lambda: table.values[idx["good.a"]] == 4.0)
                assert (table.quality[good_slots] == GOOD).all()
            finally:
                await back.stop()
    finally:
        await good.stop()
        await silent.stop()
