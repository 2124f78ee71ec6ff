"""``plantguard probe``: every device polled once over its real transport, and what looks wrong.

Real parts: :class:`MiniModbusServer` (and pymodbus' server) on 127.0.0.1 with a
register image holding the suspicious values — a register at its type's maximum,
a signed minimum, a float of exactly 0 and a NaN, a value outside its range, a
``limit`` setting outside the range, a hole in the map (exception 2) and a
register the device fails (exception 4) — a port nobody listens on, and a unit
that never answers; the command line as a user types it (run in a worker thread,
since it runs its own event loop while the servers serve on the test's).
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from plantguard.cli import main
from plantguard.cli.probe import render_table
from plantguard.config import ConfigError, parse_site
from plantguard.host import PluginHost
from plantguard.model import Device, Point, Quality
from plantguard.plugin import DeviceDriver, DriverType, ReadResult, RegisterDriver, hookimpl
from plantguard.probe import probe_site
from plantguard.testing import free_tcp_port
from plantguard_modbus.testing import make_device, make_driver, pymodbus_server
from plantguard_modbus.testserver import MiniModbusServer, UnitImage

pytestmark = pytest.mark.integration

#: Function codes that write (5, 6, 15, 16): a probe never sends them.
WRITES = {5, 6, 15, 16}


def words_of(value: float, fmt: str = ">f") -> list[int]:
    data = struct.pack(fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def fill(image: UnitImage) -> None:
    """The boiler's register map: one value of each kind the probe must judge."""
    image.holding[0] = 500  # ok: fine
    image.holding[1] = 0xFFFF  # full: uint16 at its maximum
    image.holding[2:4] = words_of(0.0)  # zero: float32 exactly 0
    image.holding[4] = 1500  # hot: 150.0 after scale 0.1, above its range 0 … 100
    image.holding[5] = 50  # level: fine, but its HH limit 120 is outside 0 … 100
    image.holding[6] = 0x8000  # low: int16 at its minimum
    image.holding[8:10] = words_of(float("nan"))  # nan: float32 NaN
    image.holding[12] = 7
    image.unmap("holding", 12)  # hole: not in the device's map (exception 2)
    image.holding[40] = 3  # busy: the device answers exception 4 (see the fixture)
    image.holding[50:52] = words_of(3.5)  # temp: fine
    image.coils[0] = 1  # run: a coil


BOILER = """
      - id: boiler
        name: Boiler 1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {port}, timeout: {timeout}, retries: 0}}
        points:
          - {{id: ok, unit: bar, range: [0, 1000], address: {{register: 0, type: uint16}}}}
          - {{id: full, unit: bar, range: [0, 70000], address: {{register: 1, type: uint16}}}}
          - {{id: zero, unit: degC, range: [-50, 500], address: {{register: 2, type: float32}}}}
          - id: hot
            unit: degC
            scale: 0.1
            range: [0, 100]
            address: {{register: 4, type: int16}}
          - id: level
            unit: "%"
            range: [0, 100]
            address: {{register: 5, type: uint16}}
            rules: {{limit: {{h: 90, hh: 120}}}}
          - {{id: low, address: {{register: 6, type: int16}}}}
          - {{id: nan, address: {{register: 8, type: float32}}}}
          - {{id: hole, address: {{register: 12, type: uint16}}}}
          - {{id: busy, address: {{register: 40, type: uint16}}}}
          - {{id: temp, unit: degC, range: [0, 10], address: {{register: 50, type: float32}}}}
          - {{id: run, data_type: bool, address: {{function: coil, register: 0}}}}
"""

DEAD = """
      - id: dead
        name: Dead pump
        driver: modbus
        connection: {{host: 127.0.0.1, port: {port}, timeout: {timeout}, retries: 0}}
        points:
          - {{id: current, unit: A, address: {{register: 0, type: float32}}}}
"""


def site_text(*devices: str) -> str:
    return (
        "id: probed\npoll_groups: {default: {interval: 1.0}}\n"
        "areas:\n  - id: plant\n    devices:\n" + "".join(devices)
    )


@pytest.fixture
async def server() -> AsyncIterator[MiniModbusServer]:
    mini = MiniModbusServer()
    fill(mini.units[1])
    mini.faults[(1, 3, 40)] = 4  # server device failure for any read covering register 40
    mini.set_identity(1, {0: "ACME Boilers", 1: "B-200", 2: "1.2.3"})
    async with mini:
        yield mini


def write_site(tmp_path: Path, *devices: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(site_text(*devices), encoding="utf-8")
    return path


def boiler(server: MiniModbusServer, timeout: float = 1.0) -> str:
    return BOILER.format(port=server.port, timeout=timeout)


def dead(timeout: float = 1.0) -> str:
    return DEAD.format(port=free_tcp_port(), timeout=timeout)


async def probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``plantguard probe …`` as typed; (exit status, stdout, stderr)."""
    status = await asyncio.to_thread(main, ["--log-level", "error", "probe", *args])
    out, err = capsys.readouterr()
    return status, out, err


def rows(out: str, device: str) -> dict[str, list[str]]:
    """The table of ``device`` in the human output: cells by point id."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{device} "))
    header = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("point "))
    table: dict[str, list[str]] = {}
    for line in lines[header + 1 :]:
        if not line.startswith("  ") or line.startswith("  !"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        table[cells[0]] = cells
    return table


def writes(server: MiniModbusServer) -> list[tuple[int, int]]:
    return [key for key in server.requests if key[1] in WRITES]


# --- the human table ---------------------------------------------------------------------


async def test_table_shows_raw_registers_values_and_what_is_suspicious(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write_site(tmp_path, boiler(server))
    status, out, _ = await probe(capsys, str(site))
    assert status == 0, "a device answering exception codes has answered"
    assert out.splitlines()[0].startswith(
        f"boiler — Boiler 1 (modbus, tcp 127.0.0.1:{server.port} unit 1): answered"
    )
    assert "  identity: vendor_name=ACME Boilers, product_code=B-200, revision=1.2.3" in out
    table = rows(out, "boiler")
    columns = ["raw", "value", "quality", "unit", "range", "limits", "suspicious"]
    expected = {
        "ok": ["01F4", "500", "GOOD", "bar", "0 … 1000", "-"],
        "full": ["FFFF", "65535", "GOOD", "bar", "0 … 70000", "-", "uint16 at its maximum (FFFF)"],
        "zero": [
            "0000 0000",
            "0",
            "GOOD",
            "degC",
            "-50 … 500",
            "-",
            "float32 is exactly 0 (0000 0000)",
        ],
        "hot": ["05DC", "150", "GOOD", "degC", "0 … 100", "-", "150 is above the range 0 … 100"],
        "level": [
            "0032",
            "50",
            "GOOD",
            "%",
            "0 … 100",
            "H 90 HH 120",
            "limit hh = 120 is outside the range 0 … 100",
        ],
        "low": ["8000", "-32768", "GOOD", "-", "-", "-", "int16 at its minimum (8000)"],
        "nan": ["7FC0 0000", "-", "BAD", "-", "-", "-", "float32 holds NaN (7FC0 0000)"],
        "hole": ["-", "-", "BAD_DEVICE_FAILURE", "-", "-", "-", "exception 2 (illegal_address)"],
        "busy": ["-", "-", "BAD_DEVICE_FAILURE", "-", "-", "-", "exception 4 (device_failure)"],
        "temp": ["4060 0000", "3.5", "GOOD", "degC", "0 … 10", "-"],
        "run": ["1", "1", "GOOD", "-", "-", "-"],
    }
    assert {k: v[1:] for k, v in table.items()} == expected, columns
    # which blocks the device refused, with which code
    refused = [line.strip() for line in out.splitlines() if line.startswith("  ! ")]
    assert (
        "! exception 2 (illegal_address) to unit 1 holding registers 12–12 "
        "(function 3, start 12, count 1)"
    ) in refused
    assert (
        "! exception 4 (device_failure) to unit 1 holding registers 40–40 "
        "(function 3, start 40, count 1)"
    ) in refused
    assert out.splitlines()[-1] == "1 device: 1 answered; 8 suspicious points"
    assert writes(server) == [], "a probe never writes"


async def test_a_dead_device_is_flagged_and_fails_the_probe(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write_site(tmp_path, dead(), boiler(server))
    status, out, _ = await probe(capsys, str(site))
    assert status == 1
    head = next(line for line in out.splitlines() if line.startswith("dead "))
    assert head.startswith("dead — Dead pump (modbus, tcp 127.0.0.1:")
    assert ": NO ANSWER — modbus device 'dead' is unreachable" in head
    assert "full" in rows(out, "boiler"), "the other devices are probed all the same"
    assert out.splitlines()[-1] == "2 devices: 1 answered, 1 did not (dead); 8 suspicious points"


# --- --json ------------------------------------------------------------------------------


async def probe_json(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """``plantguard probe --json`` of the boiler and a dead device."""
    site = write_site(tmp_path, boiler(server), dead())
    status, out, _ = await probe(capsys, str(site), "--json")
    assert status == 1
    document: dict[str, Any] = json.loads(out)
    return document


async def test_json_document_points(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = await probe_json(server, tmp_path, capsys)
    assert document["site"] == "probed"
    assert document["answered"] == 1
    assert document["not_answered"] == ["dead"]
    assert document["suspicious_points"] == 8
    the_boiler = document["devices"][0]
    assert the_boiler["answered"] is True
    assert the_boiler["error"] is None
    assert the_boiler["raw_data"] is True
    assert the_boiler["identity"] == {
        "vendor_name": "ACME Boilers",
        "product_code": "B-200",
        "revision": "1.2.3",
    }
    points = {p["id"].removeprefix("boiler."): p for p in the_boiler["points"]}
    codes = {name: [f["code"] for f in p["flags"]] for name, p in points.items()}
    assert codes == {
        "ok": [],
        "full": ["type_max"],
        "zero": ["zero"],
        "hot": ["out_of_range"],
        "level": ["limit_outside_range"],
        "low": ["type_min"],
        "nan": ["not_a_number"],
        "hole": ["exception"],
        "busy": ["exception"],
        "temp": [],
        "run": [],
    }
    assert [p["suspicious"] for p in points.values()] == [bool(c) for c in codes.values()]

    full = points["full"]
    assert full["value"] == 65535.0
    assert full["quality"] == "GOOD"
    assert full["unit"] == "bar"
    assert full["range"] == [0.0, 70000.0]
    assert full["raw"] == {
        "address": "holding 1",
        "type": "uint16",
        "registers": [0xFFFF],
        "hex": "FFFF",
        "bits": [],
        "value": 65535.0,
        "text": None,
    }
    assert points["hot"]["value"] == pytest.approx(150.0)
    assert points["hot"]["raw"]["value"] == 1500.0
    assert points["level"]["limits"] == {"h": 90.0, "hh": 120.0}
    assert points["nan"]["value"] is None, "NaN is not JSON: null, with the flag"
    assert points["nan"]["quality"] == "BAD"
    assert points["nan"]["raw"]["registers"] == words_of(float("nan"))
    assert "holds NaN" in points["nan"]["reason"]
    assert points["run"]["raw"]["bits"] == [1]
    assert points["run"]["raw"]["address"] == "coil 0"

    hole = points["hole"]
    assert hole["quality"] == "BAD_DEVICE_FAILURE"
    assert hole["raw"]["registers"] == []
    assert hole["request"]["exception"] == 2
    assert hole["request"]["request"].startswith("unit 1 holding registers 12–12 ")
    assert points["busy"]["request"]["exception"] == 4
    assert writes(server) == []


async def test_json_document_requests_and_a_dead_device(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    the_boiler, the_dead = (await probe_json(server, tmp_path, capsys))["devices"]
    # every request, in order, with the device's answer; the refused ones are device flags
    requests = the_boiler["requests"]
    refused = [(r["exception"], r["request"].split(" (")[0]) for r in requests if r["exception"]]
    assert (2, "unit 1 holding registers 12–12") in refused
    assert (4, "unit 1 holding registers 40–40") in refused
    assert all(code in (2, 4) for code, _ in refused)
    assert all(r["answer"] == "ok" for r in requests if r["exception"] is None)
    device_flags = [f for f in the_boiler["flags"] if f["code"] == "exception"]
    assert len(device_flags) == len(refused)

    assert the_dead["answered"] is False
    assert "unreachable" in the_dead["error"]
    assert the_dead["flags"] == [{"code": "no_answer", "text": the_dead["error"]}]
    assert the_dead["points"][0]["quality"] == "NOT_READ"
    assert the_dead["points"][0]["value"] is None
    assert writes(server) == []


# --- options and errors ------------------------------------------------------------------


async def test_device_option_probes_only_the_named_devices(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write_site(tmp_path, boiler(server), dead())
    status, out, _ = await probe(capsys, str(site), "--json", "--device", "boiler")
    assert status == 0, "the dead device was not asked"
    assert [d["id"] for d in json.loads(out)["devices"]] == ["boiler"]

    status, out, err = await probe(capsys, str(site), "--device", "boiler", "--device", "nope")
    assert status == 2
    assert out == ""
    assert "unknown device 'nope' (devices of" in err


async def test_a_device_that_connects_but_never_answers(
    server: MiniModbusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.silent.add(1)
    # the device's own timeout is long; --timeout bounds the probe of each device
    site = write_site(tmp_path, boiler(server, timeout=30.0))
    status, out, _ = await probe(capsys, str(site), "--timeout", "0.5", "--json")
    assert status == 1
    (device,) = json.loads(out)["devices"]
    assert device["answered"] is False
    assert device["error"] == "no answer within 0.5 s"
    assert [f["code"] for f in device["flags"]] == ["no_answer"]


async def test_a_bad_site_file_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write_site(tmp_path, dead().replace("type: float32", "type: float33"))
    status, out, err = await probe(capsys, str(site))
    assert status == 2
    assert out == ""
    assert err.startswith("plantguard: invalid configuration:")
    assert ".address.type:" in err


# --- the driver's raw data ---------------------------------------------------------------


async def test_modbus_probe_reads_like_a_poll(server: MiniModbusServer) -> None:
    image = server.units[1]
    image.holding[52] = int.from_bytes(b"OK", "big")
    image.holding[53] = 0b10100  # bits 2-4 hold 5
    device = make_device(
        [
            {"id": "a", "address": {"register": 50, "type": "float32"}},
            {"id": "b", "address": {"register": 53, "type": "uint16", "bit": 2, "bits": 3}},
            {"id": "c", "address": {"register": 52, "type": "string", "length": 2}},
        ]
    )
    driver = make_driver(device, host="127.0.0.1", port=server.port, timeout=1.0, retries=0)
    try:
        reading = await driver.probe(device.points)
        result = await driver.read(device.points)
    finally:
        await driver.close()
    assert reading.result.values.tolist() == result.values.tolist() == [3.5, 5.0, 2.0]
    assert reading.result.quality.tolist() == [Quality.GOOD] * 3
    a, b, c = (reading.points[p.id] for p in device.points)
    assert (a.address, a.type, a.words, a.raw) == ("holding 50", "float32", (0x4060, 0), 3.5)
    assert (b.address, b.type, b.words, b.raw) == ("holding 53 bits 2–4", "bits", (20,), 5.0)
    assert (c.address, c.type, c.words, c.text) == ("holding 52", "string", (0x4F4B,), "OK")
    (request,) = reading.requests
    assert request.request == "unit 1 holding registers 50–53 (function 3, start 50, count 4)"
    assert (request.answer, request.exception) == ("ok", None)
    assert set(request.points) == {p.id for p in device.points}
    assert writes(server) == []


async def test_probe_against_pymodbus_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = UnitImage()
    image.holding[0] = 0xFFFF
    image.holding[1:3] = words_of(21.5)
    identity = {"VendorName": "Other Vendor", "ProductCode": "X1", "MajorMinorRevision": "9.1"}
    async with pymodbus_server(image, identity=identity) as port:
        site = write_site(
            tmp_path,
            "      - id: meter\n        driver: modbus\n"
            f"        connection: {{host: 127.0.0.1, port: {port}, timeout: 1.0}}\n"
            "        points:\n"
            "          - {id: count, address: {register: 0, type: uint16}}\n"
            "          - {id: temp, unit: degC, address: {register: 1, type: float32}}\n",
        )
        status, out, _ = await probe(capsys, str(site), "--json")
    assert status == 0
    (meter,) = json.loads(out)["devices"]
    assert meter["identity"]["vendor_name"] == "Other Vendor"
    count, temp = meter["points"]
    assert [f["code"] for f in count["flags"]] == ["type_max"]
    assert (temp["value"], temp["raw"]["hex"], temp["flags"]) == (21.5, "41AC 0000", [])


# --- drivers without raw data ------------------------------------------------------------


class PlainAddress(BaseModel):
    value: float
    quality: int = 0
    nan: bool = False  # read NaN (site files hold finite numbers only)


class PlainConnection(BaseModel):
    refuse: bool = False  # the driver type refuses the device when it is created


class PlainDriver(DeviceDriver):
    """A third-party driver: values and quality, no :meth:`probe`, a ``faults`` mapping."""

    def __init__(self, device: Device, addresses: dict[str, PlainAddress]) -> None:
        self.device = device
        self._addresses = addresses
        self._connected = False
        self.faults = {f"{device.id}.broken": "sensor wire open"}

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def read(self, points: Sequence[Point]) -> ReadResult:
        values = np.array(
            [np.nan if self._addresses[p.id].nan else self._addresses[p.id].value for p in points]
        )
        quality = np.array([self._addresses[p.id].quality for p in points], dtype=np.uint8)
        return ReadResult(values, quality, 0.0)

    async def close(self) -> None:
        self._connected = False


class PlainDriverType(DriverType):
    connection_model = PlainConnection
    address_model = PlainAddress

    def create(self, device: Device, connection: BaseModel, addresses: Any) -> DeviceDriver:
        if isinstance(connection, PlainConnection) and connection.refuse:
            raise ValueError("this gauge cannot be refused")
        return PlainDriver(device, dict(addresses))


class PlainPlugin:
    @hookimpl
    def plantguard_register_drivers(self, register: RegisterDriver) -> None:
        register("plain", PlainDriverType())


async def test_a_driver_without_raw_data_gets_the_generic_probe(
    plantguard_host: PluginHost,
) -> None:
    plantguard_host.register(PlainPlugin(), "plain")
    plantguard_host.start()
    loaded = parse_site(
        site_text(
            "      - id: gauge\n        driver: plain\n        points:\n"
            "          - {id: fine, unit: m, range: [0, 10], address: {value: 4.0}}\n"
            "          - {id: nothing, address: {value: 0.0}}\n"
            "          - {id: high, range: [0, 10], address: {value: 11.0}}\n"
            "          - {id: nan, address: {value: 1.0, nan: true}}\n"
            "          - {id: broken, address: {value: 1.0, quality: 132}}\n"
            "          - {id: off, data_type: bool, address: {value: 0.0}}\n"
        ),
        "<probe test>",
        plantguard_host,
    )
    (report,) = await probe_site(loaded, plantguard_host)
    assert report.answered
    assert report.raw is False
    assert report.requests == []
    flags = {
        p.point.id.removeprefix("gauge."): [(f.code, f.text) for f in p.flags]
        for p in report.points
    }
    assert flags == {
        "fine": [],
        "nothing": [("zero", "value is exactly 0")],
        "high": [("out_of_range", "11 is above the range 0 … 10")],
        "nan": [("not_a_number", "value is NaN")],
        "broken": [("bad_quality", "quality BAD_DEVICE_FAILURE: sensor wire open")],
        "off": [],
    }
    table = render_table([report])
    assert table.splitlines()[0] == "gauge (plain): answered"
    cells = {line.split()[0]: line.split() for line in table.splitlines()[3:9]}
    assert cells["fine"][:6] == ["fine", "n/a", "4", "GOOD", "m", "0"]


async def test_a_driver_refusing_its_settings_is_a_bad_site(plantguard_host: PluginHost) -> None:
    plantguard_host.register(PlainPlugin(), "plain")
    plantguard_host.start()
    loaded = parse_site(
        site_text(
            "      - id: gauge\n        driver: plain\n        connection: {refuse: true}\n"
            "        points: [{id: fine, address: {value: 4.0}}]\n"
        ),
        "<probe test>",
        plantguard_host,
    )
    with pytest.raises(ConfigError) as raised:
        await probe_site(loaded, plantguard_host)
    (issue,) = raised.value.issues
    assert issue.field == "areas[0].devices[0]"
    assert issue.message == (
        "driver 'plain' cannot work with this device: this gauge cannot be refused"
    )
