"""End to end, through real processes and protocols.

``plantguard demo`` runs as its own process (simulator behind a real Modbus TCP
server, Modbus driver, engine, OPC UA server, SQLite).  The test writes the
tank level's holding registers past its HH limit with a plain Modbus client,
then sees the new value with an asyncua client and the alarm in the database,
and finally stops the gateway with SIGTERM and checks that it flushed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError
from pymodbus.client import AsyncModbusTcpClient

from plantguard.testing import free_tcp_port

pytestmark = pytest.mark.integration

TANK_LEVEL = [
    "0:Objects",
    "{ns}:PlantGuard",
    "{ns}:demo",
    "{ns}:utilities",
    "{ns}:tank1",
    "{ns}:Points",
    "{ns}:level",
]


class Demo:
    def __init__(self, tmp_path: Path, scenario: str) -> None:
        self.opcua_port = free_tcp_port()
        self.modbus_port = free_tcp_port()
        self.db = tmp_path / "demo.db"
        self.log = tmp_path / "demo.log"
        self.endpoint = f"opc.tcp://127.0.0.1:{self.opcua_port}/plantguard"
        cmd = [
            sys.executable, "-m", "plantguard", "demo",
            "--opcua-port", str(self.opcua_port),
            "--modbus-port", str(self.modbus_port),
            "--db", str(self.db),
            "--scenario", scenario,
            "--duration", "120",
        ]  # fmt: skip
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self._log_file.close()

    def alarm(self, alarm_id: str) -> tuple[str, str] | None:
        try:
            with sqlite3.connect(self.db) as conn:
                row = conn.execute(
                    "SELECT state, condition FROM alarms WHERE alarm_id = ?", (alarm_id,)
                ).fetchone()
        except sqlite3.OperationalError:  # the gateway is still creating its tables
            return None
        return None if row is None else (row[0], row[1])


def _start(tmp_path: Path, scenario: str) -> Iterator[Demo]:
    demo = Demo(tmp_path, scenario)
    try:
        yield demo
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait()


@pytest.fixture
def quiet_demo(tmp_path: Path) -> Iterator[Demo]:
    yield from _start(tmp_path, "none")


@pytest.fixture
def scenario_demo(tmp_path: Path) -> Iterator[Demo]:
    yield from _start(tmp_path, "cycle")


async def _connect(demo: Demo, timeout: float = 30.0) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        client = Client(demo.endpoint, timeout=5)
        try:
            await client.connect()
            return client
        except (TimeoutError, OSError, UaError):
            if demo.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"demo did not serve OPC UA:\n{demo.output()}")
            await asyncio.sleep(0.3)


async def _level_node(client: Client) -> object:
    ns = await client.get_namespace_index("urn:plantguard")
    return await client.nodes.root.get_child([p.format(ns=ns) for p in TANK_LEVEL])


async def _write_float(port: int, unit: int, register: int, value: float) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    assert await client.connect()
    try:
        registers = client.convert_to_registers(value, client.DATATYPE.FLOAT32)
        result = await client.write_registers(register, registers, device_id=unit)
        assert not result.isError()
    finally:
        client.close()


async def _until(predicate: object, timeout: float, what: str, demo: Demo) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; demo output:\n{demo.output()}")
        await asyncio.sleep(0.2)


async def test_modbus_write_past_hh_reaches_opcua_and_the_alarm_store(quiet_demo: Demo) -> None:
    demo = quiet_demo
    client = await _connect(demo)
    try:
        node = await _level_node(client)
        await _until(
            lambda: node.read_data_value(raise_on_bad_status=False),  # type: ignore[attr-defined]
            10,
            "a first value",
            demo,
        )

        async def good_value() -> float | None:
            dv = await node.read_data_value(raise_on_bad_status=False)  # type: ignore[attr-defined]
            return dv.Value.Value if dv.StatusCode.is_good() else None

        await _until(good_value, 10, "a Good tank level", demo)
        before = await good_value()
        assert before is not None
        assert before < 90
        assert demo.alarm("tank1.level.limit") == ("normal", "")

        # tank1 is unit 2; its level is the float32 at holding registers 0–1.
        await _write_float(demo.modbus_port, unit=2, register=0, value=97.5)

        async def shows_override() -> bool:
            value = await good_value()
            return value is not None and abs(value - 97.5) < 1e-3

        await _until(shows_override, 10, "OPC UA showing the written 97.5", demo)
        dv = await node.read_data_value()  # type: ignore[attr-defined]
        assert dv.SourceTimestamp is not None
        await _until(
            lambda: demo.alarm("tank1.level.limit") == ("active_unacknowledged", "HH"),
            10,
            "the HH alarm active in SQLite",
            demo,
        )
    finally:
        await client.disconnect()

    assert demo.stop() == 0
    out = demo.output()
    assert "stopped cleanly" in out
    assert "ALARM tank1.level.limit activate" in out
    with sqlite3.connect(demo.db) as conn:
        n_history = conn.execute(
            "SELECT count(*) FROM history h JOIN points p ON p.key = h.point_key "
            "WHERE p.point_id = 'tank1.level' AND h.value > 97 AND h.value < 98"
        ).fetchone()[0]
        journal = conn.execute(
            "SELECT action, state_after, condition FROM alarm_journal WHERE alarm_id = 'tank1.level.limit'"
        ).fetchall()
    assert n_history >= 1, "the overridden samples were flushed to history on SIGTERM"
    assert ("activate", "active_unacknowledged", "HH") in journal


async def test_scenario_raises_an_alarm_within_30_seconds(scenario_demo: Demo) -> None:
    demo = scenario_demo
    started = time.monotonic()
    await _until(
        lambda: (
            demo.db.exists()
            and (demo.alarm("tank1.level.limit") or ("", ""))[0] == "active_unacknowledged"
        ),
        40,
        "the scenario's tank alarm",
        demo,
    )
    assert time.monotonic() - started < 35  # includes process start-up
    assert demo.stop() == 0


def test_sigterm_without_opcua_client_exits_cleanly(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops the demo as cleanly as SIGTERM."""
    demo = Demo(tmp_path, "none")
    try:
        deadline = time.monotonic() + 30
        while "What to try" not in demo.output():
            assert demo.proc.poll() is None, demo.output()
            assert time.monotonic() < deadline, demo.output()
            time.sleep(0.2)
        assert demo.endpoint in demo.output()
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(timeout=20) == 0
        assert "stopped cleanly" in demo.output()
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
        demo.stop()
    assert os.path.exists(demo.db)
