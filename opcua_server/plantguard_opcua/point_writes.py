"""Client writes to point variables go to the engine's write path, not to the node.

asyncua would store a written value in the variable and be done; a point write
must reach the field device, through the one function that checks the user's
role and traces the write (:meth:`plantguard.engine.Engine.write_point`).  The
variable then shows the device's value at the next poll — what the plant really
does, not what was asked.

:func:`.compat.install` routes each session's Write service here first;
anything that is not the Value of a point variable goes on to asyncua.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from plantguard import writes
from plantguard.auth import Principal
from plantguard.drivers import DriverError
from plantguard.table import ValueTable

from .view import SiteView

__all__ = ["PointWrites", "Writer"]

log = logging.getLogger(__name__)

Writer = Callable[[str, float, Principal], Awaitable[None]]

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (writes.UnknownPoint, StatusCodes.BadNodeIdUnknown),
    (writes.NotWritable, StatusCodes.BadNotWritable),
    (writes.WriteDenied, StatusCodes.BadUserAccessDenied),
    (DriverError, StatusCodes.BadCommunicationError),
)


def _code(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


class PointWrites:
    """Point variables, found through the site view, and the engine's writer."""

    def __init__(self, view: SiteView, table: ValueTable, writer: Writer) -> None:
        self._view = view
        self._table = table
        self._writer = writer

    def _point_id(self, node_id: ua.NodeId) -> str | None:
        ident = node_id.Identifier
        if node_id.NamespaceIndex != self._view.ns or not isinstance(ident, str):
            return None
        index = self._view.point_index(ident)
        return None if index is None else self._table.point_ids[index]

    def handles(self, item: ua.WriteValue) -> bool:
        return item.AttributeId == AttributeIds.Value and self._point_id(item.NodeId) is not None

    async def write(self, item: ua.WriteValue, principal: Principal) -> ua.StatusCode:
        point_id = self._point_id(item.NodeId)
        if point_id is None:
            return _code(StatusCodes.BadNodeIdUnknown)
        if item.IndexRange:
            return _code(StatusCodes.BadIndexRangeInvalid)
        raw = item.Value.Value.Value if item.Value and item.Value.Value else None
        if isinstance(raw, bool):
            value = 1.0 if raw else 0.0
        elif isinstance(raw, int | float):
            value = float(raw)
        else:
            return _code(StatusCodes.BadTypeMismatch)
        try:
            await self._writer(point_id, value, principal)
        except (writes.WriteError, DriverError) as exc:
            log.info("OPC UA write of %s refused: %s", point_id, exc)
            for kind, code in _STATUS:
                if isinstance(exc, kind):
                    return _code(code)
            raise
        return _code(StatusCodes.Good)
