"""The HistoryRead service: requests checked, dispatched to the readers, and paged.

:class:`HistoryService` takes the place of asyncua's ``InternalServer.history_manager``
(asyncua calls its ``read_history``, ``update_history`` and ``stop``): it refuses
what Part 11 says to refuse as a whole, sends each node to the raw, processed or
event reader, runs store reads in worker threads, and keeps or resumes their
continuation points.  :func:`install_history` puts it in place and advertises it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from plantguard.alarms import AlarmManager
from plantguard.model import Point, Site
from plantguard.store import Store

from ..compat import subtype_checker
from ..event_filter import SubtypeAwareWhereClause
from ..events import ConditionInfo
from ._capabilities import advertise
from ._continuations import Continuations, Cursor
from ._encoding import history_data
from ._events import EventCursor, EventQuery, Journal
from ._limits import HistoryLimits
from ._nodes import SERVER, PointIndex
from ._processed import ProcessedCursor, ProcessedQuery, processed_values
from ._raw import RawCursor, RawQuery, raw_cursor, raw_page
from ._series import GOOD

__all__ = ["HistoryService", "install_history"]

#: The package's logger, as before it was split into modules.
log = logging.getLogger("plantguard_opcua.history")


def _result(status: int, data: object = None) -> ua.HistoryReadResult:
    result = ua.HistoryReadResult()
    result.StatusCode = ua.StatusCode(ua.UInt32(status))
    result.HistoryData = data if data is not None else ua.ExtensionObject()
    return result


_DATA_TIMESTAMPS: Final = (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both)


class HistoryService:
    """asyncua's ``history_manager``, answering HistoryRead from PlantGuard's store.

    Build it with :func:`install_history`.  Store reads run in worker threads, so a
    long read does not stall the server's other sessions.
    """

    def __init__(
        self,
        server: Server,
        store: Store,
        site: Site,
        ns: int,
        *,
        conditions: Mapping[str, ConditionInfo],
        alarms: AlarmManager,
        limits: HistoryLimits | None = None,
    ) -> None:
        self.server = server
        self.store = store
        self.limits = limits or HistoryLimits()
        self._points = PointIndex(site, ns)
        self._conditions = conditions
        self._journal = Journal(conditions, alarms)
        self._is_subtype = subtype_checker(server.iserver)
        self._continuations = Continuations(
            self.limits.max_continuation_points,
            self.limits.max_held_samples,
            self.limits.continuation_ttl,
        )
        self._notifiers: dict[ua.NodeId, frozenset[str]] = {}
        self._notifiers_of = -1

    # asyncua's HistoryManager interface ---------------------------------------------------------

    async def init(self) -> None:
        """Nothing to prepare: the store is open (asyncua calls this from ``Server.init``)."""

    async def stop(self) -> None:
        self._continuations.clear()

    def update_history(self, params: ua.HistoryUpdateParameters) -> list[ua.HistoryUpdateResult]:
        """History is what devices reported: every update is refused (asyncua calls this
        without awaiting it)."""
        refused = ua.StatusCode(ua.UInt32(StatusCodes.BadHistoryOperationUnsupported))
        return [ua.HistoryUpdateResult(StatusCode=refused) for _ in params.HistoryUpdateDetails]

    async def read_history(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        """The HistoryRead service; a ServiceError becomes the request's ServiceFault."""
        items = list(params.NodesToRead)
        self._check(params, items)
        if params.ReleaseContinuationPoints:
            for item in items:
                if item.ContinuationPoint:
                    self._continuations.release(bytes(item.ContinuationPoint))
            return [_result(GOOD) for _ in items]
        results = []
        for n, item in enumerate(items):
            try:
                results.append(await self._read_one(params.HistoryReadDetails, item, n))
            except Exception:
                log.exception("HistoryRead of %s failed", item.NodeId.to_string())
                results.append(_result(StatusCodes.BadInternalError))
        return results

    def _check(self, params: ua.HistoryReadParameters, items: list[ua.HistoryReadValueId]) -> None:
        """Refuse a request as a whole (Part 4 §5.10.3, Part 11 §4.3)."""
        if not items:
            raise ServiceError(StatusCodes.BadNothingToDo)
        if len(items) > self.limits.max_nodes_per_read:
            raise ServiceError(StatusCodes.BadTooManyOperations)
        details = params.HistoryReadDetails
        if isinstance(details, ua.ReadProcessedDetails) and len(details.AggregateType) != len(
            items
        ):
            raise ServiceError(StatusCodes.BadAggregateListMismatch)
        is_data = isinstance(details, ua.ReadRawModifiedDetails | ua.ReadProcessedDetails)
        if is_data and params.TimestampsToReturn not in _DATA_TIMESTAMPS:
            raise ServiceError(StatusCodes.BadTimestampsToReturnInvalid)

    # dispatch -------------------------------------------------------------------------------------

    async def _read_one(
        self, details: Any, item: ua.HistoryReadValueId, n: int
    ) -> ua.HistoryReadResult:
        if item.ContinuationPoint:
            cursor = self._continuations.take(bytes(item.ContinuationPoint))
            if cursor is None or not self._continues(cursor, details, item.NodeId):
                return _result(StatusCodes.BadContinuationPointInvalid)
            if isinstance(cursor, RawCursor):
                return await self._raw_page(cursor)
            if isinstance(cursor, ProcessedCursor):
                return await self._processed_page(cursor)
            return await self._event_page(cursor)
        if isinstance(details, ua.ReadEventDetails):
            return await self._read_events(details, item.NodeId)
        point = self._points.point(item.NodeId)
        if point is None:
            return _result(self._unsupported(item.NodeId))
        if isinstance(details, ua.ReadRawModifiedDetails) and not details.IsReadModified:
            return await self._read_raw(details, item.NodeId, point)
        if isinstance(details, ua.ReadProcessedDetails):
            return await self._read_processed(details, item.NodeId, point, n)
        return _result(StatusCodes.BadHistoryOperationUnsupported)

    def _unsupported(self, node_id: ua.NodeId) -> int:
        """A node that exists but has no such history, or one that does not exist."""
        if node_id in self.server.iserver.aspace:
            return StatusCodes.BadHistoryOperationUnsupported
        return StatusCodes.BadNodeIdUnknown

    @staticmethod
    def _continues(cursor: Cursor, details: Any, node_id: ua.NodeId) -> bool:
        """A continuation point is valid for the same node and kind of read only."""
        if isinstance(cursor, RawCursor):
            return cursor.node == node_id and isinstance(details, ua.ReadRawModifiedDetails)
        if isinstance(cursor, ProcessedCursor):
            return cursor.node == node_id and isinstance(details, ua.ReadProcessedDetails)
        return cursor.notifier == node_id and isinstance(details, ua.ReadEventDetails)

    # data ------------------------------------------------------------------------------------------

    async def _read_raw(
        self, details: ua.ReadRawModifiedDetails, node_id: ua.NodeId, point: Point
    ) -> ua.HistoryReadResult:
        query = RawQuery.of(details)
        if query is None:
            return _result(StatusCodes.BadInvalidArgument)
        page = self.limits.max_return_data_values
        if query.pages and query.count:
            page = min(page, query.count)
        cursor = await asyncio.to_thread(raw_cursor, self.store, point, query, node_id, page)
        return await self._raw_page(cursor)

    async def _raw_page(self, cursor: RawCursor) -> ua.HistoryReadResult:
        """One page of a raw read, and a continuation point for the rest."""

        def page() -> ua.ExtensionObject:
            values = raw_page(self.store, cursor, self.limits.read_chunk)
            return history_data(values, cursor.variant)

        result = _result(GOOD, await asyncio.to_thread(page))
        if cursor.more():
            result.ContinuationPoint = self._continuations.add(cursor)
        return result

    async def _read_processed(
        self, details: ua.ReadProcessedDetails, node_id: ua.NodeId, point: Point, n: int
    ) -> ua.HistoryReadResult:
        query = ProcessedQuery.of(details, n, self.limits.max_intervals)
        if isinstance(query, int):
            return _result(query)
        series = await asyncio.to_thread(
            processed_values, self.store, point.id, query, self.limits.read_chunk
        )
        page = self.limits.max_return_data_values
        cursor = ProcessedCursor(node_id, series, query.variant(point), page)
        return await self._processed_page(cursor)

    async def _processed_page(self, cursor: ProcessedCursor) -> ua.HistoryReadResult:
        """One page of a processed read, and a continuation point for the rest."""
        head, cursor.rest = cursor.rest.slice(0, cursor.page), cursor.rest.slice(cursor.page)
        result = _result(GOOD, await asyncio.to_thread(history_data, head, cursor.variant))
        if len(cursor.rest):
            result.ContinuationPoint = self._continuations.add(cursor)
        return result

    # events -----------------------------------------------------------------------------------------

    def _alarms_of(self, node_id: ua.NodeId) -> frozenset[str] | None:
        """The alarms whose events ``node_id`` notifies (KeyError if it notifies none)."""
        if node_id == SERVER:
            return None
        if self._notifiers_of != len(self._conditions):
            grouped: dict[ua.NodeId, set[str]] = {}
            for alarm_id, info in self._conditions.items():
                grouped.setdefault(info.device_node, set()).add(alarm_id)
            self._notifiers = {node: frozenset(ids) for node, ids in grouped.items()}
            self._notifiers_of = len(self._conditions)
        return self._notifiers[node_id]

    async def _read_events(
        self, details: ua.ReadEventDetails, node_id: ua.NodeId
    ) -> ua.HistoryReadResult:
        try:
            alarms = self._alarms_of(node_id)
        except KeyError:
            return _result(self._unsupported(node_id))
        query = EventQuery.of(details)
        if query is None:
            return _result(StatusCodes.BadInvalidArgument)
        where = SubtypeAwareWhereClause(query.filter.WhereClause, self._is_subtype)
        remaining = None if query.pages or not query.count else query.count
        cursor = EventCursor(node_id, alarms, query, where, remaining)
        return await self._event_page(cursor)

    async def _event_page(self, cursor: EventCursor) -> ua.HistoryReadResult:
        """Events up to one page; the cursor moves past every row it looked at."""
        page = self.limits.max_return_event_values
        if cursor.query.count:
            page = min(page, cursor.query.count)
        if cursor.remaining is not None:
            page = min(page, cursor.remaining)
        select = cursor.query.filter.SelectClauses
        found: list[ua.HistoryEventFieldList] = []
        exhausted = False
        while len(found) < page and not exhausted:
            batch = max(2 * (page - len(found)), 100)
            rows, exhausted = await asyncio.to_thread(
                self._journal.events, self.store, cursor, batch
            )
            for position, event in rows:
                cursor.after = position
                if event is not None and cursor.where.eval(event):
                    found.append(
                        ua.HistoryEventFieldList(EventFields=event.to_event_fields(select))
                    )
                    if len(found) == page:
                        exhausted = exhausted and position == rows[-1][0]
                        break
        result = _result(GOOD, ua.HistoryEvent(Events=found))
        if cursor.remaining is not None:
            cursor.remaining -= len(found)
        if not exhausted and (cursor.remaining is None or cursor.remaining > 0):
            result.ContinuationPoint = self._continuations.add(cursor)
        return result


async def install_history(
    server: Server,
    store: Store,
    site: Site,
    ns: int,
    *,
    conditions: Mapping[str, ConditionInfo],
    alarms: AlarmManager,
    limits: HistoryLimits | None = None,
) -> HistoryService:
    """Serve HistoryRead of ``server`` from ``store`` and advertise it.

    ``conditions`` maps alarm ids to their conditions (read at each event read, so
    it may be filled later); ``alarms`` gives the definitions and policy live events
    use.  Call after ``server.init()`` (which initialises asyncua's own history
    manager, replaced here) and before ``server.start()``.
    """
    service = HistoryService(
        server, store, site, ns, conditions=conditions, alarms=alarms, limits=limits
    )
    server.iserver.history_manager = service  # type: ignore[assignment]
    await advertise(server, service.limits)
    return service
