"""What each PlantGuard node is, as the ``AddNodesItem`` that would create it.

One description serves both kinds of node: the real structural nodes (folders,
devices) are added with these items, and the virtual ones (points, properties)
are rendered from the same items by :mod:`.view`, through asyncua's own
node-building code — so a virtual node has exactly the attributes and
references it would have had as a real one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds

from plantguard.model import Device, Point

from . import nodeids
from .units import eu_information

__all__ = [
    "POINT_TYPES",
    "NodeSpecs",
    "device_properties",
    "point_spec",
    "reference_to",
]

_STRING = ua.VariantType.String
_BOOLEAN = ua.VariantType.Boolean
_DATETIME = ua.VariantType.DateTime

#: Point data type → (variant type, DataType node, value before the first sample).
POINT_TYPES: dict[str, tuple[ua.VariantType, int, float | int | bool]] = {
    "float": (ua.VariantType.Double, ObjectIds.Double, math.nan),
    "int": (ua.VariantType.Int64, ObjectIds.Int64, 0),
    "bool": (ua.VariantType.Boolean, ObjectIds.Boolean, False),
}

#: Points are historized: HistoryRead is served from the store (:mod:`.history`).
_POINT_ACCESS = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.HistoryRead.mask


def _ref(ref: int) -> ua.NodeId:
    return ua.NodeId(ua.Int32(ref))


def reference_to(item: ua.AddNodesItem) -> ua.ReferenceDescription:
    """The parent's forward reference to ``item``, as asyncua's AddNodes makes it."""
    return ua.ReferenceDescription(
        ReferenceTypeId=item.ReferenceTypeId,
        IsForward=True,
        NodeId=item.RequestedNewNodeId,
        BrowseName=item.BrowseName,
        DisplayName=item.NodeAttributes.DisplayName,
        NodeClass=item.NodeClass,
        TypeDefinition=item.TypeDefinition,
    )


class NodeSpecs:
    """Makes the AddNodesItems of PlantGuard nodes in namespace ``ns``."""

    #: Browse names of device properties, in the order they are listed.
    DEVICE_PROPERTIES = (
        "Manufacturer",
        "Model",
        "SerialNumber",
        "HardwareRevision",
        "SoftwareRevision",
        "DeviceClass",
        "AssetId",
        "Location",
        "Responsible",
        "CommissioningDate",
        "SafetyCritical",
        "Status",
    )

    def __init__(self, ns: int) -> None:
        self.ns = ns

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
    ) -> ua.AddNodesItem:
        """An object (a folder unless ``type_def`` says otherwise)."""
        node_id = nodeids.node_id(path, self.ns)
        item = self._item(
            node_id, parent, browse_name, cls=ua.NodeClass.Object, type_def=type_def, ref=ref
        )
        attrs = ua.ObjectAttributes()
        attrs.DisplayName = ua.LocalizedText(display_name)
        attrs.Description = ua.LocalizedText(description)
        item.NodeAttributes = attrs
        return item

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
        access: int = ua.AccessLevel.CurrentRead.mask,
    ) -> ua.AddNodesItem:
        """A scalar variable (a property unless ``type_def``/``ref`` say otherwise)."""
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
        attrs.AccessLevel = access
        attrs.UserAccessLevel = access
        attrs.Historizing = bool(access & ua.AccessLevel.HistoryRead.mask)
        item.NodeAttributes = attrs
        return item

    # --- the nodes of a device ----------------------------------------------------------------

    def device(self, path: str, parent: ua.NodeId, device: Device) -> ua.AddNodesItem:
        return self.obj(
            path,
            parent,
            device.id,
            display_name=device.name or device.id,
            description=device.name,
            type_def=ObjectIds.BaseObjectType,
        )

    def device_property(self, device_path: str, device: Device, name: str) -> ua.AddNodesItem:
        parent = nodeids.node_id(device_path, self.ns)
        for prop, value, data_type in device_properties(device):
            if prop == name:
                return self.variable(
                    nodeids.property_path(device_path, name),
                    parent,
                    name,
                    value=value,
                    data_type=data_type,
                )
        raise KeyError(name)

    def device_children(self, device_path: str, device: Device) -> list[ua.AddNodesItem]:
        """The device's virtual children: its properties, then its Points folder."""
        items = [self.device_property(device_path, device, n) for n in self.DEVICE_PROPERTIES]
        items.append(self.points_folder(device_path))
        return items

    def points_folder(self, device_path: str) -> ua.AddNodesItem:
        return self.obj(
            nodeids.points_folder_path(device_path),
            nodeids.node_id(device_path, self.ns),
            nodeids.POINTS_FOLDER,
            display_name=nodeids.POINTS_FOLDER,
            ref=ObjectIds.HasComponent,
        )


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


def point_spec(
    specs: NodeSpecs, device_path: str, device: Device, point: Point
) -> tuple[ua.AddNodesItem, list[ua.AddNodesItem]]:
    """The point's variable and its properties (EngineeringUnits, EURange)."""
    variant_type, data_type, initial = POINT_TYPES[point.data_type]
    local = nodeids.point_local_id(device, point)
    folder_path = nodeids.points_folder_path(device_path)
    path = f"{folder_path}/{local}"
    numeric = point.data_type != "bool"
    if numeric and point.range is not None:
        type_def = ObjectIds.AnalogItemType
    elif numeric:
        type_def = ObjectIds.BaseAnalogType
    else:
        type_def = ObjectIds.BaseDataVariableType
    access = _POINT_ACCESS
    if point.access == "read_write":
        access |= ua.AccessLevel.CurrentWrite.mask
    item = specs.variable(
        path,
        nodeids.node_id(folder_path, specs.ns),
        local,
        value=ua.Variant(initial, variant_type),
        data_type=data_type,
        description=point.name or local,
        type_def=type_def,
        ref=ObjectIds.HasComponent,
        access=access,
    )
    node = item.RequestedNewNodeId
    properties = []
    if numeric or point.unit:
        properties.append(
            specs.variable(
                nodeids.property_path(path, "EngineeringUnits"),
                node,
                "EngineeringUnits",
                value=ua.Variant(eu_information(point.unit)),
                data_type=ObjectIds.EUInformation,
            )
        )
    if point.range is not None:
        low, high = point.range
        properties.append(
            specs.variable(
                nodeids.property_path(path, "EURange"),
                node,
                "EURange",
                value=ua.Variant(ua.Range(Low=ua.Double(low), High=ua.Double(high))),
                data_type=ObjectIds.Range,
            )
        )
    return item, properties
