"""A private Mosquitto for the MQTT benchmarks: its own process on 127.0.0.1, so the
shared broker's other traffic does not enter the figures."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from plantguard.testing import free_tcp_port

__all__ = ["MOSQUITTO", "start_broker"]

MOSQUITTO = "/usr/sbin/mosquitto"


def start_broker(directory: Path, extra: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes], int]:
    """``mosquitto`` with ``extra`` configuration lines, listening; its process and port."""
    port = free_tcp_port()
    lines = ["persistence false", f"listener {port} 127.0.0.1", "allow_anonymous true", *extra]
    if os.geteuid() == 0:
        lines.append("user root")
    config = directory / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("mosquitto did not start")
