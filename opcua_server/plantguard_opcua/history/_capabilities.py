"""What the server advertises about its history, so clients know what to ask.

The standard HistoryServerCapabilities and ServerCapabilities variables, the
aggregate functions served, and the Server object's EventNotifier (it has event
history).  Written once, when history is installed.
"""

from __future__ import annotations

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from ..events import numeric_node
from ._aggregates import AGGREGATES
from ._limits import HistoryLimits
from ._nodes import SERVER

__all__ = ["advertise"]

_V = ua.VariantType
_O = ObjectIds


def _capabilities(limits: HistoryLimits) -> dict[int, tuple[object, ua.VariantType]]:
    """Standard capability variables and what PlantGuard's history offers."""
    refused = (
        _O.HistoryServerCapabilities_InsertDataCapability,
        _O.HistoryServerCapabilities_ReplaceDataCapability,
        _O.HistoryServerCapabilities_UpdateDataCapability,
        _O.HistoryServerCapabilities_DeleteRawCapability,
        _O.HistoryServerCapabilities_DeleteAtTimeCapability,
        _O.HistoryServerCapabilities_InsertEventCapability,
        _O.HistoryServerCapabilities_ReplaceEventCapability,
        _O.HistoryServerCapabilities_UpdateEventCapability,
        _O.HistoryServerCapabilities_DeleteEventCapability,
        _O.HistoryServerCapabilities_InsertAnnotationCapability,
        _O.HistoryServerCapabilities_ServerTimestampSupported,
    )
    limits_of = _O.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData
    return {
        _O.HistoryServerCapabilities_AccessHistoryDataCapability: (True, _V.Boolean),
        _O.HistoryServerCapabilities_AccessHistoryEventsCapability: (True, _V.Boolean),
        _O.HistoryServerCapabilities_MaxReturnDataValues: (
            limits.max_return_data_values, _V.UInt32,
        ),
        _O.HistoryServerCapabilities_MaxReturnEventValues: (
            limits.max_return_event_values, _V.UInt32,
        ),
        _O.Server_ServerCapabilities_MaxHistoryContinuationPoints: (
            limits.max_continuation_points, _V.UInt16,
        ),
        limits_of: (limits.max_nodes_per_read, _V.UInt32),
        _O.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadEvents: (
            limits.max_nodes_per_read, _V.UInt32,
        ),
        **dict.fromkeys(refused, (False, _V.Boolean)),
    }  # fmt: skip


async def advertise(server: Server, limits: HistoryLimits) -> None:
    """Set the capability variables, list the aggregates, and mark the Server object as
    a notifier with event history."""
    for node, (value, variant) in _capabilities(limits).items():
        await server.write_attribute_value(
            numeric_node(node), ua.DataValue(ua.Variant(value, variant))
        )
    for folder in (
        _O.HistoryServerCapabilities_AggregateFunctions,
        _O.Server_ServerCapabilities_AggregateFunctions,
    ):
        listed = {r.NodeId for r in server.iserver.aspace[numeric_node(folder)].references}
        for aggregate in AGGREGATES:
            if numeric_node(aggregate) not in listed:
                await server.get_node(numeric_node(folder)).add_reference(
                    numeric_node(aggregate), _O.Organizes
                )
    notifier = await server.get_node(SERVER).read_attribute(AttributeIds.EventNotifier)
    current = notifier.Value.Value if notifier.Value is not None else 0
    bits = int(current or 0) | 1 << ua.EventNotifier.HistoryRead
    await server.write_attribute_value(
        SERVER, ua.DataValue(ua.Variant(bits, _V.Byte)), AttributeIds.EventNotifier
    )
