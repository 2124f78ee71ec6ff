"""The OPC UA client of one PlantGuard gateway.

The integration is an OPC UA client like any HMI (DESIGN.md): it reads the
plant from the address space, subscribes to point values and to Alarms &
Conditions events, and acts through the standard A&C methods, so every action
from Home Assistant is checked, journalled and audited by the gateway exactly as
one from a SCADA screen.

This module is the only place that knows NodeIds, browse names and OPC UA
status codes.  It does not import Home Assistant: it hands out the plain values
of :mod:`.models` and raises the exceptions below, which the coordinator and the
config flow translate once.

Exceptions::

    PlantGuardError
    ├── CannotConnect           nothing answered at the URL, or it broke off
    │   └── ConnectionLost      an established connection was lost
    ├── InvalidAuth             the gateway refused the user name or password
    ├── SecurityModeNotOffered  the gateway has no endpoint with that security mode
    ├── NotAPlantGuardGateway   an OPC UA server, but without the urn:plantguard namespace
    └── ActionRefused           a method call answered with a Bad status (``.status``)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
import logging
from typing import Any, Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.events import Event
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from .const import (
    NAMESPACE_URI,
    SECURITY_NONE,
    SECURITY_SIGN,
    SECURITY_SIGN_AND_ENCRYPT,
    WATCHDOG_INTERVAL,
)
from .models import (
    AlarmInfo,
    AlarmStatus,
    DeviceInfo,
    GatewayModel,
    MaintenancePlanInfo,
    PointInfo,
    PointValue,
)

_LOGGER = logging.getLogger(__name__)

#: The application URI this client presents (also in its certificate).
CLIENT_APPLICATION_URI: Final = "urn:homeassistant:plantguard"

_MESSAGE_MODES: Final = {
    SECURITY_NONE: ua.MessageSecurityMode.None_,
    SECURITY_SIGN: ua.MessageSecurityMode.Sign,
    SECURITY_SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}

#: Status codes meaning "who you are was not accepted".
_AUTH_ERRORS: Final = (
    ua.uaerrors.BadUserAccessDenied,
    ua.uaerrors.BadIdentityTokenInvalid,
    ua.uaerrors.BadIdentityTokenRejected,
    ua.uaerrors.BadUserSignatureInvalid,
)

#: Device properties (DI names) read for each device.
_DEVICE_PROPERTIES: Final = (
    "Manufacturer",
    "Model",
    "SerialNumber",
    "HardwareRevision",
    "SoftwareRevision",
    "DeviceClass",
    "Location",
    "Status",
    "SafetyCritical",
)

#: A&C fields the client needs, by browse path; the same list is read from the
#: condition's variables at connect time and selected from every event.
_CONDITION_FIELDS: Final = (
    "EventId",
    "Time",
    "Message",
    "Severity",
    "ActiveState/Id",
    "AckedState/Id",
    "ConfirmedState/Id",
    "LatchedState/Id",
    "SuppressedState/Id",
    "OutOfServiceState/Id",
    "ShelvingState/CurrentState/Id",
    "LimitState/CurrentState",
    "Comment",
    "ClientUserId",
)

#: Variables of a maintenance plan object (``<device>/Maintenance/<plan>#<name>``).
_PLAN_FIELDS: Final = ("Title", "State", "Remaining", "Unit")

#: Plan states that have a due instant worth reading.
_DUE_STATES: Final = ("due_soon", "overdue")

#: ShelvedStateMachineType states (Part 9) → PlantGuard's shelving names.
_SHELVING: Final = {
    ObjectIds.ShelvedStateMachineType_TimedShelved: "timed",
    ObjectIds.ShelvedStateMachineType_OneShotShelved: "oneshot",
}


def _numeric_node(identifier: int) -> ua.NodeId:
    """A node of the OPC UA namespace (0), by its numeric id."""
    return ua.NodeId(ua.Int32(identifier))


#: The A&C methods the actions call, on the standard types (Part 9); the gateway
#: links them for every condition, which is passed as the ObjectId.
_ACKNOWLEDGE: Final = _numeric_node(ObjectIds.AcknowledgeableConditionType_Acknowledge)
_CONFIRM: Final = _numeric_node(ObjectIds.AcknowledgeableConditionType_Confirm)
_ADD_COMMENT: Final = _numeric_node(ObjectIds.ConditionType_AddComment)
_REMOVE_FROM_SERVICE: Final = _numeric_node(ObjectIds.AlarmConditionType_RemoveFromService)
_PLACE_IN_SERVICE: Final = _numeric_node(ObjectIds.AlarmConditionType_PlaceInService)
_TIMED_SHELVE: Final = _numeric_node(ObjectIds.ShelvedStateMachineType_TimedShelve)
_ONE_SHOT_SHELVE: Final = _numeric_node(ObjectIds.ShelvedStateMachineType_OneShotShelve)
_UNSHELVE: Final = _numeric_node(ObjectIds.ShelvedStateMachineType_Unshelve)


class PlantGuardError(Exception):
    """Base of the client's errors."""


class CannotConnect(PlantGuardError):
    """Nothing usable answered at the URL."""


class ConnectionLost(CannotConnect):
    """An established connection to the gateway was lost."""


class InvalidAuth(PlantGuardError):
    """The gateway refused the credentials."""


class SecurityModeNotOffered(PlantGuardError):
    """The gateway offers no endpoint with the requested security mode."""


class NotAPlantGuardGateway(PlantGuardError):
    """The server answers OPC UA but does not serve the PlantGuard namespace."""


class ActionRefused(PlantGuardError):
    """The gateway answered a method call with a Bad status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        #: The OPC UA status code name, e.g. ``BadUserAccessDenied``.
        self.status = status


@dataclass(frozen=True, slots=True)
class PointUpdate:
    """A point's new value, as the subscription reported it."""

    key: str
    value: PointValue


@dataclass(frozen=True, slots=True)
class AlarmUpdate:
    """A condition's new state, from an A&C event."""

    key: str
    status: AlarmStatus


Update = PointUpdate | AlarmUpdate


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything live, read in one go after connecting."""

    points: dict[str, PointValue]
    alarms: dict[str, AlarmStatus]


def _text(value: Any) -> str:
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    return "" if value is None else str(value)


def _value_of(variant: Any) -> Any:
    """A method's output argument (a Variant) as a plain value."""
    return variant.Value if isinstance(variant, ua.Variant) else variant


def _aware(value: datetime) -> datetime:
    """OPC UA DateTimes are UTC; asyncua hands some out without a zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _point_value(data_value: ua.DataValue) -> PointValue:
    status = data_value.StatusCode
    quality = "Good" if status is None or status.is_good() else status.name
    value = data_value.Value.Value if data_value.Value is not None else None
    if quality.startswith("Bad"):
        value = None
    return PointValue(value=value, quality=quality, source_time=data_value.SourceTimestamp)


def alarm_status(fields: dict[str, Any]) -> AlarmStatus:
    """An :class:`AlarmStatus` from A&C fields by browse path (an event or the variables)."""
    shelving_id = fields.get("ShelvingState/CurrentState/Id")
    shelving = ""
    if isinstance(shelving_id, ua.NodeId) and shelving_id.NamespaceIndex == 0:
        shelving = _SHELVING.get(int(shelving_id.Identifier), "")
    time = fields.get("Time")
    event_id = fields.get("EventId")
    return AlarmStatus(
        active=bool(fields.get("ActiveState/Id")),
        acknowledged=fields.get("AckedState/Id") is not False,
        confirmed=fields.get("ConfirmedState/Id") is not False,
        latched=bool(fields.get("LatchedState/Id")),
        shelving=shelving,
        suppressed=bool(fields.get("SuppressedState/Id")),
        out_of_service=bool(fields.get("OutOfServiceState/Id")),
        severity=int(fields.get("Severity") or 0),
        message=_text(fields.get("Message")),
        comment=_text(fields.get("Comment")),
        user=_text(fields.get("ClientUserId")),
        limit=_text(fields.get("LimitState/CurrentState")),
        time=time if isinstance(time, datetime) else None,
        event_id=event_id if isinstance(event_id, bytes) else None,
    )


def _event_filter() -> ua.EventFilter:
    """Select the A&C fields and the ConditionId; no where clause.

    Events that are not conditions (RefreshStart/End, audit events) come
    without a ConditionId and are skipped on arrival; keeping the filter to
    select clauses only works on every server, whatever its where-clause support.
    """
    clauses = []
    for path in _CONDITION_FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = _numeric_node(ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(part, 0) for part in path.split("/")]
        op.AttributeId = AttributeIds.Value
        clauses.append(op)
    condition_id = ua.SimpleAttributeOperand()
    condition_id.TypeDefinitionId = _numeric_node(ObjectIds.ConditionType)
    condition_id.BrowsePath = []
    condition_id.AttributeId = AttributeIds.NodeId
    clauses.append(condition_id)
    event_filter = ua.EventFilter()
    event_filter.SelectClauses = clauses
    return event_filter


class GatewayClient:
    """One connection to a gateway: connect, read the plant, subscribe, act, disconnect.

    A client is used for one connection only; after a loss the coordinator makes
    a new one, so no state of a dead session can leak into the next.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        security_mode: str = SECURITY_NONE,
        certificate: tuple[bytes, bytes] | None = None,
        timeout: float = 10.0,
        watchdog_interval: float = WATCHDOG_INTERVAL,
    ) -> None:
        self.url = url
        self.username = username or None
        self.security_mode = security_mode
        self._password = password or None
        self._certificate = certificate
        self._client = Client(url, timeout=timeout, watchdog_intervall=watchdog_interval)
        self._client.application_uri = CLIENT_APPLICATION_URI
        self._client.name = "Home Assistant PlantGuard"
        if self.username:
            self._client.set_user(self.username)
            if self._password:
                self._client.set_password(self._password)
        self._client.connection_lost_callback = self._connection_lost
        self._ns = 0
        self._connected = False
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue()
        self._subscription: Subscription | None = None
        self._points_by_node: dict[ua.NodeId, str] = {}
        self._alarms_by_node: dict[ua.NodeId, str] = {}

    # --- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and check this is a PlantGuard gateway.

        The endpoints are asked for first (without a session), so a gateway that
        does not offer the chosen security mode is told apart from one that is
        unreachable or refuses the user.
        """
        client = self._client
        try:
            endpoints = await client.connect_and_get_server_endpoints()
            wanted = _MESSAGE_MODES[self.security_mode]
            if not any(ep.SecurityMode == wanted for ep in endpoints):
                raise SecurityModeNotOffered(self.security_mode)
            if wanted is not ua.MessageSecurityMode.None_:
                if self._certificate is None:
                    raise SecurityModeNotOffered(self.security_mode)
                cert, key = self._certificate
                await client.set_security(SecurityPolicyBasic256Sha256, cert, key, mode=wanted)
            await client.connect()
        except _AUTH_ERRORS as err:
            raise InvalidAuth(str(err)) from err
        except PlantGuardError:
            raise
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err) or type(err).__name__) from err
        self._connected = True
        try:
            namespaces = await client.get_namespace_array()
        except (OSError, TimeoutError, UaError) as err:
            await self.disconnect()
            raise CannotConnect(str(err)) from err
        if NAMESPACE_URI not in namespaces:
            await self.disconnect()
            raise NotAPlantGuardGateway(self.url)
        self._ns = namespaces.index(NAMESPACE_URI)

    async def disconnect(self) -> None:
        """Close the session and stop every task of the connection (idempotent)."""
        self._connected = False
        with contextlib.suppress(Exception):
            await self._client.disconnect()
        self._queue.put_nowait(None)

    async def _connection_lost(self, exc: Exception) -> None:
        _LOGGER.debug("connection to %s lost: %r", self.url, exc)
        self._connected = False
        self._queue.put_nowait(None)

    @property
    def connected(self) -> bool:
        return self._connected

    # --- reading the plant --------------------------------------------------------------

    def _node(self, path: str) -> Node:
        return self._client.get_node(_string_node(path, self._ns))

    async def _children(self, paths: list[str]) -> list[list[ua.ReferenceDescription]]:
        """Forward hierarchical children of several nodes, in one Browse call."""
        if not paths:
            return []
        results = await self._client.browse_nodes([self._node(p) for p in paths])
        out = []
        for _node, result in results:
            out.append(
                [
                    ref
                    for ref in result.References
                    if ref.IsForward and ref.ReferenceTypeId.NamespaceIndex == 0
                ]
            )
        return out

    async def _read(self, paths: list[str], attr: AttributeIds) -> list[ua.DataValue]:
        if not paths:
            return []
        nodes = [self._node(p) for p in paths]
        return await self._client.read_attributes(nodes, attr)

    async def read_model(self) -> GatewayModel:
        """Browse ``Objects/PlantGuard`` into a :class:`GatewayModel` (a few batched calls)."""
        try:
            return await self._read_model()
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err)) from err

    async def _read_model(self) -> GatewayModel:
        """The plant, browsed level by level: site, areas, devices, their points and alarms."""
        application_uri, build = await self._read_identity()
        sites = await self._browse_objects(["/"], _is_object)
        site = sites[0] if sites else None
        areas = await self._browse_objects([s.path for s in sites], _is_area)
        devices = await self._browse_devices(areas)
        points, alarms = await self._browse_points_and_alarms(devices)
        return GatewayModel(
            application_uri=application_uri,
            name=(site.display_name or site.path) if site else application_uri,
            site_id=site.path if site else "",
            product=_text(getattr(build, "ProductName", "")) or "PlantGuard",
            software_version=_text(getattr(build, "SoftwareVersion", "")),
            devices=tuple(await self._read_devices(devices, points, alarms)),
            alarms=await self._browse_site_alarms(site),
        )

    async def _read_identity(self) -> tuple[str, Any]:
        """The server's application URI (first of its ServerArray) and its BuildInfo."""
        client = self._client
        server_uri, build = await client.read_values(
            [
                client.get_node(_numeric_node(ObjectIds.Server_ServerArray)),
                client.get_node(_numeric_node(ObjectIds.Server_ServerStatus_BuildInfo)),
            ]
        )
        return str(server_uri[0] if server_uri else self.url), build

    async def _browse_objects(
        self, parents: list[str], keep: Callable[[ua.ReferenceDescription], bool]
    ) -> list[_Browsed]:
        """The children of ``parents`` that ``keep`` accepts, each with its parent."""
        return [
            _Browsed.of(parent, ref)
            for parent, refs in zip(parents, await self._children(parents), strict=True)
            for ref in refs
            if keep(ref)
        ]

    async def _browse_devices(self, areas: list[_Browsed]) -> list[_Browsed]:
        """The areas' devices, each knowing its area's display name."""
        names = {area.path: area.display_name for area in areas}
        devices = await self._browse_objects([area.path for area in areas], _is_device)
        return [device.in_area(names[device.parent]) for device in devices]

    async def _browse_points_and_alarms(
        self, devices: list[_Browsed]
    ) -> tuple[dict[str, list[PointInfo]], dict[str, list[AlarmInfo]]]:
        """Each device's ``Points`` variables and ``Alarms`` conditions (one Browse)."""
        folders = await self._children(
            [f"{d.path}/{folder}" for d in devices for folder in ("Points", "Alarms")]
        )
        point_refs = [
            _Browsed.of(device.path, ref)
            for device, refs in zip(devices, folders[0::2], strict=True)
            for ref in refs
            if ref.NodeClass == ua.NodeClass.Variable
        ]
        alarms: dict[str, list[AlarmInfo]] = {}
        for device, refs in zip(devices, folders[1::2], strict=True):
            alarms[device.path] = [
                _alarm_info(device.path, device.browse_name, ref) for ref in refs if _is_object(ref)
            ]
        return await self._read_points(point_refs), alarms

    async def _read_points(self, refs: list[_Browsed]) -> dict[str, list[PointInfo]]:
        """Name, data type and engineering unit of each point, by device."""
        paths = [ref.path for ref in refs]
        descriptions = await self._read(paths, AttributeIds.Description)
        data_types = await self._read(paths, AttributeIds.DataType)
        units = await self._read([f"{p}#EngineeringUnits" for p in paths], AttributeIds.Value)
        points: dict[str, list[PointInfo]] = {}
        for ref, description, data_type, unit in zip(
            refs, descriptions, data_types, units, strict=True
        ):
            points.setdefault(ref.parent, []).append(
                _point_info(ref, _value(description), _value(data_type), _value(unit))
            )
        return points

    async def _read_devices(
        self,
        devices: list[_Browsed],
        points: dict[str, list[PointInfo]],
        alarms: dict[str, list[AlarmInfo]],
    ) -> list[DeviceInfo]:
        """Each device's DI properties (one Read), with its points and alarms."""
        values = await self._read(
            [f"{d.path}#{name}" for d in devices for name in _DEVICE_PROPERTIES],
            AttributeIds.Value,
        )
        return [
            _device_info(
                device,
                _good_values(_DEVICE_PROPERTIES, chunk),
                points.get(device.path, []),
                alarms.get(device.path, []),
            )
            for device, chunk in zip(devices, _chunks(values, len(_DEVICE_PROPERTIES)), strict=True)
        ]

    async def _browse_site_alarms(self, site: _Browsed | None) -> tuple[AlarmInfo, ...]:
        """The site's own conditions (security detections …), under ``<site>/Alarms``."""
        if site is None:
            return ()
        [refs] = await self._children([f"{site.path}/Alarms"])
        return tuple(_site_alarm_info(site.path, ref) for ref in refs if _is_object(ref))

    async def read_state(self, model: GatewayModel) -> Snapshot:
        """Current values of every point and the A&C fields of every condition."""
        point_keys = list(model.points)
        alarm_keys = list(model.all_alarms)
        try:
            values = await self._read(point_keys, AttributeIds.Value)
            fields = await self._read(
                [
                    f"{key}.{field.replace('/', '.')}"
                    for key in alarm_keys
                    for field in _CONDITION_FIELDS
                ],
                AttributeIds.Value,
            )
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err)) from err
        return Snapshot(
            points={k: _point_value(dv) for k, dv in zip(point_keys, values, strict=True)},
            alarms={
                key: alarm_status(
                    {
                        name: _value(dv)
                        for name, dv in zip(_CONDITION_FIELDS, chunk, strict=True)
                        if _good(dv)
                    }
                )
                for key, chunk in zip(
                    alarm_keys, _chunks(fields, len(_CONDITION_FIELDS)), strict=True
                )
            },
        )

    async def read_maintenance(self, model: GatewayModel) -> list[MaintenancePlanInfo]:
        """Maintenance and inspection plans of every device, with their due state.

        The gateway serves ``<device>/Maintenance/<plan>`` objects (Title, State,
        DueAt, Remaining, Unit); a gateway without them simply has no plans.
        """
        try:
            folders = {f"{d.key}/Maintenance": d.key for d in model.devices}
            plans = await self._browse_objects(list(folders), _is_object)
            values = await self._read(
                [f"{plan.path}#{name}" for plan in plans for name in _PLAN_FIELDS],
                AttributeIds.Value,
            )
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err)) from err
        out = []
        for plan, chunk in zip(plans, _chunks(values, len(_PLAN_FIELDS)), strict=True):
            fields = _good_values(_PLAN_FIELDS, chunk)
            due = await self._due_at(plan.path) if _text(fields["State"]) in _DUE_STATES else None
            out.append(_plan_info(plan, folders[plan.parent], fields, due))
        return out

    async def _due_at(self, plan: str) -> datetime | None:
        """A due plan's ``DueAt``, read on its own.

        A plan without a due instant (a meter plan) holds a null DateTime, which
        some servers cannot encode: one such variable must not fail the whole read.
        """
        try:
            [value] = await self._read([f"{plan}#DueAt"], AttributeIds.Value)
        except UaError:
            return None
        due = _value(value)
        return _aware(due) if isinstance(due, datetime) else None

    # --- subscriptions ------------------------------------------------------------------

    async def subscribe(self, model: GatewayModel, publishing_interval: float = 250) -> None:
        """Subscribe to every point's value and to condition events of the Server object."""
        try:
            sub = await self._client.create_subscription(publishing_interval, _Handler(self))
            self._subscription = sub
            nodes = {key: self._node(key) for key in model.points}
            self._points_by_node = {node.nodeid: key for key, node in nodes.items()}
            self._alarms_by_node = {_string_node(key, self._ns): key for key in model.all_alarms}
            if nodes:
                await sub.subscribe_data_change(list(nodes.values()), queuesize=10)
            await sub.subscribe_events(
                _numeric_node(ObjectIds.Server), evfilter=_event_filter(), queuesize=100
            )
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err)) from err

    async def updates(self) -> AsyncIterator[list[Update]]:
        """Batches of updates as they arrive; raises :class:`ConnectionLost` when the link breaks.

        Everything already queued is handed out as one batch, so a burst of
        notifications becomes one state write in Home Assistant, not dozens.
        """
        while True:
            item = await self._queue.get()
            batch: list[Update] = []
            while item is not None:
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch:
                yield batch
            if item is None:
                raise ConnectionLost(self.url)

    def _on_value(self, node: Node, data: DataChangeNotif) -> None:
        key = self._points_by_node.get(node.nodeid)
        if key is not None:
            self._queue.put_nowait(PointUpdate(key, _point_value(data.monitored_item.Value)))

    def _on_event(self, event: Event) -> None:
        fields = event.get_event_props_as_fields_dict()
        condition = fields.get("NodeId")
        key = self._alarms_by_node.get(condition.Value) if condition is not None else None
        if key is None:
            return
        values = {name: variant.Value for name, variant in fields.items()}
        self._queue.put_nowait(AlarmUpdate(key, alarm_status(values)))

    def _on_status(self, status: ua.StatusChangeNotification) -> None:
        if not status.Status.is_good():
            _LOGGER.debug("subscription status %s", status.Status)
            self._connected = False
            self._queue.put_nowait(None)

    # --- actions ------------------------------------------------------------------------

    async def _call(self, object_path: str, method: ua.NodeId, *args: ua.Variant) -> list[Any]:
        """Call ``method`` on the object at ``object_path``; return its output values."""
        request = ua.CallMethodRequest()
        request.ObjectId = _string_node(object_path, self._ns)
        request.MethodId = method
        request.InputArguments = list(args)
        try:
            [result] = await self._client.uaclient.call([request])
        except (OSError, TimeoutError, UaError) as err:
            raise CannotConnect(str(err)) from err
        status = result.StatusCode
        if status is not None and not status.is_good():
            raise ActionRefused(status.name)
        return [_value_of(output) for output in result.OutputArguments or []]

    async def read_event_id(self, alarm: AlarmInfo) -> bytes | None:
        """The condition's latest EventId (what Acknowledge, Confirm and AddComment name)."""
        [value] = await self._read([f"{alarm.key}.EventId"], AttributeIds.Value)
        event_id = _value(value)
        return event_id if isinstance(event_id, bytes) else None

    async def _call_on_event(
        self, alarm: AlarmInfo, method: ua.NodeId, event_id: bytes | None, comment: str
    ) -> None:
        """Call a Part 9 method that names one of the condition's events and takes a comment.

        A stale EventId (another client acted in between) is refreshed from the
        condition and tried once more.
        """
        text = ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText)
        for attempt in range(2):
            if event_id is None or attempt:
                event_id = await self.read_event_id(alarm)
            try:
                await self._call(
                    alarm.key, method, ua.Variant(event_id, ua.VariantType.ByteString), text
                )
                return
            except ActionRefused as err:
                if err.status != "BadEventIdUnknown" or attempt:
                    raise

    async def acknowledge(self, alarm: AlarmInfo, event_id: bytes | None, comment: str) -> None:
        """Acknowledge (Part 9 ``Acknowledge``) the condition's event ``event_id``."""
        await self._call_on_event(alarm, _ACKNOWLEDGE, event_id, comment)

    async def confirm(self, alarm: AlarmInfo, event_id: bytes | None, comment: str) -> None:
        """Confirm (Part 9 ``Confirm``) an acknowledged alarm that has returned to normal."""
        await self._call_on_event(alarm, _CONFIRM, event_id, comment)

    async def add_comment(self, alarm: AlarmInfo, event_id: bytes | None, comment: str) -> None:
        """Add a comment (Part 9 ``AddComment``) to the condition, for its journal."""
        await self._call_on_event(alarm, _ADD_COMMENT, event_id, comment)

    async def remove_from_service(self, alarm: AlarmInfo) -> None:
        """Take the alarm out of service (``AlarmConditionType.RemoveFromService``)."""
        await self._call(alarm.key, _REMOVE_FROM_SERVICE)

    async def place_in_service(self, alarm: AlarmInfo) -> None:
        """Return the alarm to service (``AlarmConditionType.PlaceInService``)."""
        await self._call(alarm.key, _PLACE_IN_SERVICE)

    async def shelve(self, alarm: AlarmInfo, seconds: float | None) -> None:
        """Timed shelve for ``seconds``, or a one-shot shelve when None."""
        target = f"{alarm.key}.ShelvingState"
        if seconds is None:
            await self._call(target, _ONE_SHOT_SHELVE)
        else:
            await self._call(
                target, _TIMED_SHELVE, ua.Variant(seconds * 1000.0, ua.VariantType.Double)
            )

    async def unshelve(self, alarm: AlarmInfo) -> None:
        await self._call(f"{alarm.key}.ShelvingState", _UNSHELVE)

    async def record_maintenance(
        self, device: DeviceInfo, plan_id: str, work_done: str, performer: str, result: str
    ) -> None:
        """Call the device's ``RecordMaintenance``.

        Arguments, all strings: PlanId, WorkDone, Result, Passed,
        CertificateNumber, Performer.  The gateway checks the session's role
        (operator and above) and journals the record.
        """
        strings = [
            ua.Variant(text, ua.VariantType.String)
            for text in (plan_id, work_done, result, "", "", performer)
        ]
        method = _string_node(f"{device.key}.RecordMaintenance", self._ns)
        await self._call(device.key, method, *strings)

    async def report_hazard(
        self, site: str, title: str, description: str, device_id: str, point_id: str
    ) -> str:
        """Call the site's ``ReportHazard`` and return the hidden danger's id.

        Arguments, all strings: Title, Description, Device, Point (the gateway's
        ids, empty for none).  The gateway has the method when its risk plugin
        reports hidden dangers; it checks the session's role (operator and
        above) and the ids, and journals the report with the account's name.
        """
        strings = [
            ua.Variant(text, ua.VariantType.String)
            for text in (title, description, device_id, point_id)
        ]
        method = _string_node(f"{site}.ReportHazard", self._ns)
        outputs = await self._call(site, method, *strings)
        return _text(outputs[0]) if outputs else ""


class _Handler:
    """asyncua subscription callbacks, forwarded to the client's queue."""

    def __init__(self, client: GatewayClient) -> None:
        self._client = client

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._client._on_value(node, data)

    def event_notification(self, event: Event) -> None:
        self._client._on_event(event)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self._client._on_status(status)


#: Names of the objects a site or device has besides areas and devices.
_RESERVED: Final = frozenset({"Alarms", "Maintenance", "Statistics", "Points"})


def _string_node(path: str, namespace: int) -> ua.NodeId:
    """A PlantGuard node: its string NodeId is the path (``demo/utilities/pump1``)."""
    return ua.NodeId(ua.String(path), ua.Int16(namespace), ua.NodeIdType.String)


@dataclass(frozen=True, slots=True)
class _Browsed:
    """A node found by browsing: its path, its names, and the node it was found under."""

    parent: str
    path: str
    browse_name: str
    display_name: str
    #: For a device: the display name of its area.
    area: str = ""

    @classmethod
    def of(cls, parent: str, ref: ua.ReferenceDescription) -> _Browsed:
        return cls(
            parent=parent,
            path=str(ref.NodeId.Identifier),
            browse_name=_name(ref),
            display_name=_text(ref.DisplayName),
        )

    def in_area(self, area: str) -> _Browsed:
        return replace(self, area=area)


def _name(ref: ua.ReferenceDescription) -> str:
    return ref.BrowseName.Name or ""


def _type_is(ref: ua.ReferenceDescription, type_id: int) -> bool:
    definition = ref.TypeDefinition
    return bool(definition.NamespaceIndex == 0 and definition.Identifier == type_id)


def _is_object(ref: ua.ReferenceDescription) -> bool:
    return bool(ref.NodeClass == ua.NodeClass.Object)


def _is_area(ref: ua.ReferenceDescription) -> bool:
    """Areas are the site's folders (its Alarms, Maintenance and Statistics are its own)."""
    return _is_object(ref) and _type_is(ref, ObjectIds.FolderType) and _name(ref) not in _RESERVED


def _is_device(ref: ua.ReferenceDescription) -> bool:
    """Devices are an area's plain objects (BaseObjectType)."""
    plain = _is_object(ref) and _type_is(ref, ObjectIds.BaseObjectType)
    return plain and _name(ref) not in _RESERVED


def _value(data_value: ua.DataValue) -> Any:
    """The value a Read returned (None when it has none)."""
    return data_value.Value.Value if data_value.Value is not None else None


def _good(data_value: ua.DataValue) -> bool:
    """Whether a Read succeeded (an omitted StatusCode means Good)."""
    status = data_value.StatusCode
    return status is None or status.is_good()


def _good_values(names: Sequence[str], values: Sequence[ua.DataValue]) -> dict[str, Any]:
    """``names`` → the values read for them; None where the read failed."""
    return {name: _value(dv) if _good(dv) else None for name, dv in zip(names, values, strict=True)}


def _chunks[T](items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive runs of ``size`` (a batched read of several fields per node)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _point_info(ref: _Browsed, description: Any, data_type: Any, unit: Any) -> PointInfo:
    """A point variable from its Description, DataType and EngineeringUnits."""
    local = ref.path.rsplit("/", 1)[-1]
    return PointInfo(
        key=ref.path,
        device_key=ref.parent,
        point_id=local,
        name=_text(description) or local,
        data_type=_data_type(data_type),
        unit=_text(unit.DisplayName) if isinstance(unit, ua.EUInformation) else "",
    )


def _alarm_info(device: str, device_id: str, ref: ua.ReferenceDescription) -> AlarmInfo:
    """A device's condition; the gateway's alarm id is ``<device id>.<condition name>``."""
    name = _name(ref)
    return AlarmInfo(
        key=str(ref.NodeId.Identifier),
        device_key=device,
        alarm_id=f"{device_id}.{name}",
        name=name,
        source_name=device_id,
    )


def _site_alarm_info(site: str, ref: ua.ReferenceDescription) -> AlarmInfo:
    """One of the site's own conditions; its alarm id is the condition name."""
    name = _name(ref)
    return AlarmInfo(
        key=str(ref.NodeId.Identifier),
        device_key="",
        alarm_id=name,
        name=name,
        source_name=site,
    )


def _device_info(
    device: _Browsed,
    values: dict[str, Any],
    points: Sequence[PointInfo],
    alarms: Sequence[AlarmInfo],
) -> DeviceInfo:
    """A device from its browse names and its DI properties (:data:`_DEVICE_PROPERTIES`)."""
    return DeviceInfo(
        key=device.path,
        device_id=device.browse_name,
        name=device.display_name or device.browse_name,
        area=device.area,
        manufacturer=_text(values["Manufacturer"]),
        model=_text(values["Model"]),
        serial_number=_text(values["SerialNumber"]),
        hardware_version=_text(values["HardwareRevision"]),
        firmware_version=_text(values["SoftwareRevision"]),
        category=_text(values["DeviceClass"]),
        location=_text(values["Location"]),
        status=_text(values["Status"]),
        safety_critical=bool(values["SafetyCritical"]),
        points=tuple(points),
        alarms=tuple(alarms),
    )


def _plan_info(
    plan: _Browsed, device_key: str, fields: dict[str, Any], due: datetime | None
) -> MaintenancePlanInfo:
    """A device's maintenance plan from its variables (:data:`_PLAN_FIELDS`) and due instant."""
    remaining = fields["Remaining"]
    return MaintenancePlanInfo(
        key=plan.path,
        device_key=device_key,
        plan_id=plan.browse_name,
        title=_text(fields["Title"]) or plan.browse_name,
        state=_text(fields["State"]),
        due=due,
        remaining=float(remaining) if isinstance(remaining, int | float) else None,
        unit=_text(fields["Unit"]),
    )


def _data_type(node_id: Any) -> str:
    if isinstance(node_id, ua.NodeId) and node_id.NamespaceIndex == 0:
        if node_id.Identifier == ObjectIds.Boolean:
            return "bool"
        if node_id.Identifier in (
            ObjectIds.Int16,
            ObjectIds.Int32,
            ObjectIds.Int64,
            ObjectIds.UInt16,
            ObjectIds.UInt32,
            ObjectIds.UInt64,
        ):
            return "int"
    return "float"
