"""The Modbus driver against the simulated plant's real Modbus TCP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import numpy as np
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from plantguard.drivers import DriverError, DriverType
from plantguard.errors import PortInUse
from plantguard.model import Device, Point, Quality, Site
from plantguard.services import EngineView, ServiceType
from plantguard_modbus import plugin as modbus_plugin
from plantguard_modbus.driver import ModbusDriver, encode_value
from plantguard_modbus.models import ModbusAddress, ModbusConnection
from plantguard_modbus.plugin import ModbusDriverType
from plantguard_sim import demo_site_path
from plantguard_sim import plugin as sim_plugin
from plantguard_sim.plant import PlantModel
from plantguard_sim.plugin import SimOptions, SimService, SimServiceType
from plantguard_sim.server import SimServer, encode_float32

pytestmark = pytest.mark.integration

PLANT_TIME = 3.0  # frozen plant time: before the cycle's first event
NAN_REGISTERS = encode_float32(np.array([np.nan]))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plant() -> PlantModel:
    return PlantModel(seed=1, scenario="cycle")


@pytest.fixture
async def sim(plant: PlantModel) -> AsyncIterator[SimServer]:
    server = SimServer(plant, host="127.0.0.1", port=0, clock=Clock(PLANT_TIME))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def demo_site(port: int) -> Site:
    data = yaml.safe_load(demo_site_path().read_text(encoding="utf-8"))
    for area in data["areas"]:
        for device in area["devices"]:
            device["connection"]["port"] = port
    return Site.model_validate(data)


def device_of(site: Site, device_id: str) -> Device:
    return next(d for d in site.devices if d.id == device_id)


def make_driver(device: Device, *, validate: bool = True, **connection: Any) -> ModbusDriver:
    driver_type = ModbusDriverType()
    conn = driver_type.connection_model.model_validate({**device.connection, **connection})
    addresses = {p.id: driver_type.address_model.model_validate(p.address) for p in device.points}
    if validate:
        driver_type.validate_device(conn, addresses)
    return driver_type.create(device, conn, addresses)


def with_points(device: Device, *points: Point) -> Device:
    return device.model_copy(update={"points": points})


@pytest.fixture
async def drivers(sim: SimServer) -> AsyncIterator[Callable[..., ModbusDriver]]:
    """Factory of drivers for the demo devices, closed at the end of the test."""
    made: list[ModbusDriver] = []
    site = demo_site(sim.port)

    def factory(
        device_id: str, device: Device | None = None, *, validate: bool = True, **conn: Any
    ) -> ModbusDriver:
        conn.setdefault("timeout", 0.5)
        conn.setdefault("retries", 0)
        driver = make_driver(device or device_of(site, device_id), validate=validate, **conn)
        made.append(driver)
        return driver

    yield factory
    for driver in made:
        await driver.close()


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[AsyncModbusTcpClient]:
    plain = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
    assert await plain.connect()
    yield plain
    plain.close()


# --- configuration ----------------------------------------------------------------------


def test_demo_site_validates_with_plugin_models() -> None:
    site = demo_site(5020)
    assert site.id == "demo"
    assert {d.id: d.connection["unit"] for d in site.devices} == {"pump1": 1, "tank1": 2, "gas1": 3}
    level = next(p for p in site.points if p.id == "tank1.level")
    assert level.rules["limit"]["hh"] == 90
    assert site.services["sim"]["port"] == 5020
    SimOptions.model_validate(site.services["sim"])
    for device in site.devices:
        assert device.info.serial_number
        assert device.info.location.position
        make_driver(device)  # validates connection and every address


def test_connection_and_address_models_forbid_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        ModbusConnection.model_validate({"host": "127.0.0.1", "slave": 1})
    with pytest.raises(ValueError, match="register"):
        ModbusAddress.model_validate({"register": 70000})
    with pytest.raises(ValueError, match="int128"):
        ModbusAddress.model_validate({"register": 0, "type": "int128"})
    assert ModbusConnection(host="h").max_registers_per_request == 125


def test_overlapping_addresses_are_rejected() -> None:
    addresses = {
        "d.a": ModbusAddress(register=0, type="float32"),
        "d.b": ModbusAddress(register=1, type="uint16"),
    }
    with pytest.raises(ValueError, match="register 1"):
        ModbusDriverType().validate_device(ModbusConnection(host="h"), addresses)
    with pytest.raises(ValueError, match="past register 65535"):
        ModbusDriverType().validate_device(
            ModbusConnection(host="h"), {"d.c": ModbusAddress(register=65535)}
        )


def test_plugins_register_their_types() -> None:
    drivers: dict[str, DriverType] = {}
    services: dict[str, ServiceType] = {}

    def register_driver(name: str, driver_type: DriverType) -> None:
        drivers[name] = driver_type

    def register_service(name: str, service_type: ServiceType) -> None:
        services[name] = service_type

    modbus_plugin.plantguard_register_drivers(register=register_driver)
    sim_plugin.plantguard_register_services(register=register_service)
    assert isinstance(drivers["modbus"], ModbusDriverType)
    assert isinstance(services["sim"], SimServiceType)
    assert SimServiceType.order < 100
    with pytest.raises(ValueError, match="extra"):
        SimOptions.model_validate({"port": 1, "bind": "0.0.0.0"})


# --- reading ----------------------------------------------------------------------------


async def test_driver_reads_every_demo_point_good_and_plausible(
    sim: SimServer, plant: PlantModel, drivers: Callable[..., ModbusDriver]
) -> None:
    site = demo_site(sim.port)
    for device in site.devices:
        driver = drivers(device.id)
        await driver.connect()
        assert driver.connected
        result = await driver.read(device.points)
        assert result.quality.tolist() == [Quality.GOOD] * len(device.points)
        assert result.values.dtype == np.float64
        expected = [plant.value(p.id, PLANT_TIME) for p in device.points]
        np.testing.assert_allclose(result.values, expected, rtol=1e-6)
    assert 18.0 <= plant.value("pump1.current", PLANT_TIME) <= 22.0
    assert 50.0 <= plant.value("tank1.level", PLANT_TIME) <= 70.0


async def test_one_poll_is_one_request_per_block(
    sim: SimServer, drivers: Callable[..., ModbusDriver]
) -> None:
    site = demo_site(sim.port)
    pump = device_of(site, "pump1")
    driver = drivers("pump1")
    await driver.read(pump.points)
    plan = driver._plans[tuple(p.id for p in pump.points)]
    assert [(b.start, b.count) for b in plan.blocks] == [(0, 8)]


async def test_decodes_every_type_word_order_and_scaling(
    sim: SimServer, client: AsyncModbusTcpClient, drivers: Callable[..., ModbusDriver]
) -> None:
    raw = (await client.read_holding_registers(0, count=4, device_id=2)).registers
    words = np.array(raw, dtype=np.uint16)
    base = device_of(demo_site(sim.port), "tank1")

    def point(key: str, **fields: Any) -> Point:
        return Point(id=f"tank1.{key}", device_id="tank1", **fields)

    device = with_points(
        base,
        point("f_big", address={"register": 0}, scale=2.0, offset=-1.0),
        point("f_little", address={"register": 0, "word_order": "little"}),
        point("u16", address={"register": 1, "type": "uint16"}),
        point("i16", address={"register": 0, "type": "int16"}),
        point("u32", address={"register": 2, "type": "uint32"}),
        point("i32", address={"register": 2, "type": "int32", "word_order": "little"}),
    )
    # the points overlap on purpose (one register read as several types)
    result = await drivers("tank1", device, validate=False).read(device.points)

    level = float(np.array(raw[:2], dtype=">u2").view(">f4")[0])
    swapped = float(np.array(raw[1::-1], dtype=">u2").view(">f4")[0])
    u32 = (int(raw[2]) << 16) | int(raw[3])
    i32 = int(np.array([(int(raw[3]) << 16) | int(raw[2])], dtype=np.uint32).view(np.int32)[0])
    expected = np.array(
        [level * 2.0 - 1.0, swapped, raw[1], words[:1].view(np.int16)[0], u32, i32],
        dtype=np.float64,
    )
    finite = np.isfinite(expected)
    assert finite.sum() >= 5, "only the word-swapped float can decode to a non-finite value"
    np.testing.assert_allclose(result.values[finite], expected[finite], rtol=1e-6)
    good = np.where(finite, Quality.GOOD, Quality.BAD)
    assert result.quality.tolist() == good.tolist()


async def test_missing_register_fails_only_its_block(
    sim: SimServer, drivers: Callable[..., ModbusDriver], caplog: pytest.LogCaptureFixture
) -> None:
    base = device_of(demo_site(sim.port), "tank1")
    ghost = Point(id="tank1.ghost", device_id="tank1", address={"register": 100})
    device = with_points(base, *base.points, ghost)
    driver = drivers("tank1", device)
    with caplog.at_level(logging.WARNING, logger="plantguard_modbus"):
        result = await driver.read(device.points)
    assert result.quality.tolist() == [Quality.GOOD, Quality.GOOD, Quality.BAD_DEVICE_FAILURE]
    assert np.isfinite(result.values[:2]).all()
    assert math.isnan(result.values[2])
    assert driver.connected, "an exception response is not a lost connection"
    messages = [r.getMessage() for r in caplog.records]
    assert any("illegal_address" in m and "tank1.ghost" in m for m in messages), messages

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plantguard_modbus"):
        await driver.read(device.points)
    assert not caplog.records, "a persisting failure is logged once, not every poll"


async def test_unknown_unit_marks_the_device_bad_not_lost(
    sim: SimServer, drivers: Callable[..., ModbusDriver]
) -> None:
    device = device_of(demo_site(sim.port), "gas1")
    result = await drivers("gas1", unit=42).read(device.points)
    assert result.quality.tolist() == [Quality.BAD_DEVICE_FAILURE]


# --- overrides and writes ---------------------------------------------------------------


async def test_plain_client_write_overrides_until_nan(
    sim: SimServer,
    plant: PlantModel,
    client: AsyncModbusTcpClient,
    drivers: Callable[..., ModbusDriver],
) -> None:
    tank = device_of(demo_site(sim.port), "tank1")
    driver = drivers("tank1")

    response = await client.write_registers(0, encode_float32(np.array([95.5])), device_id=2)
    assert not response.isError()
    result = await driver.read(tank.points)
    assert result.values[0] == pytest.approx(95.5)
    assert result.values[1] == pytest.approx(plant.value("tank1.pressure", PLANT_TIME), rel=1e-6)
    assert sim.overrides == {"tank1.level": 95.5}

    await client.write_registers(0, NAN_REGISTERS, device_id=2)
    result = await driver.read(tank.points)
    assert result.values[0] == pytest.approx(plant.value("tank1.level", PLANT_TIME), rel=1e-6)
    assert sim.overrides == {}


async def test_single_register_write_is_merged_into_the_float(
    sim: SimServer,
    plant: PlantModel,
    client: AsyncModbusTcpClient,
    drivers: Callable[..., ModbusDriver],
) -> None:
    gas = device_of(demo_site(sim.port), "gas1")
    high_word_of_42 = encode_float32(np.array([42.0]))[0]
    low_word_of_plant = encode_float32(np.array([plant.value("gas1.lel", PLANT_TIME)]))[1]
    response = await client.write_register(0, high_word_of_42, device_id=3)
    assert not response.isError()
    value = (await drivers("gas1").read(gas.points)).values[0]
    merged = np.array([high_word_of_42, low_word_of_plant], dtype=">u2").view(">f4")[0]
    assert value == pytest.approx(float(merged)), "high word replaced, low word kept"
    assert 42.0 <= value < 42.25
    assert "gas1.lel" in sim.overrides

    await client.write_register(0, NAN_REGISTERS[0], device_id=3)
    assert sim.overrides == {}, "a NaN pattern in the high word releases the override"


async def test_driver_write_overrides_and_nan_releases(
    sim: SimServer, drivers: Callable[..., ModbusDriver]
) -> None:
    pump = device_of(demo_site(sim.port), "pump1")
    running = next(p for p in pump.points if p.id == "pump1.running")
    driver = drivers("pump1")
    await driver.write(running, 0.0)
    assert (await driver.read([running])).values.tolist() == [0.0]
    await driver.write(running, math.nan)
    assert (await driver.read([running])).values.tolist() == [1.0]

    current = next(p for p in pump.points if p.id == "pump1.current")
    with pytest.raises(DriverError, match="read-only"):
        await driver.write(current, 1.0)


def test_encode_value_checks_ranges_and_word_order() -> None:
    assert encode_value(ModbusAddress(register=0, type="uint16"), 65535.0) == [65535]
    assert encode_value(ModbusAddress(register=0, type="int16"), -1.0) == [65535]
    assert encode_value(ModbusAddress(register=0, type="int32"), 65536.0) == [1, 0]
    assert encode_value(ModbusAddress(register=0, type="int32", word_order="little"), 65536.0) == [
        0,
        1,
    ]
    assert encode_value(ModbusAddress(register=0), 1.0) == [0x3F80, 0]
    with pytest.raises(ValueError, match="range"):
        encode_value(ModbusAddress(register=0, type="uint16"), 70000.0)
    with pytest.raises(ValueError, match="nan"):
        encode_value(ModbusAddress(register=0, type="int16"), math.nan)


# --- connection loss --------------------------------------------------------------------


async def test_stopped_server_raises_and_reconnect_works(
    plant: PlantModel, drivers: Callable[..., ModbusDriver], sim: SimServer
) -> None:
    port = sim.port
    tank = device_of(demo_site(port), "tank1")
    driver = drivers("tank1")
    await driver.connect()
    assert (await driver.read(tank.points)).quality.tolist() == [Quality.GOOD] * 2

    await sim.stop()
    with pytest.raises(DriverError):
        await driver.read(tank.points)
    assert not driver.connected
    with pytest.raises(DriverError, match="unreachable"):
        await driver.connect()

    again = SimServer(plant, port=port, clock=Clock(PLANT_TIME))
    await again.start()
    try:
        await driver.connect()
        assert driver.connected
        result = await driver.read(tank.points)
        assert result.quality.tolist() == [Quality.GOOD] * 2
    finally:
        await driver.close()
        await again.stop()
    assert not driver.connected
    await driver.close()  # closing twice never raises


async def test_sim_service_starts_on_a_free_port_and_stops_cleanly() -> None:
    before = asyncio.all_tasks()
    service = SimServiceType().create(SimOptions(port=0, scenario="none", seed=5))
    assert isinstance(service, SimService)
    await service.start(cast(EngineView, None))
    try:
        assert service.port > 0
        plain = AsyncModbusTcpClient("127.0.0.1", port=service.port, timeout=1, retries=0)
        assert await plain.connect()
        response = await plain.read_holding_registers(0, count=2, device_id=3)
        plain.close()
        lel = float(np.array(response.registers, dtype=">u2").view(">f4")[0])
        assert 0.0 <= lel < 3.0
    finally:
        await service.stop()
    await service.stop()  # idempotent
    await asyncio.sleep(0.05)
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    leftover.discard(asyncio.current_task())
    assert not leftover


async def test_sim_server_refuses_a_port_in_use(sim: SimServer, plant: PlantModel) -> None:
    second = SimServer(plant, port=sim.port)
    with pytest.raises(
        PortInUse, match=f"cannot listen on 127.0.0.1:{sim.port}: the port is in use"
    ):
        await second.start()
    assert not second.running
    await second.stop()
