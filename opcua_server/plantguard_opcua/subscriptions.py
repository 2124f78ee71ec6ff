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

Items are created by asyncua's own CreateMonitoredItems service, which calls
:meth:`PointSubscriptions.add` through :class:`.compat.ViewAddressSpace`;
asyncua still sends each item's first value itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from asyncua import ua

from plantguard.table import ValueTable

from .quality import STATUS_CODES
from .values import PointValues, to_datetime

__all__ = ["PointSubscriptions"]

log = logging.getLogger(__name__)

#: StatusCode InfoBits: "InfoType DataValue" with "Overflow" (Part 4 §7.39.1).
_OVERFLOW_BITS = 0x0400 | 0x0080
_STATUS, _STATUS_VALUE = 0, 1  # DataChangeTrigger values


@dataclass(slots=True)
class _Item:
    """One monitored item on a point's Value."""

    handle: int
    index: int
    service: Any  # asyncua MonitoredItemService of the item's subscription
    slot: int


@dataclass(slots=True)
class _Target:
    """Where a slot's notifications go, resolved from asyncua's item data."""

    subscription: Any  # asyncua InternalSubscription
    mid: int
    client_handle: int
    queue_size: int
    discard_oldest: bool


class PointSubscriptions:
    """Every data-change item on a point value, as index arrays over item slots."""

    def __init__(self, table: ValueTable, values: PointValues) -> None:
        self._table = table
        self._values = values
        self._items: dict[int, _Item] = {}
        self._free: list[int] = []
        capacity = 64
        self._point = np.zeros(capacity, dtype=np.intp)
        self._alive = np.zeros(capacity, dtype=bool)
        self._last_value = np.full(capacity, np.nan)
        self._last_quality = np.zeros(capacity, dtype=np.uint8)
        self._deadband = np.zeros(capacity)
        self._trigger = np.full(capacity, _STATUS_VALUE, dtype=np.uint8)
        self._targets: list[_Target | None] = [None] * capacity
        self._dirty = True
        # Built by _rebuild: slots grouped by point.
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
        self._items[handle] = _Item(handle, index, getattr(callback, "__self__", None), slot)
        self._point[slot] = index
        self._alive[slot] = True
        self._last_value[slot] = self._values.last[index]
        self._last_quality[slot] = self._table.quality[index]
        self._targets[slot] = None
        self._dirty = True

    def remove(self, handle: int) -> None:
        item = self._items.pop(handle, None)
        if item is None:
            return
        self._alive[item.slot] = False
        self._targets[item.slot] = None
        self._free.append(item.slot)
        self._dirty = True

    def changed(self) -> None:
        """Items were modified (filter, queue size, monitoring mode): re-read them."""
        self._dirty = True

    def _grow(self) -> int:
        slot = len(self._items) + len(self._free)
        capacity = self._point.size
        if slot >= capacity:
            more = capacity
            self._point = np.concatenate([self._point, np.zeros(more, dtype=np.intp)])
            self._alive = np.concatenate([self._alive, np.zeros(more, dtype=bool)])
            self._last_value = np.concatenate([self._last_value, np.full(more, np.nan)])
            self._last_quality = np.concatenate(
                [self._last_quality, np.zeros(more, dtype=np.uint8)]
            )
            self._deadband = np.concatenate([self._deadband, np.zeros(more)])
            self._trigger = np.concatenate(
                [self._trigger, np.full(more, _STATUS_VALUE, dtype=np.uint8)]
            )
            self._targets.extend([None] * more)
        return slot

    def _rebuild(self) -> None:
        """Resolve each slot's asyncua item and group the live slots by point."""
        for item in self._items.values():
            target, deadband, trigger = self._resolve(item)
            self._targets[item.slot] = target
            self._deadband[item.slot] = deadband
            self._trigger[item.slot] = trigger
        live = np.flatnonzero(self._alive[: len(self._targets)])
        live = live[[self._targets[s] is not None for s in live.tolist()]]
        points = self._point[live]
        order = np.argsort(points, kind="stable")
        self._order = live[order]
        n = len(self._table)
        self._counts = np.bincount(points, minlength=n).astype(np.intp)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.intp)
        self._subscribed = self._counts > 0
        self._dirty = any(self._targets[i.slot] is None for i in self._items.values())

    def _resolve(self, item: _Item) -> tuple[_Target | None, float, int]:
        service = item.service
        mid = service._monitored_datachange.get(item.handle) if service is not None else None
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
        # Every slot watching one of ``points``: each point's run in the grouped order.
        first = np.repeat(self._starts[points] - np.cumsum(counts) + counts, counts)
        slots = self._order[first + np.arange(total)]
        which = np.repeat(np.arange(points.size), counts)
        value = values[which]
        quality = self._table.quality[points][which]
        last = self._last_value[slots]
        status_changed = quality != self._last_quality[slots]
        value_changed = ~((value == last) | (np.isnan(value) & np.isnan(last)))
        passes = status_changed | (value_changed & (self._trigger[slots] == _STATUS_VALUE))
        deadband = self._deadband[slots]
        banded = value_changed & ~status_changed & (deadband > 0) & ~np.isnan(last)
        if banded.any():
            passes &= ~banded | (np.abs(value - last) > deadband)
        if not passes.any():
            return
        slots, which = slots[passes], which[passes]
        self._last_value[slots] = value[passes]
        self._last_quality[slots] = quality[passes]
        await self._enqueue(slots, which, points, values)

    async def _enqueue(
        self,
        slots: npt.NDArray[np.intp],
        which: npt.NDArray[np.intp],
        points: npt.NDArray[np.intp],
        values: npt.NDArray[np.float64],
    ) -> None:
        now = cast(ua.DateTime, dt.datetime.now(dt.UTC))
        table = self._table
        made: dict[int, ua.DataValue] = {}
        touched: dict[int, Any] = {}
        for slot, n in zip(slots.tolist(), which.tolist(), strict=True):
            target = self._targets[slot]
            if target is None:
                continue
            datavalue = made.get(n)
            if datavalue is None:
                index = int(points[n])
                status = STATUS_CODES[int(table.quality[index])]
                datavalue = made[n] = ua.DataValue(
                    Value=ua.Variant(None, ua.VariantType.Null)
                    if status.is_bad()
                    else self._values.variant_of(index, float(values[n])),
                    StatusCode=status,
                    SourceTimestamp=to_datetime(float(table.source_time[index])),
                    ServerTimestamp=now,
                )
            notification = ua.MonitoredItemNotification(
                ClientHandle=target.client_handle, Value=datavalue
            )
            subscription = target.subscription
            _put(subscription._triggered_datachanges, target, notification)
            touched[id(subscription)] = subscription
        for subscription in touched.values():
            await subscription._trigger_publish()


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
