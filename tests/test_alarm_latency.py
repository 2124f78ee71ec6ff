"""An alarm follows the poll that brought its value, and reaches the client at once.

The engine, the simulator's Modbus server, the OPC UA server and an asyncua
client are all real.  What is asserted is order and cause, never a duration:

* the scan that raises the alarm runs after the poll that brought the value over
  HH and before the next poll — with a ``scan_interval`` of 60 s, only a scan
  woken by that poll can have raised it;
* the alarm event reaches a client whose subscription publishes every 60 s
  long before that interval ends — it is published when raised, not at the end
  of the publishing interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua_typed import numeric_id
from pymodbus.client import AsyncModbusTcpClient

from plantguard.alarms import AlarmState, Transition
from plantguard.testing import RunningSite, free_tcp_port, wait_for

ALARM = "tank1.level.limit"
#: Longer than any test waits: whatever happens in the test happens within one.
SCAN_INTERVAL_S = 60
PUBLISHING_INTERVAL_MS = 60_000


def _site(sim_port: int, poll_interval: float, *, opcua: bool) -> str:
    server = "opcua: {port: 0, security: [none], anonymous: true}" if opcua else ""
    return f"""
id: t
poll_groups:
  default: {{interval: {poll_interval}}}
scan_interval: {SCAN_INTERVAL_S}
services:
  sim: {{port: {sim_port}, scenario: none}}
  {server}
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
"""


async def _write_level(port: int, value: float) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    assert await client.connect()
    try:
        registers = client.convert_to_registers(value, client.DATATYPE.FLOAT32)
        assert not (await client.write_registers(0, registers, device_id=2)).isError()
    finally:
        client.close()


async def test_the_alarm_is_raised_by_the_scan_the_poll_that_brought_the_value_wakes(
    running_site: RunningSite,
) -> None:
    sim_port = free_tcp_port()
    async with running_site(_site(sim_port, poll_interval=0.5, opcua=False)) as engine:
        level = engine.table.index["tank1.level"]
        polls: list[float] = []  # the level each poll brought, in order
        raised_after: list[int] = []  # how many polls had arrived when the alarm was raised

        async def on_values(changed: npt.NDArray[np.intp]) -> None:
            if level in changed:
                polls.append(float(engine.table.values[level]))

        async def on_transitions(transitions: Sequence[Transition]) -> None:
            if any(t.alarm_id == ALARM and t.after is AlarmState.UNACK for t in transitions):
                raised_after.append(len(polls))

        engine.on_values(on_values)
        engine.alarms.subscribe(on_transitions)
        await wait_for(lambda: len(polls) >= 2)  # polled, and scanned at start-up
        assert engine.alarms.status[ALARM].state is AlarmState.NORMAL

        await _write_level(sim_port, 95.0)
        await wait_for(lambda: raised_after, timeout=10)
        first_high = next(i for i, value in enumerate(polls) if value > 90)
        # Raised after the poll that brought 95 arrived (its count includes that poll),
        # and before the next poll: the scan followed that poll, not the scan interval.
        assert raised_after == [first_high + 1], (polls, raised_after)
        assert engine.alarms.status[ALARM].condition == "HH"


class _Events:
    """SourceName and ActiveState/Id of the events a subscription delivers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bool]] = []

    def event_notification(self, event: Any) -> None:
        fields = event.get_event_props_as_fields_dict()
        self.received.append(
            (str(fields["SourceName"].Value), bool(fields["ActiveState/Id"].Value))
        )


def _filter() -> ua.EventFilter:
    evfilter = ua.EventFilter()
    for path in ("SourceName", "ActiveState/Id"):
        operand = ua.SimpleAttributeOperand()
        operand.TypeDefinitionId = numeric_id(ObjectIds.BaseEventType)
        operand.BrowsePath = [ua.QualifiedName(p, 0) for p in path.split("/")]
        operand.AttributeId = AttributeIds.Value
        evfilter.SelectClauses.append(operand)
    return evfilter


async def test_an_alarm_event_does_not_wait_for_the_publishing_interval(
    running_site: RunningSite,
) -> None:
    sim_port = free_tcp_port()
    async with running_site(_site(sim_port, poll_interval=0.2, opcua=True)) as engine:
        level = engine.table.index["tank1.level"]
        await wait_for(lambda: engine.table.values[level] > 0)
        service: Any = engine.services["opcua"]
        client = Client(service.endpoint, timeout=10)
        await client.connect()
        try:
            events = _Events()
            # The subscription's first publish comes at once; its next one only after
            # 60 s: an event seen within the wait below was published when raised.
            sub: Subscription = await client.create_subscription(PUBLISHING_INTERVAL_MS, events)
            await sub.subscribe_events(client.nodes.server, evfilter=_filter())
            await asyncio.sleep(0.5)  # the subscription's first (start-up) publish is out
            events.received.clear()

            await _write_level(sim_port, 95.0)
            await wait_for(lambda: ("tank1.level", True) in events.received, timeout=20)
            assert engine.alarms.status[ALARM].state is AlarmState.UNACK

            # The return to normal goes out the same way.
            await _write_level(sim_port, 50.0)
            await wait_for(lambda: ("tank1.level", False) in events.received, timeout=20)
        finally:
            await client.disconnect()
