"""Alarm conditions: one OPC UA condition instance per PlantGuard alarm.

Each alarm becomes an instance of the closest standard type (table below) in an
``Alarms`` folder under its device, with ``HasCondition`` from its source (the
point variable, else the device) and the device as an event notifier of the
Server object.  :class:`ConditionPublisher` listens to the alarm manager: for
every transition it refreshes the condition's variables and sends one event
with every standard field (:mod:`.events`) to subscribers of the Server object
and of the device.

=============  ====================================  ==========================
alarm kind     condition type                        condition class
=============  ====================================  ==========================
limit          ExclusiveLimitAlarmType               ProcessConditionClassType
discrete       OffNormalAlarmType                    ProcessConditionClassType
deviation      ExclusiveDeviationAlarmType           ProcessConditionClassType
rate           ExclusiveRateOfChangeAlarmType        ProcessConditionClassType
system         SystemOffNormalAlarmType              SystemConditionClassType
security       SystemOffNormalAlarmType              SystemConditionClassType
maintenance    OffNormalAlarmType                    MaintenanceConditionClassType
=============  ====================================  ==========================

The publisher keeps the last event of every condition (ConditionRefresh sends
those whose Retain is true) and the recent EventIds of each, which Acknowledge,
Confirm and AddComment must name.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from time import time as wall_clock

from asyncua import ua
from asyncua.common.instantiate_util import instantiate
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from plantguard.alarms import Action, AlarmManager, AlarmStatus, Transition
from plantguard.model import AlarmDefinition, Site

from . import compat, nodeids
from .events import ConditionEvent, ConditionInfo, condition_fields, new_event_id, numeric_node

__all__ = ["CONDITION_TYPES", "ConditionPublisher"]

log = logging.getLogger(__name__)

#: Alarm kind → (condition type, condition class, class name).
CONDITION_TYPES: dict[str, tuple[int, int, str]] = {
    "limit": (ObjectIds.ExclusiveLimitAlarmType, ObjectIds.ProcessConditionClassType, "Process"),
    "discrete": (ObjectIds.OffNormalAlarmType, ObjectIds.ProcessConditionClassType, "Process"),
    "deviation": (
        ObjectIds.ExclusiveDeviationAlarmType,
        ObjectIds.ProcessConditionClassType,
        "Process",
    ),
    "rate": (
        ObjectIds.ExclusiveRateOfChangeAlarmType,
        ObjectIds.ProcessConditionClassType,
        "Process",
    ),
    "system": (ObjectIds.SystemOffNormalAlarmType, ObjectIds.SystemConditionClassType, "System"),
    "security": (ObjectIds.SystemOffNormalAlarmType, ObjectIds.SystemConditionClassType, "System"),
    "maintenance": (
        ObjectIds.OffNormalAlarmType,
        ObjectIds.MaintenanceConditionClassType,
        "Maintenance",
    ),
}
_LIMIT_KINDS = frozenset({"limit", "deviation", "rate"})
#: How many recent EventIds of one condition an Acknowledge may name.
_EVENT_IDS_KEPT = 32


class ConditionPublisher:
    """The conditions of one site: their nodes, last events and EventIds."""

    def __init__(self, server: Server, ns: int, manager: AlarmManager) -> None:
        self.server = server
        self.ns = ns
        self.manager = manager
        self.infos: dict[str, ConditionInfo] = {}
        #: Condition node and its ShelvingState node → alarm id (method ObjectIds).
        self.by_object: dict[ua.NodeId, str] = {}
        self.last_event: dict[str, ConditionEvent] = {}
        self._event_ids: dict[str, deque[bytes]] = {}
        self._variables: dict[str, dict[str, ua.NodeId]] = {}
        self.methods: list[tuple[ua.NodeId, str]] = []
        #: The first condition of each event type, copied for the others.
        self._templates: dict[int, compat.NodeTemplate] = {}

    # --- building ---------------------------------------------------------------------------

    async def build(self, site: Site) -> None:
        """Add every alarm's condition to the address space (after the site's nodes)."""
        devices = {d.id: (a, d) for a in site.areas for d in a.devices}
        points = {p.id for p in site.points}
        server_node = numeric_node(ObjectIds.Server)
        folders: dict[str, ua.NodeId] = {}
        for definition in self.manager.definitions.values():
            found = devices.get(definition.device_id)
            if found is None:
                # Site-wide alarms (security rules about the gateway, not one device)
                # live in the site's own Alarms folder, with the site as their source.
                site_path = nodeids.site_path(site)
                site_node = nodeids.node_id(site_path, self.ns)
                if "" not in folders:
                    folders[""] = await self._alarms_folder(site_path, site_node, server_node)
                await self._condition(
                    definition,
                    folder=folders[""],
                    device_path=site_path,
                    device_node=site_node,
                    source=site_node,
                    source_name=definition.source_id or site.id,
                )
                continue
            area, device = found
            device_path = nodeids.device_path(site, area, device)
            device_node = nodeids.node_id(device_path, self.ns)
            if device.id not in folders:
                folders[device.id] = await self._alarms_folder(
                    device_path, device_node, server_node
                )
            if definition.source_id in points:
                point = next(p for p in device.points if p.id == definition.source_id)
                source = nodeids.node_id(nodeids.point_path(device_path, device, point), self.ns)
                source_name = point.id
            else:
                source, source_name = device_node, device.id
            await self._condition(
                definition,
                folder=folders[device.id],
                device_path=device_path,
                device_node=device_node,
                source=source,
                source_name=source_name,
            )
        for alarm_id, status in self.manager.status.items():
            if alarm_id in self.infos:
                self._snapshot(alarm_id, status, user=status.last_user, time=status.changed or None)
                await self._write_variables(alarm_id, self.last_event[alarm_id])

    async def _alarms_folder(
        self, device_path: str, device_node: ua.NodeId, server_node: ua.NodeId
    ) -> ua.NodeId:
        server = self.server
        device = server.get_node(device_node)
        folder = await device.add_folder(
            nodeids.node_id(nodeids.alarms_folder_path(device_path), self.ns),
            ua.QualifiedName(nodeids.ALARMS_FOLDER, self.ns),
        )
        # The device is an event notifier below the Server object.
        subscribe_to_events = 1 << ua.EventNotifier.SubscribeToEvents  # the enum is a bit index
        await server.write_attribute_value(
            device_node,
            ua.DataValue(ua.Variant(subscribe_to_events, ua.VariantType.Byte)),
            AttributeIds.EventNotifier,
        )
        await server.get_node(server_node).add_reference(device_node, ObjectIds.HasNotifier)
        nodeid: ua.NodeId = folder.nodeid
        return nodeid

    async def _condition(
        self,
        definition: AlarmDefinition,
        *,
        folder: ua.NodeId,
        device_path: str,
        device_node: ua.NodeId,
        source: ua.NodeId,
        source_name: str,
    ) -> None:
        event_type, cls, cls_name = CONDITION_TYPES.get(
            definition.kind, CONDITION_TYPES["discrete"]
        )
        local = nodeids.alarm_local_id(definition.device_id, definition.id)
        node_id = nodeids.node_id(
            nodeids.condition_path(device_path, definition.device_id, definition.id), self.ns
        )
        template = self._templates.get(event_type)
        if template is None:
            nodes = await instantiate(
                self.server.get_node(folder),
                self.server.get_node(numeric_node(event_type)),
                nodeid=node_id,
                bname=ua.QualifiedName(local, self.ns),
                dname=ua.LocalizedText(local),
            )
            created = [n.nodeid for n in nodes]
            self._templates[event_type] = compat.NodeTemplate.capture(self.server, node_id, created)
        else:
            created = template.stamp(
                self.server,
                node_id,
                folder,
                ua.QualifiedName(local, self.ns),
                ua.LocalizedText(local),
            )
        await self.server.get_node(source).add_reference(node_id, ObjectIds.HasCondition)
        info = ConditionInfo(
            alarm_id=definition.id,
            node_id=node_id,
            device_node=device_node,
            source_node=source,
            source_name=source_name,
            condition_name=local,
            event_type=numeric_node(event_type),
            condition_class=numeric_node(cls),
            condition_class_name=cls_name,
            is_limit=definition.kind in _LIMIT_KINDS,
        )
        self.infos[definition.id] = info
        self.by_object[node_id] = definition.id
        ident = nodeids.condition_path(device_path, definition.device_id, definition.id)
        self.by_object[nodeids.node_id(f"{ident}.ShelvingState", self.ns)] = definition.id
        prefix = f"{ident}."
        variables: dict[str, ua.NodeId] = {}
        children = created[1:]
        for child, node_class in zip(
            children, compat.node_classes(self.server, children), strict=True
        ):
            ident = child.Identifier
            if not isinstance(ident, str) or not ident.startswith(prefix):
                continue
            path = ident[len(prefix) :].replace(".", "/")
            if node_class == ua.NodeClass.Variable:
                variables[path] = child
            elif node_class == ua.NodeClass.Method:
                self.methods.append((child, path.rsplit("/", 1)[-1]))
        self._variables[definition.id] = variables

    # --- publishing ---------------------------------------------------------------------------

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """Alarm manager listener: variables first, then the event, per transition."""
        for t in transitions:
            if t.alarm_id not in self.infos or t.action == Action.CHATTERING:
                continue
            event = self._snapshot(
                t.alarm_id, t.status, user=t.user, time=t.time, message=t.message
            )
            await self._write_variables(t.alarm_id, event)
            disabled = t.status.out_of_service and t.action != Action.REMOVE_FROM_SERVICE
            if not disabled:
                info = self.infos[t.alarm_id]
                await compat.deliver(self.server, event, (event.emitting_node, info.device_node))

    def _snapshot(
        self,
        alarm_id: str,
        status: AlarmStatus,
        *,
        user: str,
        time: float | None,
        message: str = "",
    ) -> ConditionEvent:
        info = self.infos[alarm_id]
        definition = self.manager.definitions[alarm_id]
        previous = self.last_event.get(alarm_id)
        severity = status.severity or int(definition.priority)
        last_severity = previous.fields["Severity"].Value if previous is not None else severity
        event_id = new_event_id()
        fields = condition_fields(
            info,
            status,
            event_id=event_id,
            time=time if time is not None else wall_clock(),
            message=message or status.message or definition.id,
            client_user=user,
            comment=status.comment,
            severity=severity,
            last_severity=last_severity,
            max_time_shelved=self.manager.policy.max_shelve,
        )
        event = ConditionEvent(
            fields, emitting_node=numeric_node(ObjectIds.Server), condition_id=info.node_id
        )
        self.last_event[alarm_id] = event
        self._event_ids.setdefault(alarm_id, deque(maxlen=_EVENT_IDS_KEPT)).append(event_id)
        return event

    async def _write_variables(self, alarm_id: str, event: ConditionEvent) -> None:
        for path, node_id in self._variables[alarm_id].items():
            variant = event.fields.get(path)
            if variant is None:
                if path.startswith("LimitState/CurrentState"):
                    empty: object = ua.LocalizedText("") if path.endswith("State") else ua.NodeId()
                    variant = ua.Variant(empty)
                else:
                    continue
            if variant.Value is None:
                # A null field (no shelving end time …): a DataValue without a value,
                # which asyncua accepts for any data type and clients read as null.
                await self.server.write_attribute_value(node_id, ua.DataValue())
                continue
            await self.server.write_attribute_value(node_id, ua.DataValue(variant))

    # --- for methods --------------------------------------------------------------------------

    def knows_event(self, alarm_id: str, event_id: bytes | None) -> bool:
        return event_id is not None and event_id in self._event_ids.get(alarm_id, ())

    def retained(self) -> list[tuple[ConditionEvent, tuple[ua.NodeId, ua.NodeId]]]:
        """The last event of every condition whose Retain is true, with its notifiers."""
        server = numeric_node(ObjectIds.Server)
        return [
            (event, (server, self.infos[alarm_id].device_node))
            for alarm_id, event in self.last_event.items()
            if event.Retain
        ]
