"""What one OPC UA client may hold on the gateway: sessions, items, queued notifications.

A client that subscribes and then stops reading — frozen, on a slow link, or
hostile — must cost the gateway a bounded amount.  asyncua gives every data
item that asks for queue size 0 its maximum (10,000 values) and bounds neither
the items of a session nor the sessions of one client, so a frozen client
watching 5,000 points grew the gateway by ~18 MB a minute.  The limits here are
applied when items are created or modified, by *revising* what the client asked
for (Part 4 §5.12.2: the server returns the revised queue size), so a running
subscription never needs to be trimmed:

* each data item's queue is at most ``max_queue_size`` (0 asks for 1, Part 4
  §5.12.1.5); each event item's at most ``max_event_queue_size``;
* the queues of all items of one session together hold at most
  ``max_queued_per_session`` notifications: an item created when the budget is
  spent gets a queue of one, whatever it asked for.  When a queue is full the
  oldest value is dropped and the Overflow bit set (``discard_oldest``), as
  Part 4 specifies — see :mod:`.subscriptions`;
* a session holds at most ``max_monitored_items_per_session`` items
  (``BadTooManyMonitoredItems``), a client address at most
  ``max_sessions_per_client`` sessions (``BadTooManySessions``);
* a subscription keeps at most ``max_unacknowledged`` sent messages for
  Republish (asyncua's ``max_unacked_messages_per_subscription``).

So the notifications one session can make the gateway hold are bounded by
``max_queued_per_session`` plus one per item, whatever the client does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ResourceLimits",
    "queued_notifications",
    "revise_items",
    "revise_modified",
    "session_items",
]


class ResourceLimits(BaseModel):
    """``services.opcua.limits`` in the site file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_queue_size: int = Field(100, ge=1, le=10_000, description="per data item")
    max_event_queue_size: int = Field(1_000, ge=1, le=100_000, description="per event item")
    max_queued_per_session: int = Field(
        100_000, ge=1, le=10_000_000, description="sum of a session's item queues"
    )
    max_monitored_items_per_session: int = Field(100_000, ge=1, le=10_000_000)
    max_sessions_per_client: int = Field(10, ge=1, le=10_000, description="per client address")
    max_unacknowledged: int = Field(
        100, ge=2, le=5_000, description="sent messages kept per subscription for Republish"
    )


def session_items(subscriptions: Iterable[Any]) -> list[Any]:
    """asyncua's item data of every monitored item in ``subscriptions``."""
    return [
        mdata for sub in subscriptions for mdata in sub.monitored_item_srv._monitored_items.values()
    ]


def revise_items(
    requests: Sequence[ua.MonitoredItemCreateRequest],
    existing: Sequence[Any],
    limits: ResourceLimits,
) -> list[int | None]:
    """Revise the requested queue sizes in place; return a refusal per request.

    ``existing`` are the session's items already created (their ``queue_size``
    counts against the budget).  A refusal is a status code (the item is not
    created); None means the item goes ahead with its revised parameters.
    """
    used = sum(max(int(m.queue_size), 1) for m in existing)
    count = len(existing)
    refusals: list[int | None] = []
    for request in requests:
        if count >= limits.max_monitored_items_per_session:
            refusals.append(StatusCodes.BadTooManyMonitoredItems)
            continue
        is_event = request.ItemToMonitor.AttributeId == AttributeIds.EventNotifier
        cap = limits.max_event_queue_size if is_event else limits.max_queue_size
        asked = int(request.RequestedParameters.QueueSize)
        if asked == 0:
            asked = cap if is_event else 1  # Part 4: data items asking 0 get one
        size = max(1, min(asked, cap, limits.max_queued_per_session - used))
        request.RequestedParameters.QueueSize = size
        used += size
        count += 1
        refusals.append(None)
    return refusals


def revise_modified(
    requests: Sequence[ua.MonitoredItemModifyRequest],
    items: dict[int, Any],
    existing: Sequence[Any],
    limits: ResourceLimits,
) -> None:
    """Revise the queue sizes of ModifyMonitoredItems requests in place, within the budget."""
    used = sum(max(int(m.queue_size), 1) for m in existing)
    for request in requests:
        mdata = items.get(request.MonitoredItemId)
        if mdata is None:
            continue
        read = mdata.read_value_id
        is_event = read is not None and read.AttributeId == AttributeIds.EventNotifier
        cap = limits.max_event_queue_size if is_event else limits.max_queue_size
        asked = int(request.RequestedParameters.QueueSize) or (cap if is_event else 1)
        current = max(int(mdata.queue_size), 1)
        size = max(1, min(asked, cap, limits.max_queued_per_session - used + current))
        request.RequestedParameters.QueueSize = size
        used += size - current


def queued_notifications(subscriptions: Iterable[Any]) -> int:
    """Notifications the server holds for ``subscriptions``: queued, and sent but unacknowledged.

    What a stalled client costs the gateway; the latest-value items of
    :mod:`.subscriptions` add at most one value per item on top.
    """
    total = 0
    for sub in subscriptions:
        total += sum(len(queue) for queue in sub._triggered_datachanges.values())
        total += sum(len(queue) for queue in sub._triggered_events.values())
        for result in sub._not_acknowledged_results.values():
            for data in result.NotificationMessage.NotificationData:
                items = getattr(data, "MonitoredItems", None) or getattr(data, "Events", None)
                total += len(items or ())
    return total
