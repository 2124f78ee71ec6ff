"""Data-change monitored items on point values, fed from the table's changed slots.

asyncua delivers a value change by writing it into the node, calling every
monitored item's callback, deep-copying the DataValue per item and comparing it
with the item's previous copy — about 40 µs per item and change, so one client
watching 10,000 points that change every second kept a core busy.  Here the
engine hands over the table indices that changed after each poll; the items
watching them are found through index arrays, the trigger and deadband of every
item are checked in a few numpy operations, one DataValue is made per changed
point (shared by every item that shows it: nothing mutates it later), and each
notification goes straight into its subscription's queue — with the item's
queue size and discard policy applied as Part 4 §5.12.1.5 says, setting the
Overflow bit when a value had to be dropped.

Items with a queue of one (what HMIs ask for, and the default) do not even get
notification objects: the latest value of each is kept in arrays beside its
slot, and when its subscription publishes, all of them are encoded at once by
:mod:`.encoding`.  A value replaced before the publish costs an array write.

Items are created by asyncua's own CreateMonitoredItems service, which calls
:meth:`PointSubscriptions.add` through :class:`.compat.ViewAddressSpace`;
asyncua still sends each item's first value itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from asyncua import ua

from plantguard.table import ValueTable

from .encoding import NULL, data_change_notification, encode_items, to_ticks
from .quality import STATUS_CODES
from .values import PointValues

__all__ = ["PointSubscriptions"]

log = logging.getLogger(__name__)

#: StatusCode InfoBits: "InfoType DataValue" with "Overflow" (Part 4 §7.39.1).
_OVERFLOW_BITS = 0x0400 | 0x0080
_STATUS, _STATUS_VALUE = 0, 1  # DataChangeTrigger values
#: The numeric StatusCode of each quality byte.
_STATUS_OF_QUALITY = np.array([code.value for code in STATUS_CODES], dtype=np.uint32)


@dataclass(slots=True)
class _Target:
    """Where a slot's notifications go, resolved from asyncua's item data."""

    subscription: Any  # asyncua InternalSubscription
    mid: int
    client_handle: int
    queue_size: int
    discard_oldest: bool

    @property
    def latest_only(self) -> bool:
        """Only the latest value is kept, and the subscription is a client's (whose
        publishes are encoded, not handed to Python callbacks)."""
        return self.queue_size == 1 and self.subscription.pub_request_callback is not None


#: Per-slot columns: (dtype, value of a free slot).
_COLUMNS: dict[str, tuple[Any, Any]] = {
    "point": (np.intp, 0),
    "alive": (bool, False),
    # asyncua's data-change handle and the id() of the item's MonitoredItemService:
    # plain numbers, so that 10,000 items add no objects for the garbage collector.
    "datachange_handle": (np.int64, 0),
    "service": (np.int64, 0),
    "resolved": (bool, False),
    "last_value": (np.float64, np.nan),
    "last_quality": (np.uint8, 0),
    "deadband": (np.float64, 0.0),
    "trigger": (np.uint8, _STATUS_VALUE),
    "handle": (np.uint32, 0),  # the client's handle
    "subscription": (np.intp, -1),  # key of the slot's _Held record, -1 for none
    "latest_only": (bool, False),
    # The value waiting for the next publish, for latest-only slots.
    "pending": (bool, False),
    "pending_value": (np.float64, np.nan),
    "pending_quality": (np.uint8, 0),
    "pending_source": (np.float64, 0.0),
    "pending_server": (np.float64, 0.0),
}


class PointSubscriptions:
    """Every data-change item on a point value, as columns over item slots."""

    def __init__(self, table: ValueTable, values: PointValues) -> None:
        self._table = table
        self._values = values
        self._items: dict[int, int] = {}  # asyncua's data-change handle → slot
        self._free: list[int] = []
        self._col = {name: np.full(64, fill, dtype=dt_) for name, (dt_, fill) in _COLUMNS.items()}
        #: The MonitoredItemServices of the items, by id (a few: one per subscription).
        self._services: dict[int, Any] = {}
        #: Slots with longer queues (or of the server's own subscriptions) and their targets.
        self._targets: dict[int, _Target] = {}
        #: Client subscriptions whose publishes this encodes, by key.
        self._held: dict[int, _Held] = {}
        self._next_key = 0
        #: Items whose asyncua data must be (re-)read; the index arrays need rebuilding.
        self._unresolved: set[int] = set()
        self._dirty = True
        # Built by _rebuild: live slots grouped by point.
        self._subscribed = np.zeros(len(table), dtype=bool)
        self._order = np.zeros(0, dtype=np.intp)
        self._starts = np.zeros(len(table), dtype=np.intp)
        self._counts = np.zeros(len(table), dtype=np.intp)

    def __contains__(self, handle: int) -> bool:
        return handle in self._items

    def __len__(self) -> int:
        return len(self._items)

    # --- items ----------------------------------------------------------------------------

    def add(self, handle: int, index: int, callback: Callable[..., Any]) -> None:
        """A new item on table slot ``index``; ``callback`` is asyncua's bound
        ``MonitoredItemService.datachange_callback`` of the item's subscription."""
        slot = self._free.pop() if self._free else self._grow()
        self._items[handle] = slot
        service = getattr(callback, "__self__", None)
        col = self._col
        for name, (_dtype, fill) in _COLUMNS.items():
            col[name][slot] = fill
        col["point"][slot] = index
        col["alive"][slot] = True
        col["datachange_handle"][slot] = handle
        col["service"][slot] = id(service)
        self._services[id(service)] = service
        col["last_value"][slot] = self._values.last[index]
        col["last_quality"][slot] = self._table.quality[index]
        self._targets.pop(slot, None)
        self._unresolved.add(handle)
        self._dirty = True

    def remove(self, handle: int) -> None:
        slot = self._items.pop(handle, None)
        if slot is None:
            return
        self._col["alive"][slot] = False
        self._col["resolved"][slot] = False
        self._col["pending"][slot] = False
        self._targets.pop(slot, None)
        self._free.append(slot)
        self._unresolved.discard(handle)
        self._dirty = True

    def created(self) -> None:
        """Items were created: resolve the new ones (they are known already)."""
        self._dirty = True

    def changed(self) -> None:
        """Items were modified (filter, queue size, monitoring mode): re-read them all."""
        self._unresolved.update(self._items)
        self._dirty = True

    def _grow(self) -> int:
        slot = len(self._items) + len(self._free)
        capacity = self._col["alive"].size
        if slot >= capacity:
            for name, (dtype, fill) in _COLUMNS.items():
                self._col[name] = np.concatenate(
                    [self._col[name], np.full(capacity, fill, dtype=dtype)]
                )
        return slot

    def _rebuild(self) -> None:
        """Resolve new or changed items and group the live slots by point."""
        col = self._col
        unresolved = [h for h in self._unresolved if h in self._items]
        self._unresolved.clear()
        for handle in unresolved:
            slot = self._items[handle]
            service = self._services.get(int(col["service"][slot]))
            target, deadband, trigger = self._resolve(handle, service)
            col["deadband"][slot] = deadband
            col["trigger"][slot] = trigger
            col["resolved"][slot] = target is not None
            self._targets.pop(slot, None)
            if target is None:
                if service is not None and handle not in service._monitored_datachange:
                    self._unresolved.add(handle)  # still being created: next time
                continue
            col["handle"][slot] = target.client_handle
            col["latest_only"][slot] = target.latest_only
            if target.latest_only:
                col["subscription"][slot] = self._adopt(target.subscription)
            else:
                col["subscription"][slot] = -1
                self._targets[slot] = target
        live = np.flatnonzero(col["alive"] & col["resolved"])
        col["pending"][~col["latest_only"]] = False
        points = col["point"][live]
        order = np.argsort(points, kind="stable")
        self._order = live[order]
        n = len(self._table)
        self._counts = np.bincount(points, minlength=n).astype(np.intp)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.intp)
        self._subscribed = self._counts > 0
        owner = col["subscription"][live]
        for key, held in list(self._held.items()):
            held.slots = live[owner == key]
            if held.slots.size == 0:
                del self._held[key]  # its items are gone: forget the subscription
        in_use = set(col["service"][col["alive"]].tolist())
        for key in [k for k in self._services if k not in in_use]:
            del self._services[key]
        self._dirty = bool(self._unresolved)

    @staticmethod
    def _resolve(handle: int, service: Any) -> tuple[_Target | None, float, int]:
        mid = service._monitored_datachange.get(handle) if service is not None else None
        mdata = service._monitored_items.get(mid) if mid is not None else None
        if mid is None or mdata is None or mdata.mode != ua.MonitoringMode.Reporting:
            return None, 0.0, _STATUS_VALUE  # Disabled, or Sampling: nothing is reported
        flt = mdata.filter
        deadband, trigger = 0.0, _STATUS_VALUE
        if flt is not None and hasattr(flt, "DeadbandType"):  # a DataChangeFilter
            trigger = min(int(flt.Trigger), _STATUS_VALUE)
            kind = int(flt.DeadbandType)  # decoded as a plain int
            if kind == ua.DeadbandType.Absolute.value:
                deadband = float(flt.DeadbandValue)
            elif kind == ua.DeadbandType.Percent.value:
                deadband = (
                    float(getattr(mdata, "percent_deadband_span", 0.0))
                    * float(flt.DeadbandValue)
                    / 100.0
                )
        target = _Target(
            subscription=service.isub,
            mid=mid,
            client_handle=mdata.client_handle,
            queue_size=int(mdata.queue_size),
            discard_oldest=bool(getattr(mdata, "discard_oldest", True)),
        )
        return target, deadband, trigger

    # --- delivery ---------------------------------------------------------------------------

    async def on_changes(self, indices: npt.NDArray[np.intp]) -> None:
        """The engine's values listener: publish the slots at ``indices``."""
        if indices.size == 0:
            return
        published = self._values.refresh(indices)
        if not self._items:
            return
        if self._dirty:
            self._rebuild()
        mask = self._subscribed[indices]
        if not mask.any():
            return
        points = indices[mask]
        values = published[mask]
        counts = self._counts[points]
        total = int(counts.sum())
        if total == 0:
            return
        col = self._col
        # Every slot watching one of ``points``: each point's run in the grouped order.
        first = np.repeat(self._starts[points] - np.cumsum(counts) + counts, counts)
        slots = self._order[first + np.arange(total)]
        which = np.repeat(np.arange(points.size), counts)
        value = values[which]
        quality = self._table.quality[points][which]
        last = col["last_value"][slots]
        status_changed = quality != col["last_quality"][slots]
        value_changed = ~((value == last) | (np.isnan(value) & np.isnan(last)))
        passes = status_changed | (value_changed & (col["trigger"][slots] == _STATUS_VALUE))
        deadband = col["deadband"][slots]
        banded = value_changed & ~status_changed & (deadband > 0) & ~np.isnan(last)
        if banded.any():
            passes &= ~banded | (np.abs(value - last) > deadband)
        if not passes.any():
            return
        slots, which = slots[passes], which[passes]
        col["last_value"][slots] = value[passes]
        col["last_quality"][slots] = quality[passes]
        simple = col["latest_only"][slots]
        if simple.any():
            self._hold(
                slots[simple], value[passes][simple], quality[passes][simple], points[which[simple]]
            )
        if not simple.all():
            await self._enqueue(slots[~simple], which[~simple], points)

    def _hold(
        self,
        slots: npt.NDArray[np.intp],
        value: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        points: npt.NDArray[np.intp],
    ) -> None:
        """Keep the latest value of latest-only slots until their subscription publishes."""
        col = self._col
        col["pending"][slots] = True
        col["pending_value"][slots] = value
        col["pending_quality"][slots] = quality
        col["pending_source"][slots] = self._table.source_time[points]
        col["pending_server"][slots] = time.time()
        for key in np.unique(col["subscription"][slots]).tolist():
            held = self._held.get(key)
            if held is not None:
                held.pending = True

    async def _enqueue(
        self,
        slots: npt.NDArray[np.intp],
        which: npt.NDArray[np.intp],
        points: npt.NDArray[np.intp],
    ) -> None:
        """Items with longer queues (or of the server's own subscriptions): one
        notification object each, queued the way asyncua queues them."""
        made: dict[int, ua.DataValue] = {}
        touched: dict[int, Any] = {}
        for slot, n in zip(slots.tolist(), which.tolist(), strict=True):
            target = self._targets.get(slot)
            if target is None:
                continue
            datavalue = made.get(n)
            if datavalue is None:
                # ``values`` were just taken as published: the slot's current DataValue.
                datavalue = made[n] = self._values.datavalue(int(points[n]))
            notification = ua.MonitoredItemNotification(
                ClientHandle=target.client_handle, Value=datavalue
            )
            subscription = target.subscription
            _put(subscription._triggered_datachanges, target, notification)
            touched[id(subscription)] = subscription
        for subscription in touched.values():
            await subscription._trigger_publish()

    # --- publishing -------------------------------------------------------------------------

    def _adopt(self, subscription: Any) -> int:
        """Let ``subscription``'s publishes include this module's held values; its key."""
        for key, held in self._held.items():
            if held.subscription is subscription:
                return key
        key = self._next_key
        self._next_key += 1
        held = self._held[key] = _Held(subscription)
        if not getattr(subscription, "_plantguard_adopted", False):
            _patch_publishing(subscription, self)
        subscription._plantguard_key = key
        return key

    def held_for(self, subscription: Any) -> _Held | None:
        held = self._held.get(getattr(subscription, "_plantguard_key", -1))
        return held if held is not None and held.subscription is subscription else None

    def take(self, held: _Held) -> tuple[bytes, int]:
        """Encode and clear the held values of one subscription."""
        held.pending = False
        col = self._col
        mine = held.slots
        ready = mine[col["pending"][mine]]
        if ready.size == 0:
            return b"", 0
        col["pending"][ready] = False
        statuses = _STATUS_OF_QUALITY[col["pending_quality"][ready]]
        variants = self._values.variant[col["point"][ready]].copy()
        variants[statuses >= 0x80000000] = NULL  # Part 4 §7.7.1: Bad carries no value
        encoded = encode_items(
            handles=col["handle"][ready],
            variants=variants,
            values=col["pending_value"][ready],
            statuses=statuses,
            source_seconds=col["pending_source"][ready],
            server_ticks=to_ticks(col["pending_server"][ready]),
        )
        return encoded, int(ready.size)


@dataclass(slots=True)
class _Held:
    """A client subscription with latest-value items, and whether any has a value waiting."""

    subscription: Any  # asyncua InternalSubscription
    slots: npt.NDArray[np.intp] = dataclasses.field(
        default_factory=lambda: np.zeros(0, dtype=np.intp)
    )
    pending: bool = False


def _patch_publishing(subscription: Any, points: PointSubscriptions) -> None:
    """Make an asyncua subscription publish the values ``points`` holds for it.

    asyncua decides whether to publish from its own queues and builds the
    DataChangeNotification from them; both steps now also ask ``points``.
    """
    has_results = subscription.has_published_results
    pop_queued = subscription._pop_triggered_datachanges

    def has_published_results(sub: Any) -> bool:
        held = points.held_for(sub)
        if held is not None and held.pending and sub._publishing_enabled:
            return True
        return bool(has_results())

    def pop_triggered_datachanges(sub: Any, result: ua.PublishResult) -> None:
        held = points.held_for(sub)
        encoded, count = points.take(held) if held is not None else (b"", 0)
        if count == 0:
            pop_queued(result)
            return
        queued = [n for items in sub._triggered_datachanges.values() for n in items]
        sub._triggered_datachanges = {}
        notification = data_change_notification(queued, encoded, count)
        result.NotificationMessage.NotificationData.append(notification)

    subscription.has_published_results = types.MethodType(has_published_results, subscription)
    subscription._pop_triggered_datachanges = types.MethodType(
        pop_triggered_datachanges, subscription
    )
    subscription._plantguard_adopted = True


def _put(queues: dict[int, list[Any]], target: _Target, notification: Any) -> None:
    """Queue one notification with the item's queue size and discard policy."""
    queue = queues.get(target.mid)
    if queue is None:
        queues[target.mid] = [notification]
        return
    size = target.queue_size
    if size <= 0 or len(queue) < size:
        queue.append(notification)
        return
    if target.discard_oldest:
        queue.pop(0)
        queue.append(notification)
        if size > 1:
            queue[0] = _overflowed(queue[0])
    else:
        queue[-1] = _overflowed(notification) if size > 1 else notification


def _overflowed(notification: Any) -> Any:
    value = notification.Value
    code = value.StatusCode.value if value.StatusCode is not None else 0
    marked = dataclasses.replace(value, StatusCode=ua.StatusCode(ua.UInt32(code | _OVERFLOW_BITS)))
    return ua.MonitoredItemNotification(ClientHandle=notification.ClientHandle, Value=marked)
