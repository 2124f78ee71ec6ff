"""Points, their properties, device properties and alarm conditions as a view.

A site of 100,000 points made one asyncua node per point, property and condition
component: ~80 KB and ~1.7 ms per point, and a heap of node objects whose
full garbage collections stopped the gateway for seconds.  Here those nodes are
not stored at all.  The :class:`SiteView` knows, from the site model, which
NodeIds exist; when a client browses or reads one, it renders that node —
attributes and references — on demand, through asyncua's own node-building code
(so every attribute is exactly what ``AddNodes`` would have stored), and keeps
the last few hundred rendered nodes in a small cache.  Values never come from a
rendered node: a point's Value is read from the value table, a condition
variable's from its condition's last event.

Only the structure stays real asyncua nodes: the PlantGuard folder, sites,
areas, devices and each device's ``Alarms`` folder (a few per device).  Those
real parents carry forward references to their virtual children, added once
when the site is built.

:class:`plantguard_opcua.compat.ViewAddressSpace` is the asyncua side: it asks
the view first for any NodeId in the PlantGuard namespace that is not a real node.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AddressSpace, NodeData, NodeManagementService
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard.model import Device, Point, Site
from plantguard.table import ValueTable

from . import nodeids
from .node_specs import NodeSpecs, point_spec, reference_to
from .values import PointValues

__all__ = ["ConditionEntry", "SiteView"]


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


_ADMIN = User(role=UserRole.Admin)
_HAS_CONDITION = ua.NodeId(ua.Int32(ObjectIds.HasCondition))
_HAS_TYPE_DEFINITION = ua.NodeId(ua.Int32(ObjectIds.HasTypeDefinition))
#: Rendered nodes kept; a client browsing a device reads each node a few times in a row.
_CACHE_SIZE = 512


@dataclass(slots=True)
class ConditionEntry:
    """One alarm condition in the view: where it hangs, what it copies, who it shows."""

    alarm_id: str
    folder: ua.NodeId
    browse_name: ua.QualifiedName
    display_name: ua.LocalizedText
    source: ua.NodeId
    template: Any  # compat.NodeTemplate (kept untyped here to avoid an import cycle)


@dataclass(slots=True)
class _PointEntry:
    device: Device
    device_path: str
    point: Point
    index: int | None  # table index, None if the table lacks the point
    conditions: list[str] = field(default_factory=list)  # condition identifiers


class _Scratch:
    """Just enough of an asyncua ``AddressSpace`` for ``NodeManagementService._add_node``
    to build one node without storing it or touching its parent."""

    force_server_timestamp = True

    def __init__(self, base: AddressSpace, building: ua.NodeId) -> None:
        self._base = base
        self._building = building
        self.made: dict[ua.NodeId, NodeData] = {}

    def __contains__(self, node_id: ua.NodeId) -> bool:
        if node_id == self._building:
            return node_id in self.made  # the view has it; AddNodes must not say "exists"
        return node_id in self.made or node_id in self._base

    def __getitem__(self, node_id: ua.NodeId) -> NodeData:
        found = self.get(node_id)
        if found is None:
            raise KeyError(node_id)
        return found

    def get(self, node_id: ua.NodeId) -> NodeData | None:
        if node_id in self.made:
            return self.made[node_id]
        real = self._base.get(node_id)
        if real is None:
            return None
        # A stand-in for the parent: its attributes and type definition, none of its
        # other references, so that adding the child's forward reference changes
        # nothing real.
        stand_in = NodeData(real.nodeid)
        stand_in.attributes = real.attributes
        stand_in.references = [
            r for r in real.references if r.IsForward and r.ReferenceTypeId == _HAS_TYPE_DEFINITION
        ]
        return stand_in

    def __setitem__(self, node_id: ua.NodeId, data: NodeData) -> None:
        self.made[node_id] = data

    def read_attribute_value(self, node_id: ua.NodeId, attr: AttributeIds) -> ua.DataValue:
        return self._base.read_attribute_value(node_id, attr)


class SiteView:
    """The virtual nodes of one site, answered from the site model and the value table."""

    def __init__(self, ns: int, site: Site, table: ValueTable, values: PointValues) -> None:
        self.ns = ns
        self.site = site
        self.table = table
        self.values = values
        self._devices: dict[str, Device] = {}
        self._points: dict[str, _PointEntry] = {}
        self.conditions: dict[str, ConditionEntry] = {}
        #: Handlers of the conditions' methods, by browse name (set by ``methods.link_methods``).
        self.method_handlers: dict[str, Callable[..., Any]] = {}
        #: The last event's fields of an alarm, for its condition's variables.
        self.event_fields: Callable[[str], dict[str, ua.Variant]] = lambda _alarm: {}
        self._base: AddressSpace | None = None
        self._cache: OrderedDict[str, NodeData] = OrderedDict()
        for area in site.areas:
            for device in area.devices:
                path = nodeids.device_path(site, area, device)
                self._devices[path] = device
                folder = nodeids.points_folder_path(path)
                prefix = f"{device.id}."
                cut = len(prefix)
                for point in device.points:
                    index = table.index.get(point.id)
                    entry = _PointEntry(device, path, point, index)
                    pid = point.id
                    # nodeids.point_path, inlined: this runs once per point at start-up.
                    local = pid[cut:] if pid.startswith(prefix) else pid
                    self._points[f"{folder}/{local}"] = entry

    def bind(self, aspace: AddressSpace) -> None:
        """Render nodes against ``aspace`` (the server's, for type definitions and parents)."""
        self._base = aspace

    # --- what exists ------------------------------------------------------------------------

    def __contains__(self, ident: str) -> bool:
        return self._kind(ident) is not None

    def point_index(self, ident: str) -> int | None:
        """The table index of the point variable ``ident`` (None: not a point)."""
        entry = self._points.get(ident)
        return entry.index if entry is not None else None

    def range_span(self, ident: str) -> float | None:
        """High − Low of the point's EURange, None if it has none (Percent deadbands)."""
        entry = self._points.get(ident)
        if entry is None or entry.point.range is None:
            return None
        low, high = entry.point.range
        return float(high - low)

    def add_condition(self, ident: str, entry: ConditionEntry, source_ident: str | None) -> None:
        """Register a condition; ``source_ident`` names its source point, if it is one."""
        self.conditions[ident] = entry
        if source_ident is not None and source_ident in self._points:
            self._points[source_ident].conditions.append(ident)

    def _kind(self, ident: str) -> tuple[str, Any] | None:
        """What ``ident`` names: ("point", entry), ("point-property", …), ("device-property",
        …), ("points", device path), ("condition", (condition ident, suffix)) or None."""
        entry = self._points.get(ident)
        if entry is not None:
            return "point", entry
        owner, hash_, name = ident.rpartition("#")
        if hash_:
            point = self._points.get(owner)
            if point is not None:
                return (
                    ("point-property", (point, name))
                    if self._has_point_property(point, name)
                    else None
                )
            device = self._devices.get(owner)
            if device is not None and name in NodeSpecs.DEVICE_PROPERTIES:
                return "device-property", (owner, device, name)
            return None
        head, slash, tail = ident.rpartition("/")
        if slash and tail == nodeids.POINTS_FOLDER and head in self._devices:
            return "points", head
        if f"/{nodeids.ALARMS_FOLDER}/" in ident:
            found = self._condition_of(ident)
            if found is not None:
                return "condition", found
        return None

    @staticmethod
    def _has_point_property(entry: _PointEntry, name: str) -> bool:
        point = entry.point
        if name == "EngineeringUnits":
            return point.data_type != "bool" or bool(point.unit)
        if name == "EURange":
            return point.range is not None
        return False

    def _condition_of(self, ident: str) -> tuple[str, str] | None:
        if ident in self.conditions:
            return ident, ""
        # Condition ids contain dots (``level.limit``) and so do component paths
        # (``.AckedState.Id``): try each dot from the left as the split.
        start = ident.rfind("/") + 1
        dot = ident.find(".", start)
        while dot != -1:
            head = ident[:dot]
            condition = self.conditions.get(head)
            if condition is not None:
                suffix = ident[dot:]
                if condition.template.has(suffix):
                    return head, suffix
            dot = ident.find(".", dot + 1)
        return None

    # --- rendering ----------------------------------------------------------------------------

    def node(self, ident: str) -> NodeData | None:
        """The node ``ident`` as asyncua would hold it (rendered, cached), or None."""
        cached = self._cache.get(ident)
        if cached is not None:
            self._cache.move_to_end(ident)
            return cached
        kind = self._kind(ident)
        if kind is None:
            return None
        data = self._render(ident, *kind)
        self._cache[ident] = data
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return data

    def _render(self, ident: str, kind: str, what: Any) -> NodeData:
        if kind == "condition":
            condition_ident, suffix = what
            return self._render_condition(condition_ident, suffix)
        specs = NodeSpecs(self.ns)
        children: Iterable[ua.AddNodesItem] = ()
        extra: list[ua.ReferenceDescription] = []
        if kind == "point":
            item, children = point_spec(specs, what.device_path, what.device, what.point)
            extra = [self._condition_reference(c) for c in what.conditions]
        elif kind == "point-property":
            entry, name = what
            _item, props = point_spec(specs, entry.device_path, entry.device, entry.point)
            item = next(p for p in props if p.BrowseName.Name == name)
        elif kind == "device-property":
            device_ident, device, name = what
            item = specs.device_property(device_ident, device, name)
        else:  # the Points folder
            device = self._devices[what]
            item = specs.points_folder(what)
            children = [point_spec(specs, what, device, p)[0] for p in device.points]
        data = self._build(item)
        data.references.extend(reference_to(child) for child in children)
        data.references.extend(extra)
        return data

    def _build(self, item: ua.AddNodesItem) -> NodeData:
        if self._base is None:
            raise RuntimeError("the site view is not bound to an address space")
        scratch = _Scratch(self._base, item.RequestedNewNodeId)
        service = NodeManagementService(scratch)  # type: ignore[arg-type]
        result = service._add_node(item, _ADMIN)
        if not result.StatusCode.is_good():
            raise RuntimeError(
                f"cannot render {item.RequestedNewNodeId.to_string()}: {result.StatusCode.name}"
            )
        data: NodeData = scratch.made[item.RequestedNewNodeId]
        # Attributes are stamped with the time the view was built, as AddNodes would have.
        return data

    def _condition_reference(self, condition_ident: str) -> ua.ReferenceDescription:
        """The source's forward HasCondition reference to one of its conditions."""
        entry = self.conditions[condition_ident]
        return ua.ReferenceDescription(
            ReferenceTypeId=_HAS_CONDITION,
            IsForward=True,
            NodeId=nodeids.node_id(condition_ident, self.ns),
            BrowseName=entry.browse_name,
            DisplayName=entry.display_name,
            NodeClass=ua.NodeClass.Object,
            TypeDefinition=entry.template.type_definition,
        )

    def _render_condition(self, condition_ident: str, suffix: str) -> NodeData:
        entry = self.conditions[condition_ident]
        root = nodeids.node_id(condition_ident, self.ns)
        data: NodeData = entry.template.render(
            suffix, root, entry.folder, entry.browse_name, entry.display_name
        )
        if not suffix:
            data.references.append(self._source_reference(entry.source))
        elif _attribute(data, AttributeIds.NodeClass) == ua.NodeClass.Method:
            name = _attribute(data, AttributeIds.BrowseName)
            if name is not None:
                data.call = self.method_handlers.get(name.Name)
        return data

    def _source_reference(self, source: ua.NodeId) -> ua.ReferenceDescription:
        """The condition's inverse HasCondition reference to its source."""
        base = self._base
        assert base is not None
        desc = ua.ReferenceDescription(
            ReferenceTypeId=_HAS_CONDITION, IsForward=False, NodeId=source
        )
        klass = base.read_attribute_value(source, AttributeIds.NodeClass).Value
        if klass is not None:
            desc.NodeClass = ua.NodeClass(klass.Value)
        name = base.read_attribute_value(source, AttributeIds.BrowseName).Value
        if name is not None and name.Value:
            desc.BrowseName = name.Value
        display = base.read_attribute_value(source, AttributeIds.DisplayName).Value
        if display is not None and display.Value:
            desc.DisplayName = display.Value
        data = base.get(source)
        if data is not None:
            for ref in data.references:
                if ref.IsForward and ref.ReferenceTypeId == _HAS_TYPE_DEFINITION:
                    desc.TypeDefinition = ref.NodeId
                    break
        return desc

    # --- values -------------------------------------------------------------------------------

    def read(self, ident: str, attr: AttributeIds) -> ua.DataValue:
        """Read one attribute; Values are current (the table, the last event)."""
        if attr == AttributeIds.Value:
            entry = self._points.get(ident)
            if entry is not None:
                return self.point_value(entry)
            if f"/{nodeids.ALARMS_FOLDER}/" in ident:
                found = self._condition_of(ident)
                if found is not None and found[1]:
                    value = self.condition_value(*found)
                    if value is not None:
                        return value
        data = self.node(ident)
        if data is None:
            return ua.DataValue(StatusCode=_status(StatusCodes.BadNodeIdUnknown))
        held = data.attributes.get(attr)
        if held is None or held.value is None:
            return ua.DataValue(StatusCode=_status(StatusCodes.BadAttributeIdInvalid))
        return held.value

    def point_value(self, entry: _PointEntry) -> ua.DataValue:
        if entry.index is None:
            return ua.DataValue(StatusCode=_status(StatusCodes.BadWaitingForInitialData))
        return self.values.datavalue(entry.index)

    def condition_value(self, condition_ident: str, suffix: str) -> ua.DataValue | None:
        """A condition variable's value from the alarm's last event (None: the template's)."""
        entry = self.conditions[condition_ident]
        path = suffix[1:].replace(".", "/")
        variant = self.event_fields(entry.alarm_id).get(path)
        if variant is None:
            if path.startswith("LimitState/CurrentState"):
                empty: object = ua.LocalizedText("") if path.endswith("State") else ua.NodeId()
                return ua.DataValue(ua.Variant(empty))
            return None
        if variant.Value is None:
            return ua.DataValue()  # a null field: no value, read as null
        return ua.DataValue(variant)


def _attribute(data: NodeData, attr: AttributeIds) -> Any:
    """The plain value of one attribute of a node (None if it has none)."""
    held = data.attributes.get(attr)
    if held is None or held.value is None or held.value.Value is None:
        return None
    return held.value.Value.Value
