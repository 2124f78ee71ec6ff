"""Data-change subscriptions on point values, fed from the value table's changed slots.

A real asyncua client subscribes through the real server; the engine is the
test double of ``test_opcua_server`` (a real value table whose changes reach the
service's values listener).  Each test checks what a client receives: every
change, the StatusCode and timestamps, deadbands, queue sizes with the Overflow
bit, monitoring modes, and items created, modified and deleted while values flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua_typed import status_of, string_id, value_of, variant_of
from opcua_engine import FakeEngine
from test_opcua_server import OPEN, SITE

from plantguard.model import Quality, Site
from plantguard_opcua import NAMESPACE_URI, OpcUaOptions, OpcUaService

pytestmark = pytest.mark.integration

_OVERFLOW_BITS = 0x0480


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(Site.model_validate(SITE))


@pytest.fixture
async def client(engine: FakeEngine) -> AsyncIterator[Client]:
    svc = OpcUaService(OpcUaOptions(host="127.0.0.1", port=0, **OPEN))
    await svc.start(engine)
    try:
        async with Client(svc.endpoint) as c:
            yield c
    finally:
        await svc.stop()


class Received:
    """Every DataValue a subscription delivered, by client handle."""

    def __init__(self) -> None:
        self.values: dict[int, list[ua.DataValue]] = {}
        self.arrived = asyncio.Event()

    def status_change_notification(self, status: Any) -> None:
        pass

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        notification = data.monitored_item
        self.values.setdefault(notification.ClientHandle, []).append(notification.Value)
        self.arrived.set()

    async def settle(self, seconds: float = 0.6) -> None:
        """Wait until nothing more arrives for ``seconds``."""
        while True:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), seconds)
            except TimeoutError:
                return


async def _point(client: Client, path: str) -> ua.NodeId:
    ns = await client.get_namespace_index(NAMESPACE_URI)
    return string_id(path, ns)


async def _item(
    subscription: Any,
    node_id: ua.NodeId,
    handle: int,
    *,
    queue_size: int = 0,
    discard_oldest: bool = True,
    flt: ua.DataChangeFilter | None = None,
    mode: ua.MonitoringMode = ua.MonitoringMode.Reporting,
) -> int:
    params = ua.MonitoringParameters(
        ClientHandle=handle,
        SamplingInterval=0.0,
        QueueSize=queue_size,
        DiscardOldest=discard_oldest,
        Filter=flt,
    )
    request = ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
        MonitoringMode=mode,
        RequestedParameters=params,
    )
    results = await subscription.create_monitored_items([request])
    result = results[0]
    assert isinstance(result, int), result
    return result


CURRENT = "demo/utilities/pump1/Points/current"
RUNNING = "demo/utilities/pump1/Points/running"
STARTS = "demo/utilities/pump1/Points/starts"


async def test_every_change_arrives_with_quality_and_source_time(
    client: Client, engine: FakeEngine
) -> None:
    received = Received()
    sub = await client.create_subscription(50, received)
    await _item(sub, await _point(client, CURRENT), 1)
    await _item(sub, await _point(client, STARTS), 2)
    await _item(sub, await _point(client, RUNNING), 3)
    await received.settle()
    first = received.values[1][0]
    assert status_of(first).value == StatusCodes.BadWaitingForInitialData
    for n in range(1, 6):
        await engine.push(
            {"pump1.current": 10.0 + n, "pump1.starts": n, "pump1.running": n % 2},
            time=1_700_000_000.0 + n,
        )
        await asyncio.sleep(0.12)  # one publish each, so none is merged into a later one
    await received.settle()
    currents = received.values[1][1:]
    assert [value_of(dv) for dv in currents] == [11.0, 12.0, 13.0, 14.0, 15.0]
    assert all(status_of(dv).is_good() for dv in currents)
    source_time = currents[-1].SourceTimestamp
    assert source_time is not None
    assert source_time.timestamp() == pytest.approx(1_700_000_005.0)
    assert variant_of(currents[-1]).VariantType == ua.VariantType.Double
    starts = received.values[2][1:]
    assert [value_of(dv) for dv in starts] == [1, 2, 3, 4, 5]
    assert variant_of(starts[0]).VariantType == ua.VariantType.Int64
    running = [value_of(dv) for dv in received.values[3][1:]]
    assert running == [True, False, True, False, True]
    # A lost device: a Bad code without a value, then the last value again.
    await engine.lose(["pump1.current"], Quality.BAD_COMMUNICATION_ERROR, 1_700_000_010.0)
    await received.settle()
    lost = received.values[1][-1]
    assert status_of(lost).value == StatusCodes.BadCommunicationError
    assert lost.Value is None or lost.Value.Value is None
    await engine.push({"pump1.current": 15.0}, time=1_700_000_011.0)
    await received.settle()
    assert value_of(received.values[1][-1]) == 15.0
    assert status_of(received.values[1][-1]).is_good()
    await sub.delete()


async def test_absolute_and_percent_deadbands(client: Client, engine: FakeEngine) -> None:
    received = Received()
    sub = await client.create_subscription(50, received)
    node = await _point(client, CURRENT)  # EURange 0..50: 10 % is 5.0
    absolute = ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValue,
        DeadbandType=ua.DeadbandType.Absolute,
        DeadbandValue=1.0,
    )
    percent = ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValue,
        DeadbandType=ua.DeadbandType.Percent,
        DeadbandValue=10.0,
    )
    await engine.push({"pump1.current": 10.0})
    await _item(sub, node, 1, flt=absolute)
    await _item(sub, node, 2, flt=percent)
    await _item(sub, node, 3)
    await received.settle()
    for value in (10.5, 11.2, 11.9, 13.0, 16.5):
        await engine.push({"pump1.current": value})
        await asyncio.sleep(0.1)
    await received.settle()
    assert [value_of(dv) for dv in received.values[3]] == [10.0, 10.5, 11.2, 11.9, 13.0, 16.5]
    # Absolute 1.0: compared with the last value *sent*, 10.0 → 11.2 → 13.0 → 16.5.
    assert [value_of(dv) for dv in received.values[1]] == [10.0, 11.2, 13.0, 16.5]
    # Percent 10 % of 50 = 5.0: only 16.5 is more than 5 away from 10.0.
    assert [value_of(dv) for dv in received.values[2]] == [10.0, 16.5]
    # A quality change passes any deadband.
    await engine.push({"pump1.current": 16.6}, quality=Quality.UNCERTAIN)
    await received.settle()
    assert status_of(received.values[1][-1]).value == StatusCodes.Uncertain
    assert value_of(received.values[2][-1]) == 16.6
    await sub.delete()


async def test_queue_size_discard_policy_and_overflow_bit(
    client: Client, engine: FakeEngine
) -> None:
    received = Received()
    # A long publishing interval: five changes land between two publishes.
    sub = await client.create_subscription(1500, received)
    node = await _point(client, CURRENT)
    await engine.push({"pump1.current": 0.0})
    await _item(sub, node, 1, queue_size=1)
    await _item(sub, node, 2, queue_size=3, discard_oldest=True)
    await _item(sub, node, 3, queue_size=3, discard_oldest=False)
    await received.settle(2.0)
    for handle in (1, 2, 3):
        received.values[handle] = []
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        await engine.push({"pump1.current": value})
    await received.settle(2.0)
    latest = received.values[1]
    assert [value_of(dv) for dv in latest] == [5.0]
    assert not status_of(latest[0]).value & _OVERFLOW_BITS  # queue size 1: no overflow bit
    oldest_dropped = received.values[2]
    assert [value_of(dv) for dv in oldest_dropped] == [3.0, 4.0, 5.0]
    assert status_of(oldest_dropped[0]).value & _OVERFLOW_BITS == _OVERFLOW_BITS
    assert not status_of(oldest_dropped[1]).value & _OVERFLOW_BITS
    newest_dropped = received.values[3]
    assert [value_of(dv) for dv in newest_dropped] == [1.0, 2.0, 5.0]
    assert status_of(newest_dropped[-1]).value & _OVERFLOW_BITS == _OVERFLOW_BITS
    await sub.delete()


async def test_status_trigger_monitoring_mode_and_deleted_items(
    client: Client, engine: FakeEngine
) -> None:
    received = Received()
    sub = await client.create_subscription(50, received)
    node = await _point(client, CURRENT)
    status_only = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.Status)
    await _item(sub, node, 1, flt=status_only)
    await _item(sub, node, 2, mode=ua.MonitoringMode.Disabled)
    deleted = await _item(sub, node, 3)
    await received.settle()
    assert 2 not in received.values  # Disabled: nothing is reported
    await sub.unsubscribe(deleted)
    received.values.pop(3, None)
    await engine.push({"pump1.current": 1.0})
    await asyncio.sleep(0.1)
    await engine.push({"pump1.current": 2.0})
    await received.settle()
    # Status trigger: the first good value is a status change, the second is not.
    assert [value_of(dv) for dv in received.values[1][1:]] == [1.0]
    assert 2 not in received.values
    assert 3 not in received.values
    await sub.set_monitoring_mode(ua.MonitoringMode.Reporting)  # every item of the subscription
    await received.settle()
    assert value_of(received.values[2][-1]) == 2.0  # enabled: the current value first
    await engine.push({"pump1.current": 3.0})
    await received.settle()
    assert value_of(received.values[2][-1]) == 3.0
    await sub.delete()


async def test_many_subscriptions_each_get_every_change(client: Client, engine: FakeEngine) -> None:
    receivers = [Received() for _ in range(3)]
    subs = []
    points = {
        "pump1.current": CURRENT,
        "pump1.starts": STARTS,
        "boiler1.temperature": "demo/boilerhouse/boiler1/Points/temperature",
    }
    for received in receivers:
        sub = await client.create_subscription(50, received)
        for handle, path in enumerate(points.values()):
            await _item(sub, await _point(client, path), handle)
        subs.append(sub)
    for received in receivers:
        await received.settle()  # the first values, before any change replaces them
    for n in range(1, 4):
        await engine.push(dict.fromkeys(points, float(n)))
        await asyncio.sleep(0.12)
    for received in receivers:
        await received.settle()
        for handle in range(len(points)):
            values = [value_of(dv) for dv in received.values[handle][1:]]
            assert values == [1, 2, 3]
    # One subscription gone: the others still get everything.
    await subs[0].delete()
    await engine.push(dict.fromkeys(points, 4.0))
    for received in receivers[1:]:
        await received.settle()
        assert value_of(received.values[0][-1]) == 4.0
    for sub in subs[1:]:
        await sub.delete()
