"""What one OPC UA client may hold on the gateway, with a real server and real clients.

The frozen subscriber: a client subscribes to every point asking for huge queues,
then stops sending Publish requests while the plant keeps changing.  The server's
memory is measured by what it holds for that client (queued and unacknowledged
notifications, counted on the server's own subscriptions), not by RSS, so the
bound is exact and the test cannot be fooled by the allocator.
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
from asyncua.ua.uaerrors import UaStatusCodeError
from asyncua_typed import numeric_id, status_of, string_id
from opcua_engine import FakeEngine

from plantguard.model import Site
from plantguard_opcua import NAMESPACE_URI, OpcUaOptions, OpcUaService
from plantguard_opcua.limits import (
    ResourceLimits,
    queued_notifications,
    revise_items,
    session_items,
)

pytestmark = pytest.mark.integration

POINTS = 200
OPEN: dict[str, Any] = {"security": ["none"], "anonymous": True}
LIMITS = ResourceLimits(
    max_queue_size=50,
    max_queued_per_session=1_000,
    max_monitored_items_per_session=POINTS + 5,
    max_sessions_per_client=3,
)
_OVERFLOW_BITS = 0x0480


def _site() -> Site:
    points = [{"id": f"p{i}", "name": f"Point {i}", "unit": "bar"} for i in range(POINTS)]
    device = {"id": "dev", "name": "Device", "driver": "modbus", "points": points}
    area = {"id": "area", "name": "Area", "devices": [device]}
    return Site.model_validate({"id": "site", "name": "Site", "areas": [area]})


@pytest.fixture
async def served() -> AsyncIterator[tuple[OpcUaService, FakeEngine]]:
    engine = FakeEngine(_site())
    svc = OpcUaService(OpcUaOptions(host="127.0.0.1", port=0, limits=LIMITS, **OPEN))
    await svc.start(engine)
    try:
        yield svc, engine
    finally:
        await svc.stop()


def _request(node_id: ua.NodeId, handle: int, queue_size: int) -> ua.MonitoredItemCreateRequest:
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=ua.MonitoringParameters(
            ClientHandle=handle, SamplingInterval=0.0, QueueSize=queue_size, DiscardOldest=True
        ),
    )


async def _nodes(client: Client, count: int) -> list[ua.NodeId]:
    ns = await client.get_namespace_index(NAMESPACE_URI)
    return [string_id(f"site/area/dev/Points/p{i}", ns) for i in range(count)]


def _server_subscriptions(svc: OpcUaService) -> list[Any]:
    assert svc.server is not None
    return list(svc.server.iserver.subscription_service.subscriptions.values())


class Collect:
    def __init__(self) -> None:
        self.values: list[ua.DataValue] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        pass


async def test_a_frozen_subscriber_costs_a_bounded_number_of_notifications(
    served: tuple[OpcUaService, FakeEngine],
) -> None:
    svc, engine = served
    async with Client(svc.endpoint) as client:
        received = Collect()
        sub = await client.create_subscription(50, received)
        # Half ask for asyncua's "server maximum" (0 on a data item means one),
        # half for a queue of 10,000 values each.
        nodes = [client.get_node(n) for n in await _nodes(client, POINTS)]
        for handle in await sub.subscribe_data_change(nodes[::2], queuesize=10_000):
            assert isinstance(handle, int), handle
        for handle in await sub.subscribe_data_change(nodes[1::2], queuesize=0):
            assert isinstance(handle, int), handle
        revised = [item.queue_size for item in session_items(_server_subscriptions(svc))]
        assert len(revised) == POINTS
        assert max(revised) == LIMITS.max_queue_size
        assert revised.count(1) >= POINTS // 2
        assert sum(revised) <= LIMITS.max_queued_per_session + POINTS
        await asyncio.sleep(0.5)  # the first values are published

        # Freeze: no more Publish requests from this client.
        task = client.uaclient._publish_task
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # The Publish request the client had sent before it froze is answered (into
        # the void) by the first change; from then on the server has none to answer.
        await engine.push({f"dev.p{i}": -1.0 for i in range(POINTS)})
        await asyncio.sleep(0.3)
        for step in range(300):
            await engine.push({f"dev.p{i}": float(step) for i in range(POINTS)})
        held = queued_notifications(_server_subscriptions(svc))
        # 300 changes of 200 points: 60,000 notifications without limits.
        assert 0 < held <= LIMITS.max_queued_per_session
        # Per item: never more than its revised queue.
        for server_sub in _server_subscriptions(svc):
            for queue in server_sub._triggered_datachanges.values():
                assert len(queue) <= LIMITS.max_queue_size

        # The client wakes up: what was dropped is marked with the Overflow bit.
        before = len(received.values)
        client.uaclient.ensure_publish_loop()
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len(received.values) - before >= held:
                break
        late = received.values[before:]
        assert any(status_of(v).value & _OVERFLOW_BITS == _OVERFLOW_BITS for v in late)
        assert queued_notifications(_server_subscriptions(svc)) < held


async def test_items_past_the_session_limit_are_refused(
    served: tuple[OpcUaService, FakeEngine],
) -> None:
    svc, _ = served
    async with Client(svc.endpoint) as client:
        sub = await client.create_subscription(100, Collect())
        nodes = await _nodes(client, POINTS)
        requests = [_request(nodes[i % POINTS], i, 1) for i in range(POINTS + 10)]
        results = await sub.server.create_monitored_items(
            ua.CreateMonitoredItemsParameters(
                SubscriptionId=sub.subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=requests,
            )
        )
        codes = [r.StatusCode.value for r in results]
        allowed = LIMITS.max_monitored_items_per_session
        assert all(c == StatusCodes.Good for c in codes[:allowed])
        assert codes[allowed:] == [StatusCodes.BadTooManyMonitoredItems] * (len(codes) - allowed)


async def test_modify_cannot_lift_a_queue_past_the_limits(
    served: tuple[OpcUaService, FakeEngine],
) -> None:
    svc, _ = served
    async with Client(svc.endpoint) as client:
        sub = await client.create_subscription(100, Collect())
        (node,) = await _nodes(client, 1)
        (created,) = await sub.server.create_monitored_items(
            ua.CreateMonitoredItemsParameters(
                SubscriptionId=sub.subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=[_request(node, 1, 1)],
            )
        )
        for asked, expected in ((1_000_000, LIMITS.max_queue_size), (0, 1)):
            (modified,) = await sub.server.modify_monitored_items(
                ua.ModifyMonitoredItemsParameters(
                    SubscriptionId=sub.subscription_id,
                    TimestampsToReturn=ua.TimestampsToReturn.Both,
                    ItemsToModify=[
                        ua.MonitoredItemModifyRequest(
                            MonitoredItemId=created.MonitoredItemId,
                            RequestedParameters=ua.MonitoringParameters(
                                ClientHandle=1, SamplingInterval=0.0, QueueSize=asked
                            ),
                        )
                    ],
                )
            )
            assert modified.RevisedQueueSize == expected
            (item,) = session_items(_server_subscriptions(svc))
            assert item.queue_size == expected


async def test_sessions_past_the_client_limit_are_refused_and_freed_on_close(
    served: tuple[OpcUaService, FakeEngine],
) -> None:
    svc, _ = served
    clients = [Client(svc.endpoint) for _ in range(LIMITS.max_sessions_per_client)]
    for c in clients:
        await c.connect()
    try:
        extra = Client(svc.endpoint)
        with pytest.raises(UaStatusCodeError) as refused:
            await extra.connect()
        assert refused.value.code == StatusCodes.BadTooManySessions
        extra.disconnect_socket()
        await clients.pop().disconnect()
        again = Client(svc.endpoint)
        await again.connect()  # a closed session frees its place
        clients.append(again)
    finally:
        for c in clients:
            await c.disconnect()


def test_event_items_get_the_event_cap_and_the_budget_is_shared() -> None:
    limits = ResourceLimits(max_queue_size=10, max_event_queue_size=100, max_queued_per_session=150)
    event = ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(
            NodeId=numeric_id(2253), AttributeId=AttributeIds.EventNotifier
        ),
        RequestedParameters=ua.MonitoringParameters(QueueSize=0),
    )
    data = [_request(numeric_id(i, 2), i, 50) for i in range(8)]
    assert revise_items([event, *data], [], limits) == [None] * 9
    sizes = [r.RequestedParameters.QueueSize for r in (event, *data)]
    # The event item takes its cap, the data items 10 each until the budget runs out.
    assert sizes == [100, 10, 10, 10, 10, 10, 1, 1, 1]
