"""One gateway per store, and offline alarm actions refuse while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plantguard.store import Store
from plantguard.store.lease import LeaseHeld
from plantguard.testing import free_tcp_port


def test_lease_is_exclusive_and_released(store_target: str) -> None:
    first, second = Store(store_target), Store(store_target)
    try:
        first.lease.acquire("gateway A")
        with pytest.raises(LeaseHeld, match="a gateway is running on this store"):
            second.lease.check_free()
        with pytest.raises(LeaseHeld):
            second.lease.acquire("gateway B")
        first.close()
        second.lease.check_free()  # free again
        second.lease.acquire("gateway B")
    finally:
        first.close()
        second.close()


def _demo(db: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "plantguard", "--log-level", "warning", "demo",
        "--opcua-port", str(free_tcp_port()), "--modbus-port", str(free_tcp_port()),
        "--db", str(db), "--scenario", "none", "--duration", "60", "--quiet",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLANTGUARD_PASSWORD": "operator"}
    return subprocess.run(
        [sys.executable, "-m", "plantguard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_running_gateway_blocks_a_second_one_and_offline_acks(tmp_path: Path) -> None:
    db = tmp_path / "lease.db"
    gateway = _demo(db, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 30
        while "What to try" not in (tmp_path / "first.log").read_text():
            assert gateway.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second = _demo(db, tmp_path / "second.log")
        assert second.wait(timeout=30) == 1
        assert "a gateway is running on this store (pid" in (tmp_path / "second.log").read_text()

        alarm = "maintenance.tank1-wall-inspection"  # the demo's overdue inspection
        refused = _cli("alarms", "ack", alarm, "--user", "operator", "--db", str(db))
        assert refused.returncode == 1
        assert "act from an OPC UA client or Home Assistant" in refused.stderr

        gateway.send_signal(signal.SIGKILL)  # the lease dies with the process
        gateway.wait(timeout=10)
        done = _cli(
            "alarms", "ack", alarm, "--user", "operator", "--comment", "offline", "--db", str(db)
        )
        assert done.returncode == 0, done.stderr
        assert f"{alarm}: acknowledge by operator" in done.stdout
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
