"""Field faults are visible: a register the device refuses, or a float register holding
NaN/Inf, makes only the points concerned Bad — with the reason — and raises the device's
``<device>.fault`` alarm naming the request (function, start, count, exception) or the
point; it clears when the device's map is fixed or the point is removed.

Real parts: :class:`MiniModbusServer` with holes in its register map (exception 2 for
any request covering an unmapped address), the real driver, the real engine.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from plantguard.alarms import AlarmState
from plantguard.comm import DeviceFaultRule
from plantguard.model import Quality, Site
from plantguard.table import ValueTable
from plantguard.testing import RunningSite, wait_for
from plantguard_modbus.driver import ModbusDriver
from plantguard_modbus.planner import Span, plan_blocks, split_block
from plantguard_modbus.splits import PROBE_BUDGET
from plantguard_modbus.testing import make_device, make_driver
from plantguard_modbus.testserver import MiniModbusServer

pytestmark = pytest.mark.integration

GOOD, FAILED = Quality.GOOD, Quality.BAD_DEVICE_FAILURE


def words_of(value: float, fmt: str = ">f") -> list[int]:
    data = struct.pack(fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def uint16_points(registers: Sequence[int]) -> list[dict[str, Any]]:
    return [{"id": f"r{r}", "address": {"register": r, "type": "uint16"}} for r in registers]


@pytest.fixture
async def server() -> AsyncIterator[MiniModbusServer]:
    mini = MiniModbusServer()
    mini.units[1].holding[:200] = np.arange(1000, 1200, dtype=np.uint16)
    async with mini:
        yield mini


def driver_for(
    server: MiniModbusServer, points: Sequence[Mapping[str, Any]], **conn: Any
) -> tuple[Any, ModbusDriver]:
    device = make_device(points)
    options = {"host": "127.0.0.1", "port": server.port, "timeout": 0.5, "retries": 0}
    return device, make_driver(device, **{**options, **conn})


def requests(server: MiniModbusServer, function: int = 3) -> int:
    return server.requests[(1, function)]


# --- the planner's split ------------------------------------------------------------------


def test_split_keeps_overlapping_points_together_and_cuts_at_the_widest_gap() -> None:
    spans = [
        Span("holding", 0, 1),
        Span("holding", 1, 1),
        Span("holding", 2, 2),
        Span("holding", 3, 1),  # overlaps the previous one: never apart
        Span("holding", 9, 1),  # the widest gap (5 … 8) is in the middle half
        Span("holding", 10, 1),
    ]
    (block,) = plan_blocks(spans, max_gap=8)
    halves = split_block(block, spans)
    assert halves is not None
    left, right = halves
    assert (left.start, left.count, left.members) == (0, 4, (0, 1, 2, 3))
    assert (right.start, right.count, right.members, right.offsets) == (9, 2, (4, 5), (0, 1))
    (single,) = plan_blocks([Span("holding", 4, 2), Span("holding", 5, 1)])
    assert split_block(single, [Span("holding", 4, 2), Span("holding", 5, 1)]) is None


# --- the driver ---------------------------------------------------------------------------


async def test_hole_in_a_block_fails_only_its_point_and_names_the_request(
    server: MiniModbusServer,
) -> None:
    server.units[1].unmap("holding", 4)
    device, driver = driver_for(server, uint16_points(range(10)))
    try:
        result = await driver.read(device.points)
        expected = [GOOD] * 4 + [FAILED] + [GOOD] * 5
        assert result.quality.tolist() == expected
        good = [r for r in range(10) if r != 4]
        assert result.values[good].tolist() == [1000.0 + r for r in good]
        assert np.isnan(result.values[4])
        assert driver.faults == {
            "dev.r4": "exception 2 (illegal_address) to reading unit 1 holding registers 4–4 "
            "(function 3, start 4, count 1)"
        }

        # Later polls read the split plan directly: the two readable parts, not the hole.
        before = requests(server)
        again = await driver.read(device.points)
        assert again.quality.tolist() == expected
        assert requests(server) - before == 2
    finally:
        await driver.close()


async def test_hole_in_a_bridged_gap_costs_no_point(server: MiniModbusServer) -> None:
    server.units[1].unmap("holding", 3, 3)  # registers 3 … 5, between the points
    device, driver = driver_for(server, uint16_points([0, 1, 2, 6, 7]))
    try:
        assert len(driver._plan_for(device.points).blocks) == 1  # the planner bridged 3 … 5
        result = await driver.read(device.points)
        assert result.quality.tolist() == [GOOD] * 5
        assert result.values.tolist() == [1000.0, 1001.0, 1002.0, 1006.0, 1007.0]
        assert driver.faults == {}
        before = requests(server)
        await driver.read(device.points)
        assert requests(server) - before == 2
    finally:
        await driver.close()


async def test_splitting_a_full_block_is_bounded_per_poll(server: MiniModbusServer) -> None:
    holes = [17, 18, 63, 90]
    for register in holes:
        server.units[1].unmap("holding", register)
    device, driver = driver_for(server, uint16_points(range(125)))
    try:
        first = requests(server)
        quality = (await driver.read(device.points)).quality
        assert requests(server) - first == 1 + PROBE_BUDGET, "the block, then bounded probing"
        assert (quality[holes] == FAILED).all(), "refused points are never Good"
        for _ in range(10):  # until every refused register is isolated
            before = requests(server)
            quality = (await driver.read(device.points)).quality
            # the readable pieces found so far, plus at most PROBE_BUDGET probes
            assert requests(server) - before < 2 * PROBE_BUDGET, "never a request per point"
            if (quality == GOOD).sum() == 125 - len(holes):
                break
        assert np.flatnonzero(quality != GOOD).tolist() == holes
        assert sorted(driver.faults) == [f"dev.r{r}" for r in holes]
        assert "start 17, count 1" in driver.faults["dev.r17"]
        before = requests(server)
        await driver.read(device.points)
        assert requests(server) - before == 4, "steady state: the four readable runs only"
    finally:
        await driver.close()


async def test_refused_registers_are_tried_again_and_recover(server: MiniModbusServer) -> None:
    image = server.units[1]
    image.unmap("holding", 3)
    image.unmap("holding", 6)
    # retry_refused tiny: every poll tries the refused registers again.
    device, driver = driver_for(server, uint16_points(range(8)), retry_refused=1e-6)
    try:
        quality = (await driver.read(device.points)).quality
        assert np.flatnonzero(quality != GOOD).tolist() == [3, 6]

        image.remap("holding", 6)  # one hole fixed: the block as a whole is still refused
        quality = (await driver.read(device.points)).quality
        assert np.flatnonzero(quality != GOOD).tolist() == [3]
        assert list(driver.faults) == ["dev.r3"]

        image.remap("holding")  # the device's map is complete again
        result = await driver.read(device.points)
        assert result.quality.tolist() == [GOOD] * 8
        assert result.values.tolist() == [1000.0 + r for r in range(8)]
        assert driver.faults == {}
        before = requests(server)
        await driver.read(device.points)
        assert requests(server) - before == 1, "back to one block request"
    finally:
        await driver.close()


async def test_other_exceptions_are_not_split(server: MiniModbusServer) -> None:
    server.faults[(1, 3, 2)] = 6  # device busy: says nothing about addresses
    device, driver = driver_for(server, uint16_points(range(5)))
    try:
        before = requests(server)
        result = await driver.read(device.points)
        assert requests(server) - before == 1
        assert result.quality.tolist() == [FAILED] * 5
        assert set(driver.faults.values()) == {
            "exception 6 (device_busy) to reading unit 1 holding registers 0–4 "
            "(function 3, start 0, count 5)"
        }
        del server.faults[(1, 3, 2)]
        assert (await driver.read(device.points)).quality.tolist() == [GOOD] * 5
        assert driver.faults == {}
    finally:
        await driver.close()


async def test_coil_hole_is_split_like_registers(server: MiniModbusServer) -> None:
    image = server.units[1]
    image.coils[:6] = [1, 0, 1, 1, 0, 1]
    image.unmap("coils", 2)
    points = [
        {"id": f"c{i}", "data_type": "bool", "address": {"function": "coil", "register": i}}
        for i in range(6)
    ]
    device, driver = driver_for(server, points)
    try:
        result = await driver.read(device.points)
        assert result.quality.tolist() == [GOOD, GOOD, FAILED, GOOD, GOOD, GOOD]
        assert result.values[[0, 1, 3, 4, 5]].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
        assert "function 1, start 2, count 1" in driver.faults["dev.c2"]
    finally:
        await driver.close()


@pytest.mark.parametrize(
    ("value", "fmt", "kind", "raw"),
    [
        (float("nan"), ">f", "float32", "7FC0 0000"),
        (float("inf"), ">f", "float32", "7F80 0000"),
        (float("-inf"), ">d", "float64", "FFF0 0000 0000 0000"),
    ],
)
async def test_undecodable_value_is_bad_with_the_reason(
    server: MiniModbusServer, value: float, fmt: str, kind: str, raw: str
) -> None:
    registers = words_of(value, fmt)
    server.units[1].holding[10 : 10 + len(registers)] = registers
    server.units[1].holding[20:22] = words_of(1.5)
    points = [
        {"id": "bad", "address": {"register": 10, "type": kind}},
        {"id": "fine", "address": {"register": 20, "type": "float32"}},
    ]
    device, driver = driver_for(server, points)
    try:
        result = await driver.read(device.points)
        assert result.quality.tolist() == [Quality.BAD, GOOD]
        assert result.values[1] == 1.5
        word = "NaN" if np.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        assert driver.faults == {
            "dev.bad": f"{kind} at unit 1 holding register 10 (registers {raw}) holds {word}, "
            "not a number"
        }
        server.units[1].holding[10 : 10 + len(registers)] = words_of(2.5, fmt)
        fixed = await driver.read(device.points)
        assert fixed.quality.tolist() == [GOOD, GOOD]
        assert fixed.values.tolist() == [2.5, 1.5]
        assert driver.faults == {}
    finally:
        await driver.close()


# --- the rule over the value table ---------------------------------------------------------

SITE = Site.model_validate(
    {
        "id": "s",
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": "p1",
                        "name": "Pump 1",
                        "driver": "x",
                        "points": [{"id": "a"}, {"id": "b"}],
                    },
                    {"id": "t1", "driver": "x", "points": [{"id": "c"}]},
                ],
            }
        ],
    }
)


class _Reporter:
    def __init__(self) -> None:
        self.faults: dict[str, str] = {}


def test_rule_raises_names_updates_holds_through_comm_loss_and_clears() -> None:
    table = ValueTable(SITE.points)
    rule = DeviceFaultRule(SITE, table)
    assert [(d.id, d.kind, d.rule) for d in rule.alarms()] == [
        ("p1.fault", "system", "fault"),
        ("t1.fault", "system", "fault"),
    ]
    reporter = _Reporter()
    rule.watch({"p1": reporter})
    assert rule.evaluate(table, 0.0) == [], "nothing read yet: nothing known"

    table.quality[:] = GOOD
    assert sorted((f.alarm_id, f.active) for f in rule.evaluate(table, 1.0)) == [
        ("p1.fault", False),
        ("t1.fault", False),
    ]
    reporter.faults = {"p1.b": "exception 2 (illegal_address) to reading … (function 3)"}
    table.quality[table.index["p1.b"]] = FAILED
    (raised,) = rule.evaluate(table, 2.0)
    assert (raised.alarm_id, raised.active, raised.condition) == (
        "p1.fault",
        True,
        "DEVICE_FAULT(1)",
    )
    assert raised.message == (
        "Device fault on Pump 1: p1.b: exception 2 (illegal_address) to reading … (function 3)"
    )
    assert rule.evaluate(table, 3.0) == [], "findings only on change"

    table.quality[table.index["p1.a"]] = Quality.BAD  # no reason from the driver
    (more,) = rule.evaluate(table, 4.0)
    assert (more.active, more.condition) == (True, "DEVICE_FAULT(2)")
    assert "p1.a: bad value" in more.message
    assert "p1.b: exception 2" in more.message

    table.quality[[table.index["p1.a"], table.index["p1.b"]]] = Quality.BAD_COMMUNICATION_ERROR
    assert rule.evaluate(table, 5.0) == [], "a communication loss neither clears nor re-raises"

    table.quality[[table.index["p1.a"], table.index["p1.b"]]] = GOOD
    (cleared,) = rule.evaluate(table, 6.0)
    assert (cleared.alarm_id, cleared.active) == ("p1.fault", False)
    assert cleared.message == "Device fault on Pump 1 cleared"


# --- through the engine -------------------------------------------------------------------


def _site(port: int, *, with_hole_point: bool = True, nan_point: bool = False) -> str:
    hole = "\n          - {id: r5, address: {register: 5, type: uint16}}" if with_hole_point else ""
    nan = "\n          - {id: flow, address: {register: 40, type: float32}}" if nan_point else ""
    return f"""
id: t
poll_groups:
  default: {{interval: 0.05}}
scan_interval: 0.05
store: {{history: {{flush_interval: 0.1}}}}
areas:
  - id: a
    devices:
      - id: plc
        name: PLC 7
        driver: modbus
        connection: {{host: 127.0.0.1, port: {port}, timeout: 0.5, retries: 0,
                      retry_refused: 0.05}}
        points:
          - {{id: r3, address: {{register: 3, type: uint16}}}}
          - {{id: r4, address: {{register: 4, type: uint16}}}}{hole}
          - {{id: r6, address: {{register: 6, type: uint16}}}}
          - {{id: r7, address: {{register: 7, type: uint16}}}}{nan}
"""


async def test_engine_raises_fault_alarm_for_a_hole_and_clears_when_fixed(
    running_site: RunningSite, server: MiniModbusServer
) -> None:
    server.units[1].unmap("holding", 5)
    async with running_site(_site(server.port)) as engine:
        table, alarms = engine.table, engine.alarms
        slot = {p: table.index[f"plc.{p}"] for p in ("r3", "r4", "r5", "r6", "r7")}
        await wait_for(lambda: alarms.status["plc.fault"].state is AlarmState.UNACK)
        status = alarms.status["plc.fault"]
        assert alarms.definitions["plc.fault"].kind == "system"
        assert status.message == (
            "Device fault on PLC 7: plc.r5: exception 2 (illegal_address) to reading "
            "unit 1 holding registers 5–5 (function 3, start 5, count 1)"
        )
        around = [slot["r3"], slot["r4"], slot["r6"], slot["r7"]]
        assert (table.quality[around] == GOOD).all()
        assert table.values[around].tolist() == [1003.0, 1004.0, 1006.0, 1007.0]
        assert table.quality[slot["r5"]] == FAILED
        assert alarms.status["plc.comm"].state is AlarmState.NORMAL

        server.units[1].remap("holding")  # the device's map is fixed
        await wait_for(lambda: alarms.status["plc.fault"].state is AlarmState.RTN_UNACK)
        assert alarms.status["plc.fault"].message == "Device fault on PLC 7 cleared"
        await wait_for(lambda: table.quality[slot["r5"]] == GOOD)
        assert table.values[slot["r5"]] == 1005.0
        store = engine.store
    journal = [(r.action, r.condition) for r in store.journal("plc.fault")]
    assert journal[0] == ("activate", "DEVICE_FAULT(1)")
    assert journal[-1][0] == "clear"


async def test_engine_fault_alarm_clears_when_the_point_is_removed(
    running_site: RunningSite, server: MiniModbusServer, tmp_path: Any
) -> None:
    server.units[1].unmap("holding", 5)
    db = str(tmp_path / "faults.db")
    async with running_site(_site(server.port), db=db) as engine:
        await wait_for(lambda: engine.alarms.status["plc.fault"].state is AlarmState.UNACK)
    # The site file is corrected (the point that does not exist is removed) and the
    # gateway restarted: the restored alarm clears at the first scan.
    async with running_site(_site(server.port, with_hole_point=False), db=db) as engine:
        await wait_for(lambda: engine.alarms.status["plc.fault"].state is AlarmState.RTN_UNACK)
        assert not engine.alarms.status["plc.fault"].process_active


async def test_engine_raises_fault_alarm_naming_a_nan_point(
    running_site: RunningSite, server: MiniModbusServer
) -> None:
    server.units[1].holding[40:42] = words_of(float("nan"))
    async with running_site(_site(server.port, nan_point=True)) as engine:
        table, alarms = engine.table, engine.alarms
        await wait_for(lambda: alarms.status["plc.fault"].state is AlarmState.UNACK)
        assert alarms.status["plc.fault"].message == (
            "Device fault on PLC 7: plc.flow: float32 at unit 1 holding register 40 "
            "(registers 7FC0 0000) holds NaN, not a number"
        )
        assert table.quality[table.index["plc.flow"]] == Quality.BAD
        assert table.quality[table.index["plc.r5"]] == GOOD

        server.units[1].holding[40:42] = words_of(12.5)
        await wait_for(lambda: alarms.status["plc.fault"].state is AlarmState.RTN_UNACK)
        assert table.values[table.index["plc.flow"]] == 12.5
