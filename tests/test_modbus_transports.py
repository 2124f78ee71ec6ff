"""Transports: Modbus TCP, RTU over a serial line (a pseudo-terminal pair), RTU over TCP,
and Modbus/TCP Security (TLS with certificate verification, both ways)."""

from __future__ import annotations

import os
import tty
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pymodbus import FramerType

from plantguard.drivers import DriverError
from plantguard.model import Quality
from plantguard_modbus.models import ModbusConnection
from plantguard_modbus.testing import (
    Certificates,
    make_certificates,
    make_device,
    make_driver,
    pymodbus_server,
    server_tls_context,
)
from plantguard_modbus.testserver import MiniModbusServer, UnitImage

pytestmark = pytest.mark.integration

POINTS: list[dict[str, Any]] = [
    {"id": "temp", "address": {"register": 0, "type": "int16"}, "scale": 0.1},
    {"id": "total", "address": {"register": 1, "type": "uint32"}},
    {"id": "run", "data_type": "bool", "address": {"function": "coil", "register": 2}},
]
EXPECTED = [21.5, 70000.0, 1.0]


def image() -> UnitImage:
    unit = UnitImage()
    unit.holding[:3] = [215, 1, 70000 - 65536]
    unit.coils[2] = 1
    return unit


async def read_all(**connection: Any) -> list[float]:
    device = make_device(POINTS)
    driver = make_driver(device, timeout=2, retries=0, **connection)
    try:
        result = await driver.read(device.points)
        # a write goes the same way
        await driver.write(device.points[2].model_copy(update={"access": "read_write"}), 0.0)
        again = await driver.read(device.points)
    finally:
        await driver.close()
    assert result.quality.tolist() == [Quality.GOOD] * 3
    assert again.values.tolist()[2] == 0.0
    return [round(v, 6) for v in result.values.tolist()]


# --- RTU over a serial line -------------------------------------------------------------


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd for the device side, slave path for the gateway's serial port)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


async def test_rtu_over_a_pseudo_terminal(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    server = MiniModbusServer(units=())
    server.units[7] = image()
    server.serve_fd(master)
    try:
        values = await read_all(transport="rtu", serial_port=path, unit=7, baudrate=115200)
    finally:
        await server.stop()
    assert values == EXPECTED
    assert server.requests[(7, 3)] == 2  # one block per poll: temp and total together
    assert server.requests[(7, 5)] == 1


async def test_rtu_answer_with_a_bad_crc_fails_only_that_poll(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    server = MiniModbusServer()
    server.units[1] = image()
    server.serve_fd(master)
    device = make_device(POINTS)
    driver = make_driver(device, transport="rtu", serial_port=path, timeout=0.3, retries=0)
    try:
        assert (await driver.read(device.points)).quality.tolist() == [Quality.GOOD] * 3
        server.corrupt_crc = {3}  # line noise on the holding-register answer only
        server.faults[(1, 1, 2)] = 4  # and the coil block answers an exception
        result = await driver.read(device.points)
        comm = Quality.BAD_COMMUNICATION_ERROR
        assert result.quality.tolist() == [comm, comm, Quality.BAD_DEVICE_FAILURE]
        assert driver.connected
        server.corrupt_crc.clear()
        server.faults.clear()
        assert (await driver.read(device.points)).quality.tolist() == [Quality.GOOD] * 3
    finally:
        await driver.close()
        await server.stop()


# --- RTU over TCP -----------------------------------------------------------------------


async def test_rtu_over_tcp_with_the_minimal_server() -> None:
    server = MiniModbusServer(framing="rtu")
    server.units[1] = image()
    async with server:
        values = await read_all(transport="rtu_over_tcp", host="127.0.0.1", port=server.port)
    assert values == EXPECTED


async def test_rtu_over_tcp_with_pymodbus() -> None:
    async with pymodbus_server(image(), framer=FramerType.RTU) as port:
        values = await read_all(transport="rtu_over_tcp", host="127.0.0.1", port=port)
    assert values == EXPECTED


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls-other"), tag="-other")


def tls_options(certs: Certificates, port: int, **tls: Any) -> dict[str, Any]:
    settings = {
        "cafile": str(certs.ca),
        "certfile": str(certs.client_cert),
        "keyfile": str(certs.client_key),
        **tls,
    }
    return {"transport": "tls", "host": "127.0.0.1", "port": port, "tls": settings}


@pytest.fixture(params=["pymodbus", "mini"])
async def tls_port(request: pytest.FixtureRequest, certs: Certificates) -> AsyncIterator[int]:
    context = server_tls_context(certs)
    if request.param == "pymodbus":
        async with pymodbus_server(image(), ssl_context=context) as port:
            yield port
    else:
        server = MiniModbusServer(ssl_context=context)
        server.units[1] = image()
        async with server:
            yield server.port


async def test_tls_with_verified_certificates(tls_port: int, certs: Certificates) -> None:
    assert await read_all(**tls_options(certs, tls_port)) == EXPECTED


async def test_tls_refuses_a_device_signed_by_an_untrusted_ca(
    tls_port: int, other_certs: Certificates
) -> None:
    device = make_device(POINTS)
    driver = make_driver(device, timeout=2, **tls_options(other_certs, tls_port))
    with pytest.raises(DriverError, match="certificate verify failed") as caught:
        await driver.connect()
    assert "'dev'" in str(caught.value)
    assert not driver.connected


async def test_tls_device_refuses_a_gateway_without_certificate(
    certs: Certificates,
) -> None:
    server = MiniModbusServer(ssl_context=server_tls_context(certs))
    server.units[1] = image()
    async with server:
        options = tls_options(certs, server.port, certfile=None, keyfile=None)
        device = make_device(POINTS)
        driver = make_driver(device, timeout=1, retries=0, **options)

        async def connect_and_read() -> None:
            await driver.connect()
            await driver.read(device.points)  # TLS 1.3 reports the refusal on first use

        with pytest.raises(DriverError):
            await connect_and_read()
        await driver.close()


async def test_unreadable_tls_files_are_a_clear_error(certs: Certificates, tmp_path: Path) -> None:
    device = make_device(POINTS)
    options = tls_options(certs, 1, cafile=str(tmp_path / "missing.pem"))
    driver = make_driver(device, **options)
    with pytest.raises(DriverError, match=r"'dev'.*missing\.pem|No such file"):
        await driver.connect()


def test_connection_settings_are_checked_per_transport() -> None:
    with pytest.raises(ValidationError, match="needs serial_port"):
        ModbusConnection.model_validate({"transport": "rtu"})
    with pytest.raises(ValidationError, match="needs host"):
        ModbusConnection.model_validate({"transport": "tcp"})
    with pytest.raises(ValidationError, match="needs tls"):
        ModbusConnection.model_validate({"transport": "tls", "host": "h"})
    with pytest.raises(ValidationError, match="cafile"):
        ModbusConnection.model_validate({"transport": "tls", "host": "h", "tls": {}})
    with pytest.raises(ValidationError, match="parity"):
        ModbusConnection.model_validate(
            {"transport": "rtu", "serial_port": "/dev/x", "parity": "X"}
        )
    assert ModbusConnection(transport="tls", host="h", tls={"cafile": "ca.pem"}).tcp_port == 802
    assert ModbusConnection(host="h").tcp_port == 502
