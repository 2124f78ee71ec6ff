"""The engine in-process, through the plugin test kit: real simulator, real Modbus, real SQLite."""

from __future__ import annotations

import numpy as np
from pymodbus.client import AsyncModbusTcpClient

from plantguard.alarms import AlarmState
from plantguard.model import Quality
from plantguard.testing import RunningSite, free_tcp_port, wait_for


async def _write_level(port: int, value: float) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    assert await client.connect()
    try:
        registers = client.convert_to_registers(value, client.DATATYPE.FLOAT32)
        assert not (await client.write_registers(0, registers, device_id=2)).isError()
    finally:
        client.close()


def _site(sim_port: int, dead_port: int) -> str:
    return f"""
id: t
poll_groups:
  default: {{interval: 0.1}}
scan_interval: 0.05
store: {{history: {{flush_interval: 0.1}}}}
services:
  sim: {{port: {sim_port}, scenario: none}}
areas:
  - id: a
    devices:
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim_port}, unit: 2, timeout: 0.5}}
        points:
          - id: level
            address: {{register: 0}}
            rules: {{limit: {{h: 80, hh: 90, deadband: 1}}}}
          - id: pressure
            address: {{register: 2}}
      - id: ghost
        driver: modbus
        connection: {{host: 127.0.0.1, port: {dead_port}, unit: 1, timeout: 0.2}}
        points:
          - id: x
            address: {{register: 0}}
"""


async def test_values_alarms_history_and_a_dead_device(running_site: RunningSite) -> None:
    sim_port, dead_port = free_tcp_port(), free_tcp_port()
    async with running_site(_site(sim_port, dead_port)) as engine:
        table = engine.table
        level, pressure, ghost = (
            table.index[p] for p in ("tank1.level", "tank1.pressure", "ghost.x")
        )
        # The live device delivers Good values while the dead one is marked, without stalling it.
        await wait_for(
            lambda: table.quality[level] == Quality.GOOD and table.quality[pressure] == Quality.GOOD
        )
        await wait_for(lambda: table.quality[ghost] == Quality.BAD_NOT_CONNECTED)
        assert 40 < table.values[level] < 80
        first_time = float(table.source_time[level])
        await wait_for(lambda: table.source_time[level] > first_time)

        # Force the level over HH by writing the simulator's registers over Modbus.
        await _write_level(sim_port, 95.0)
        await wait_for(lambda: engine.alarms.status["tank1.level.limit"].state is AlarmState.UNACK)
        assert engine.alarms.status["tank1.level.limit"].condition == "HH"
        await engine.alarms.acknowledge(
            "tank1.level.limit", user="op1", comment="checking", now=1.0
        )
        await _write_level(sim_port, 50.0)
        await wait_for(lambda: engine.alarms.status["tank1.level.limit"].state is AlarmState.NORMAL)
        store = engine.store
    trend = store.trend("tank1.level")
    # History keeps every change (the first value, the override, the release), in time order.
    assert len(trend) >= 3
    assert np.all(np.diff(trend.time) > 0)
    assert 95.0 in trend.value.tolist()
    assert trend.value[-1] == 50.0
    journal = [(r.action, r.user) for r in store.journal("tank1.level.limit")]
    assert journal[0] == ("activate", "")
    assert ("acknowledge", "op1") in journal
    assert journal[-1] == ("clear", "")
    ghost_trend = store.trend("ghost.x")
    assert set(ghost_trend.quality.tolist()) == {Quality.BAD_NOT_CONNECTED}
