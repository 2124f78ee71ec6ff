"""``plantguard demo --mqtt HOST:PORT``: the demo plant published as a Sparkplug B edge node
and to Home Assistant MQTT discovery, on a private broker (the demo's topics are fixed,
so it does not use the shared one)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pysparkplug as sp
import pytest
from mqtt_broker import PrivateBroker

from plantguard.testing import free_tcp_port

pytestmark = pytest.mark.integration


async def _collect(port: int, started: asyncio.Event, seconds: float) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with aiomqtt.Client("127.0.0.1", port) as client, client.messages() as messages:
        await client.subscribe("spBv1.0/plantguard-demo/#")
        await client.subscribe("homeassistant/#")
        started.set()
        try:
            async with asyncio.timeout(seconds):
                async for message in messages:
                    got.append(message)
                    if str(message.topic).startswith("spBv1.0/plantguard-demo/NDEATH"):
                        break
        except TimeoutError:
            pass
    return got


async def _run_demo(tmp_path: Path, broker: int) -> tuple[list[aiomqtt.Message], str]:
    started = asyncio.Event()
    collector = asyncio.create_task(_collect(broker, started, 60))
    await started.wait()
    cmd = [
        sys.executable, "-m", "plantguard", "demo", "--quiet", "--duration", "8",
        "--opcua-port", str(free_tcp_port()), "--modbus-port", str(free_tcp_port()),
        "--db", str(tmp_path / "demo.db"), "--mqtt", f"127.0.0.1:{broker}",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return await collector, out.decode(errors="replace")


def test_demo_publishes_sparkplug_and_discovery(tmp_path: Path) -> None:
    with PrivateBroker(tmp_path / "broker") as broker:
        messages, output = asyncio.run(_run_demo(tmp_path, broker.port))
    assert "stopped cleanly" in output, output
    topics = [str(m.topic) for m in messages]
    kinds = [t.split("/")[2] for t in topics if t.startswith("spBv1.0/")]
    assert kinds[0] == "NBIRTH", kinds[:5]
    assert kinds[-1] == "NDEATH"
    births = {t.split("/")[4] for t in topics if "/DBIRTH/" in t}
    assert {"pump1", "tank1"} <= births, births
    assert "DDATA" in kinds
    nbirth = next(m for m in messages if "/NBIRTH/" in str(m.topic))
    decoded = sp.NBirth.decode(bytes(nbirth.payload))  # type: ignore[arg-type]
    assert decoded.seq == 0
    assert any(m.name == "bdSeq" for m in decoded.metrics)
    configs = [t for t in topics if t.startswith("homeassistant/") and t.endswith("/config")]
    assert any(t.startswith("homeassistant/sensor/demo/") for t in configs), configs[:5]
    assert any(t.startswith("homeassistant/button/demo/") for t in configs), configs[:5]


def test_demo_refuses_a_broker_that_is_not_host_port(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "plantguard", "demo", "--db", str(tmp_path / "d.db"),
         "--mqtt", "127.0.0.1"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "'127.0.0.1' is not HOST:PORT" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "d.db").exists()
