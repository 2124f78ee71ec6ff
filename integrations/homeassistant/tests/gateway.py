"""A real PlantGuard gateway process for the tests.

The integration is tested against the gateway itself — ``plantguard demo``
(simulated plant behind Modbus TCP, engine, SQLite store, OPC UA server) or
``plantguard run`` with a site file — started from the project's main virtual
environment on free ports bound to 127.0.0.1.  The tests stop and restart it
to see Home Assistant lose and regain the connection, change its site file to
see devices come and go, write the simulator's Modbus registers to change a
value, and read its alarm journal with the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time
from typing import Any

import numpy as np
from pymodbus.client import AsyncModbusTcpClient

MAIN = Path(__file__).resolve().parents[3]
PLANTGUARD = Path(os.environ.get("PLANTGUARD_BIN", MAIN / ".venv" / "bin" / "plantguard"))
DEMO_SITE = MAIN / "plugins" / "plantguard_sim" / "demo_site.yaml"

#: Simulator unit ids (docs/simulator.md).
PUMP1, TANK1, GAS1 = 1, 2, 3


def _socket() -> socket.socket:
    """A TCP socket, even while the harness blocks them (session fixtures run before it allows)."""
    try:
        from pytest_socket import _true_socket
    except ImportError:  # pragma: no cover - outside the harness
        _true_socket = socket.socket
    return _true_socket(socket.AF_INET, socket.SOCK_STREAM)


def free_port() -> int:
    with _socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gateway:
    """One gateway, on fixed ports across restarts (so the entry's URL stays valid)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.opcua_port = free_port()
        self.modbus_port = free_port()
        self.db = workdir / "gateway.db"
        self.log = workdir / "gateway.log"
        self.site: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.opcua_port}/plantguard"

    def command(self) -> list[str]:
        if self.site is None:
            return [
                str(PLANTGUARD),
                "demo",
                "--opcua-port",
                str(self.opcua_port),
                "--modbus-port",
                str(self.modbus_port),
                "--db",
                str(self.db),
                "--scenario",
                "none",
                "--quiet",
            ]
        return [str(PLANTGUARD), "run", str(self.site), "--db", str(self.db), "--quiet"]

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until OPC UA answers and the first values are in."""
        assert self._process is None
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            try:
                with _socket() as probe:
                    probe.settimeout(0.5)
                    probe.connect(("127.0.0.1", self.opcua_port))
                    break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("gateway did not open its OPC UA port")
        time.sleep(1.5)  # first poll of every device (fast group 0.5 s, default 1 s)

    def stop(self) -> None:
        """SIGTERM and wait: the gateway flushes history and closes its server."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def use_site(self, edit: Any) -> None:
        """Run from now on with the demo site changed by ``edit(dict)`` (ports filled in)."""
        import yaml

        site = yaml.safe_load(DEMO_SITE.read_text())
        site["services"]["sim"] |= {"port": self.modbus_port, "scenario": "none"}
        site["services"]["opcua"] |= {"port": self.opcua_port}
        for area in site["areas"]:
            for device in area["devices"]:
                device["connection"]["port"] = self.modbus_port
        edit(site)
        # Files the demo site names by relative path (advisories …) sit beside it.
        for data in DEMO_SITE.parent.iterdir():
            if data.suffix in (".yaml", ".yml", ".json", ".csv") and data != DEMO_SITE:
                shutil.copy(data, self.workdir / data.name)
        self.site = self.workdir / "site.yaml"
        self.site.write_text(yaml.safe_dump(site, allow_unicode=True, sort_keys=False))

    def journal(self, alarm_id: str) -> list[dict[str, Any]]:
        """The gateway's alarm journal for one alarm, through its own CLI."""
        out = subprocess.run(
            [
                str(PLANTGUARD),
                "alarms",
                "journal",
                "--db",
                str(self.db),
                "--json",
                "--alarm",
                alarm_id,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        entries: list[dict[str, Any]] = json.loads(out.stdout)
        return entries

    async def write_float(self, unit: int, register: int, value: float) -> None:
        """Override a simulated point (two holding registers, float32 big-endian)."""
        words = np.array([value], dtype=">f4").view(">u2").tolist()
        client = AsyncModbusTcpClient("127.0.0.1", port=self.modbus_port)
        await client.connect()
        try:
            response = await client.write_registers(register, words, slave=unit)
            assert not response.isError(), response
        finally:
            client.close()
            await asyncio.sleep(0)


def maintenance_records(gateway: Gateway) -> list[dict[str, Any]]:
    """The gateway's maintenance records, through its CLI's JSON export."""
    out = subprocess.run(
        [str(PLANTGUARD), "maintenance", "export", "--kind", "records", "--format", "json",
         "--db", str(gateway.db)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    data = json.loads(out.stdout)
    records: list[dict[str, Any]] = data["items"]
    return records
