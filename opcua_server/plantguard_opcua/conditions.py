"""Alarm conditions: one OPC UA condition instance per PlantGuard alarm.

Each alarm becomes an instance of the closest standard type (table below) in an
``Alarms`` folder under its device, with ``HasCondition`` from its source (the
point variable, else the device) and the device as an event notifier of the
Server object.  :class:`ConditionPublisher` listens to the alarm manager: for
every transition it refreshes the condition's variables and sends one event
with every standard field (:mod:`.events`) to subscribers of the Server object
and of the device, published at once (not at the end of the subscription's
publishing interval: :func:`.compat.publish_events_now`).

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

import asyncio
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
from .view import ConditionEntry, SiteView

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

    def __init__(
        self,
        server: Server,
        ns: int,
        manager: AlarmManager,
        view: SiteView,
        *,
        event_history: bool = False,
    ) -> None:
        self.server = server
        self.ns = ns
        self.manager = manager
        self.view = view
        #: Devices also advertise HistoryRead of events (served from the alarm journal).
        self.event_history = event_history
        self.infos: dict[str, ConditionInfo] = {}
        self.last_event: dict[str, ConditionEvent] = {}
        self._event_ids: dict[str, deque[bytes]] = {}
        #: The first condition of each event type, captured and rendered for all.
        self._templates: dict[int, compat.NodeTemplate] = {}
        view.event_fields = self.fields_of

    # --- building ---------------------------------------------------------------------------

    async def build(self, site: Site) -> None:
        """Add every alarm's condition to the view (after the site's nodes).

        A condition costs a few hundred bytes until a client looks at it: it is
        rendered from its type's template when browsed or read, and its event
        snapshot is made when it first changes, is read or is refreshed.
        """
        devices = {d.id: (a, d) for a in site.areas for d in a.devices}
        points = {p.id: (p, d.id) for a in site.areas for d in a.devices for p in d.points}
        server_node = numeric_node(ObjectIds.Server)
        folders: dict[str, ua.NodeId] = {}
        for n, definition in enumerate(self.manager.definitions.values()):
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
                    source_ident=None,
                )
                continue
            area, device = found
            device_path = nodeids.device_path(site, area, device)
            device_node = nodeids.node_id(device_path, self.ns)
            if device.id not in folders:
                folders[device.id] = await self._alarms_folder(
                    device_path, device_node, server_node
                )
            point, owner = points.get(definition.source_id or "", (None, ""))
            if point is not None and owner == device.id:
                source_ident: str | None = nodeids.point_path(device_path, device, point)
                source = nodeids.node_id(source_ident or "", self.ns)
                source_name = point.id
            else:
                source_ident, source, source_name = None, device_node, device.id
            await self._condition(
                definition,
                folder=folders[device.id],
                device_path=device_path,
                device_node=device_node,
                source=source,
                source_name=source_name,
                source_ident=source_ident,
            )
            if n % 500 == 499:
                await asyncio.sleep(0)
        for alarm_id, status in self.manager.status.items():
            if alarm_id in self.infos and status.retain:
                # Restored conditions that ConditionRefresh must send.
                self._snapshot(alarm_id, status, user=status.last_user, time=status.changed or None)

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
        notifier = 1 << ua.EventNotifier.SubscribeToEvents  # the enum is a bit index
        if self.event_history:
            notifier |= 1 << ua.EventNotifier.HistoryRead
        await server.write_attribute_value(
            device_node,
            ua.DataValue(ua.Variant(notifier, ua.VariantType.Byte)),
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
        source_ident: str | None,
    ) -> None:
        event_type, cls, cls_name = CONDITION_TYPES.get(
            definition.kind, CONDITION_TYPES["discrete"]
        )
        local = nodeids.alarm_local_id(definition.device_id, definition.id)
        ident = nodeids.condition_path(device_path, definition.device_id, definition.id)
        node_id = nodeids.node_id(ident, self.ns)
        browse_name = ua.QualifiedName(local, self.ns)
        display_name = ua.LocalizedText(local)
        template = self._templates.get(event_type)
        if template is None:
            nodes = await instantiate(
                self.server.get_node(folder),
                self.server.get_node(numeric_node(event_type)),
                nodeid=node_id,
                bname=browse_name,
                dname=display_name,
            )
            template = await compat.NodeTemplate.capture(
                self.server, node_id, [n.nodeid for n in nodes]
            )
            self._templates[event_type] = template
        aspace = self.server.iserver.aspace
        aspace[folder].references.append(template.reference(node_id, browse_name, display_name))
        entry = ConditionEntry(definition.id, folder, browse_name, display_name, source, template)
        self.view.add_condition(ident, entry, source_ident)
        if source_ident is None:
            # A real source (device or site): its forward HasCondition reference.
            aspace[source].references.append(
                ua.ReferenceDescription(
                    ReferenceTypeId=numeric_node(ObjectIds.HasCondition),
                    IsForward=True,
                    NodeId=node_id,
                    BrowseName=browse_name,
                    DisplayName=display_name,
                    NodeClass=ua.NodeClass.Object,
                    TypeDefinition=template.type_definition,
                )
            )
        self.infos[definition.id] = ConditionInfo(
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

    def alarm_of(self, object_id: ua.NodeId) -> str | None:
        """The alarm whose condition (or its ShelvingState) is ``object_id``."""
        ident = object_id.Identifier
        if object_id.NamespaceIndex != self.ns or not isinstance(ident, str):
            return None
        entry = self.view.conditions.get(ident)
        if entry is None and ident.endswith(".ShelvingState"):
            entry = self.view.conditions.get(ident[: -len(".ShelvingState")])
        return entry.alarm_id if entry is not None else None

    # --- publishing ---------------------------------------------------------------------------

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """Alarm manager listener: a new snapshot (the variables), then the event."""
        for t in transitions:
            if t.alarm_id not in self.infos or t.action == Action.CHATTERING:
                continue
            event = self._snapshot(
                t.alarm_id, t.status, user=t.user, time=t.time, message=t.message
            )
            info = self.infos[t.alarm_id]
            aspace = self.server.iserver.aspace
            if isinstance(aspace, compat.ViewAddressSpace):
                await aspace.notify(f"{info.node_id.Identifier!s}.")
            disabled = t.status.out_of_service and t.action != Action.REMOVE_FROM_SERVICE
            if not disabled:
                await compat.deliver(self.server, event, (event.emitting_node, info.device_node))
        # The events go out now, not at the end of each subscription's publishing
        # interval: an alarm reaches the HMI one poll after its value (plus processing).
        await compat.publish_events_now(self.server)

    def fields_of(self, alarm_id: str) -> dict[str, ua.Variant]:
        """The fields of the alarm's last event, made now if it has none yet."""
        event = self.last_event.get(alarm_id)
        if event is None:
            status = self.manager.status.get(alarm_id)
            if status is None or alarm_id not in self.infos:
                return {}
            event = self._snapshot(
                alarm_id, status, user=status.last_user, time=status.changed or None
            )
        return event.fields

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
