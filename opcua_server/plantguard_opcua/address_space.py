"""Builds ``Objects/PlantGuard/<site>/<area>/<device>/`` from the configured site.

Nodes are added as plain ``AddNodesItem`` batches, one batch per device, rather
than through asyncua's ``add_object``/``add_variable`` helpers: the helpers make
one service call per node, read the parent's type for each object, and cannot set
a Description, DataType or TypeDefinition in the same call.  Grouping nodes under
their device also keeps every parent's reference list short; asyncua checks
references linearly, so one flat folder of many nodes builds in quadratic time.

The result is a :class:`PointTargets` table aligned with the value table's
indices, so the publisher never looks anything up by string.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

from asyncua import ua
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from plantguard.model import Area, Device, Point, Site
from plantguard.table import ValueTable

from . import nodeids
from .units import eu_information

__all__ = ["PointTarget", "PointTargets", "build_address_space", "device_properties"]

_STRING = ua.VariantType.String
_BOOLEAN = ua.VariantType.Boolean
_DATETIME = ua.VariantType.DateTime

#: Point data type → (variant type, DataType node, value before the first sample).
_POINT_TYPES: dict[str, tuple[ua.VariantType, int, float | int | bool]] = {
    "float": (ua.VariantType.Double, ObjectIds.Double, math.nan),
    "int": (ua.VariantType.Int64, ObjectIds.Int64, 0),
    "bool": (ua.VariantType.Boolean, ObjectIds.Boolean, False),
}


@dataclass(frozen=True, slots=True)
class PointTarget:
    """Where one table slot is published: its variable and the variant type it takes."""

    node_id: ua.NodeId
    variant_type: ua.VariantType
    data_type: str
    initial: float | int | bool


#: ``targets[i]`` is the variable of table index ``i`` (None if the site lacks that point).
PointTargets = tuple[PointTarget | None, ...]


def _ref(ref: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(ref))


class _Batch:
    """Collects AddNodesItems for one subtree, parents before children."""

    def __init__(self, ns: int) -> None:
        self.ns = ns
        self.items: list[ua.AddNodesItem] = []

    def _item(
        self,
        node_id: ua.NodeId,
        parent: ua.NodeId,
        browse_name: str,
        *,
        cls: ua.NodeClass,
        type_def: int,
        ref: int,
    ) -> ua.AddNodesItem:
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = node_id
        item.ParentNodeId = parent
        item.BrowseName = ua.QualifiedName(browse_name, self.ns)
        item.NodeClass = cls
        item.TypeDefinition = _ref(type_def)
        item.ReferenceTypeId = _ref(ref)
        self.items.append(item)
        return item

    def obj(
        self,
        path: str,
        parent: ua.NodeId,
        browse_name: str,
        *,
        display_name: str,
        description: str = "",
        type_def: int = ObjectIds.FolderType,
        ref: int = ObjectIds.Organizes,
    ) -> ua.NodeId:
        """An object (a folder unless ``type_def`` says otherwise)."""
        node_id = nodeids.node_id(path, self.ns)
        item = self._item(
            node_id, parent, browse_name, cls=ua.NodeClass.Object, type_def=type_def, ref=ref
        )
        attrs = ua.ObjectAttributes()
        attrs.DisplayName = ua.LocalizedText(display_name)
        attrs.Description = ua.LocalizedText(description)
        item.NodeAttributes = attrs
        return node_id

    def variable(
        self,
        path: str,
        parent: ua.NodeId,
        browse_name: str,
        *,
        value: ua.Variant,
        data_type: int,
        description: str = "",
        type_def: int = ObjectIds.PropertyType,
        ref: int = ObjectIds.HasProperty,
        writable: bool = False,
    ) -> ua.NodeId:
        """A scalar variable (a property unless ``type_def``/``ref`` say otherwise),
        read-only unless ``writable`` (writes then go through the engine's write path)."""
        node_id = nodeids.node_id(path, self.ns)
        item = self._item(
            node_id, parent, browse_name, cls=ua.NodeClass.Variable, type_def=type_def, ref=ref
        )
        attrs = ua.VariableAttributes()
        attrs.DisplayName = ua.LocalizedText(browse_name)
        attrs.Description = ua.LocalizedText(description)
        attrs.Value = value
        attrs.DataType = _ref(data_type)
        attrs.ValueRank = ua.ValueRank.Scalar
        access = ua.AccessLevel.CurrentRead.mask
        if writable:
            access |= ua.AccessLevel.CurrentWrite.mask
        attrs.AccessLevel = access
        attrs.UserAccessLevel = access
        item.NodeAttributes = attrs
        return node_id


def _location_text(device: Device) -> str:
    loc = device.info.location
    return " › ".join(part for part in (loc.building, loc.floor, loc.position) if part)


def _commissioning(date: dt.date | None) -> ua.Variant:
    if date is None:
        return ua.Variant()  # null: the DateTime is unknown, not 1601-01-01
    midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    return ua.Variant(midnight, _DATETIME)


def device_properties(device: Device) -> Iterator[tuple[str, ua.Variant, int]]:
    """(BrowseName, Variant, DataType) of each device property, DI names first."""
    info = device.info
    strings = (
        ("Manufacturer", info.manufacturer),
        ("Model", info.model),
        ("SerialNumber", info.serial_number),
        ("HardwareRevision", info.hardware_version),
        ("SoftwareRevision", info.firmware_version),
        ("DeviceClass", device.category),
        ("AssetId", device.id),
        ("Location", _location_text(device)),
        ("Responsible", info.responsible),
    )
    for name, text in strings:
        yield name, ua.Variant(text, _STRING), ObjectIds.String
    yield "CommissioningDate", _commissioning(info.commissioned), ObjectIds.DateTime
    yield "SafetyCritical", ua.Variant(info.safety_critical, _BOOLEAN), ObjectIds.Boolean
    yield "Status", ua.Variant(info.status.value, _STRING), ObjectIds.String


def _add_point(
    batch: _Batch, folder: ua.NodeId, folder_path: str, device: Device, point: Point
) -> PointTarget:
    variant_type, data_type, initial = _POINT_TYPES[point.data_type]
    local = nodeids.point_local_id(device, point)
    path = f"{folder_path}/{local}"
    numeric = point.data_type != "bool"
    if numeric and point.range is not None:
        type_def = ObjectIds.AnalogItemType
    elif numeric:
        type_def = ObjectIds.BaseAnalogType
    else:
        type_def = ObjectIds.BaseDataVariableType
    node = batch.variable(
        path,
        folder,
        local,
        value=ua.Variant(initial, variant_type),
        data_type=data_type,
        description=point.name or local,
        type_def=type_def,
        ref=ObjectIds.HasComponent,
        writable=point.access == "read_write",
    )
    if numeric or point.unit:
        batch.variable(
            nodeids.property_path(path, "EngineeringUnits"),
            node,
            "EngineeringUnits",
            value=ua.Variant(eu_information(point.unit)),
            data_type=ObjectIds.EUInformation,
        )
    if point.range is not None:
        low, high = point.range
        batch.variable(
            nodeids.property_path(path, "EURange"),
            node,
            "EURange",
            value=ua.Variant(ua.Range(Low=ua.Double(low), High=ua.Double(high))),
            data_type=ObjectIds.Range,
        )
    return PointTarget(node, variant_type, point.data_type, initial)


def _device_batch(
    ns: int, site: Site, area: Area, device: Device, parent: ua.NodeId
) -> tuple[_Batch, list[tuple[Point, PointTarget]]]:
    batch = _Batch(ns)
    path = nodeids.device_path(site, area, device)
    node = batch.obj(
        path,
        parent,
        device.id,
        display_name=device.name or device.id,
        description=device.name,
        type_def=ObjectIds.BaseObjectType,
    )
    for name, value, data_type in device_properties(device):
        batch.variable(
            nodeids.property_path(path, name), node, name, value=value, data_type=data_type
        )
    folder_path = nodeids.points_folder_path(path)
    folder = batch.obj(
        folder_path,
        node,
        nodeids.POINTS_FOLDER,
        display_name=nodeids.POINTS_FOLDER,
        ref=ObjectIds.HasComponent,
    )
    targets = [(p, _add_point(batch, folder, folder_path, device, p)) for p in device.points]
    return batch, targets


async def _add(session: InternalSession, batch: _Batch) -> None:
    results = await session.add_nodes(batch.items)
    for item, result in zip(batch.items, results, strict=True):
        if not result.StatusCode.is_good():
            raise RuntimeError(
                f"cannot add OPC UA node {item.RequestedNewNodeId.to_string()}: "
                f"{result.StatusCode.name}"
            )


async def build_address_space(
    server: Server, ns: int, site: Site, table: ValueTable
) -> PointTargets:
    """Add the site's nodes to ``server`` (an initialised ``asyncua.Server``).

    Yields to the event loop between devices so a large site does not stall
    other services while it builds.
    """
    session = server.iserver.isession
    top = _Batch(ns)
    objects = _ref(ObjectIds.ObjectsFolder)
    root = top.obj(nodeids.ROOT, objects, "PlantGuard", display_name="PlantGuard")
    site_node = top.obj(nodeids.site_path(site), root, site.id, display_name=site.name or site.id)
    area_nodes = [
        top.obj(nodeids.area_path(site, a), site_node, a.id, display_name=a.name or a.id)
        for a in site.areas
    ]
    await _add(session, top)
    targets: list[PointTarget | None] = [None] * len(table)
    for area, area_node in zip(site.areas, area_nodes, strict=True):
        for device in area.devices:
            batch, points = _device_batch(ns, site, area, device, area_node)
            await _add(session, batch)
            for point, target in points:
                index = table.index.get(point.id)
                if index is not None:
                    targets[index] = target
            await asyncio.sleep(0)
    return tuple(targets)
