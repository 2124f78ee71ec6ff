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
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import logging
from typing import Any, Final

from asyncua import Client, Node, ua
from asyncua.common.events import Event
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

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

#: ShelvedStateMachineType states (Part 9) → PlantGuard's shelving names.
_SHELVING: Final = {
    ua.ObjectIds.ShelvedStateMachineType_TimedShelved: "timed",
    ua.ObjectIds.ShelvedStateMachineType_OneShotShelved: "oneshot",
}

_ACKNOWLEDGE: Final = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
_TIMED_SHELVE: Final = ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_TimedShelve)
_ONE_SHOT_SHELVE: Final = ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_OneShotShelve)
_UNSHELVE: Final = ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_Unshelve)


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
        op.TypeDefinitionId = ua.NodeId(ua.ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(part, 0) for part in path.split("/")]
        op.AttributeId = ua.AttributeIds.Value
        clauses.append(op)
    condition_id = ua.SimpleAttributeOperand()
    condition_id.TypeDefinitionId = ua.NodeId(ua.ObjectIds.ConditionType)
    condition_id.BrowsePath = []
    condition_id.AttributeId = ua.AttributeIds.NodeId
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
        except (OSError, TimeoutError, ua.UaError) as err:
            raise CannotConnect(str(err) or type(err).__name__) from err
        self._connected = True
        try:
            namespaces = await client.get_namespace_array()
        except (OSError, TimeoutError, ua.UaError) as err:
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
        return self._client.get_node(ua.NodeId(path, self._ns, ua.NodeIdType.String))

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

    async def _read(self, paths: list[str], attr: ua.AttributeIds) -> list[ua.DataValue]:
        if not paths:
            return []
        nodes = [self._node(p) for p in paths]
        return await self._client.read_attributes(nodes, attr)

    async def read_model(self) -> GatewayModel:
        """Browse ``Objects/PlantGuard`` into a :class:`GatewayModel` (a few batched calls)."""
        try:
            return await self._read_model()
        except (OSError, TimeoutError, ua.UaError) as err:
            raise CannotConnect(str(err)) from err

    async def _read_model(self) -> GatewayModel:
        client = self._client
        server_uri, build = await client.read_values(
            [
                client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerArray)),
                client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_BuildInfo)),
            ]
        )
        application_uri = server_uri[0] if server_uri else self.url
        [sites] = await self._children(["/"])
        site_refs = [r for r in sites if r.NodeClass == ua.NodeClass.Object]
        site_paths = [str(r.NodeId.Identifier) for r in site_refs]
        site_name = _text(site_refs[0].DisplayName) if site_refs else ""
        # Areas are the site's folders; its Maintenance, Statistics and Alarms
        # objects are the site's own.
        area_refs = [
            r
            for refs in await self._children(site_paths)
            for r in refs
            if _is_folder(r) and r.BrowseName.Name not in _RESERVED
        ]
        area_paths = [str(r.NodeId.Identifier) for r in area_refs]
        area_names = {p: _text(r.DisplayName) for p, r in zip(area_paths, area_refs, strict=True)}
        # Devices are plain objects (BaseObjectType) in an area.
        device_refs: list[tuple[str, ua.ReferenceDescription]] = [
            (area, r)
            for area, refs in zip(area_paths, await self._children(area_paths), strict=True)
            for r in refs
            if _is_plain_object(r) and r.BrowseName.Name not in _RESERVED
        ]
        device_paths = [str(r.NodeId.Identifier) for _, r in device_refs]
        props = await self._read(
            [f"{d}#{name}" for d in device_paths for name in _DEVICE_PROPERTIES],
            ua.AttributeIds.Value,
        )
        folders = await self._children(
            [f"{d}/{folder}" for d in device_paths for folder in ("Points", "Alarms")]
        )
        site_alarm_refs = [
            r
            for refs in await self._children([f"{p}/Alarms" for p in site_paths])
            for r in refs
            if r.NodeClass == ua.NodeClass.Object
        ]
        point_refs = [
            (device, r)
            for i, device in enumerate(device_paths)
            for r in (folders[2 * i] if folders[2 * i] else [])
            if r.NodeClass == ua.NodeClass.Variable
        ]
        alarm_refs = [
            (device, r)
            for i, device in enumerate(device_paths)
            for r in (folders[2 * i + 1] if folders[2 * i + 1] else [])
            if r.NodeClass == ua.NodeClass.Object
        ]
        point_paths = [str(r.NodeId.Identifier) for _, r in point_refs]
        descriptions = await self._read(point_paths, ua.AttributeIds.Description)
        data_types = await self._read(point_paths, ua.AttributeIds.DataType)
        units = await self._read(
            [f"{p}#EngineeringUnits" for p in point_paths], ua.AttributeIds.Value
        )
        points: dict[str, list[PointInfo]] = {}
        for (device, _ref), path, desc, dtype, unit in zip(
            point_refs, point_paths, descriptions, data_types, units, strict=True
        ):
            local = path.rsplit("/", 1)[-1]
            eu = unit.Value.Value if unit.Value is not None else None
            points.setdefault(device, []).append(
                PointInfo(
                    key=path,
                    device_key=device,
                    point_id=local,
                    name=_text(desc.Value.Value if desc.Value else None) or local,
                    data_type=_data_type(dtype.Value.Value if dtype.Value else None),
                    unit=_text(eu.DisplayName) if isinstance(eu, ua.EUInformation) else "",
                )
            )
        alarms: dict[str, list[AlarmInfo]] = {}
        device_ids = {str(r.NodeId.Identifier): r.BrowseName.Name for _, r in device_refs}
        for device, ref in alarm_refs:
            path = str(ref.NodeId.Identifier)
            local = ref.BrowseName.Name
            alarms.setdefault(device, []).append(
                AlarmInfo(
                    key=path,
                    device_key=device,
                    alarm_id=f"{device_ids[device]}.{local}",
                    name=local,
                    source_name=device_ids[device],
                )
            )
        site_alarms = tuple(
            AlarmInfo(
                key=str(ref.NodeId.Identifier),
                device_key="",
                alarm_id=ref.BrowseName.Name,
                name=ref.BrowseName.Name,
                source_name=site_paths[0],
            )
            for ref in site_alarm_refs
        )
        devices = []
        count = len(_DEVICE_PROPERTIES)
        for i, (area, ref) in enumerate(device_refs):
            path = device_paths[i]
            values = {
                name: dv.Value.Value if dv.Value is not None and dv.StatusCode.is_good() else None
                for name, dv in zip(
                    _DEVICE_PROPERTIES, props[i * count : (i + 1) * count], strict=True
                )
            }
            devices.append(
                DeviceInfo(
                    key=path,
                    device_id=ref.BrowseName.Name,
                    name=_text(ref.DisplayName) or ref.BrowseName.Name,
                    area=area_names.get(area, ""),
                    manufacturer=_text(values["Manufacturer"]),
                    model=_text(values["Model"]),
                    serial_number=_text(values["SerialNumber"]),
                    hardware_version=_text(values["HardwareRevision"]),
                    firmware_version=_text(values["SoftwareRevision"]),
                    category=_text(values["DeviceClass"]),
                    location=_text(values["Location"]),
                    status=_text(values["Status"]),
                    safety_critical=bool(values["SafetyCritical"]),
                    points=tuple(points.get(path, ())),
                    alarms=tuple(alarms.get(path, ())),
                )
            )
        return GatewayModel(
            application_uri=str(application_uri),
            name=site_name or (site_paths[0] if site_paths else application_uri),
            site_id=site_paths[0] if site_paths else "",
            product=_text(getattr(build, "ProductName", "")) or "PlantGuard",
            software_version=_text(getattr(build, "SoftwareVersion", "")),
            devices=tuple(devices),
            alarms=site_alarms,
        )

    async def read_state(self, model: GatewayModel) -> Snapshot:
        """Current values of every point and the A&C fields of every condition."""
        try:
            point_keys = list(model.points)
            values = await self._read(point_keys, ua.AttributeIds.Value)
            alarm_keys = list(model.all_alarms)
            paths = [
                f"{key}.{field.replace('/', '.')}"
                for key in alarm_keys
                for field in _CONDITION_FIELDS
            ]
            fields = await self._read(paths, ua.AttributeIds.Value)
        except (OSError, TimeoutError, ua.UaError) as err:
            raise CannotConnect(str(err)) from err
        points = {k: _point_value(dv) for k, dv in zip(point_keys, values, strict=True)}
        alarms = {}
        count = len(_CONDITION_FIELDS)
        for i, key in enumerate(alarm_keys):
            chunk = fields[i * count : (i + 1) * count]
            alarms[key] = alarm_status(
                {
                    name: dv.Value.Value if dv.Value is not None else None
                    for name, dv in zip(_CONDITION_FIELDS, chunk, strict=True)
                    if dv.StatusCode.is_good()
                }
            )
        return Snapshot(points=points, alarms=alarms)

    async def read_maintenance(self, model: GatewayModel) -> list[MaintenancePlanInfo]:
        """Maintenance and inspection plans of every device, with their due state.

        The gateway serves ``<device>/Maintenance/<plan>`` objects (Title, State,
        DueAt, Remaining, Unit); a gateway without them simply has no plans.
        ``DueAt`` is read on its own for the plans that are due: a plan without a
        due instant (a meter plan) holds a null DateTime, which some servers
        cannot encode, and one such variable must not fail the whole read.
        """
        try:
            folders = await self._children([f"{d.key}/Maintenance" for d in model.devices])
            plans: list[tuple[str, str, str]] = [
                (device.key, str(ref.NodeId.Identifier), ref.BrowseName.Name)
                for device, refs in zip(model.devices, folders, strict=True)
                for ref in refs
                if ref.NodeClass == ua.NodeClass.Object
            ]
            values = await self._read(
                [f"{plan}#{name}" for _, plan, _ in plans for name in _PLAN_FIELDS],
                ua.AttributeIds.Value,
            )
        except (OSError, TimeoutError, ua.UaError) as err:
            raise CannotConnect(str(err)) from err
        out = []
        count = len(_PLAN_FIELDS)
        for i, (device, plan, plan_id) in enumerate(plans):
            got = {
                name: dv.Value.Value if dv.Value is not None and dv.StatusCode.is_good() else None
                for name, dv in zip(_PLAN_FIELDS, values[i * count : (i + 1) * count], strict=True)
            }
            state = _text(got["State"])
            remaining = got["Remaining"]
            due = await self._due_at(plan) if state in ("due_soon", "overdue") else None
            out.append(
                MaintenancePlanInfo(
                    key=plan,
                    device_key=device,
                    plan_id=plan_id,
                    title=_text(got["Title"]) or plan_id,
                    state=state,
                    due=due,
                    remaining=float(remaining) if isinstance(remaining, int | float) else None,
                    unit=_text(got["Unit"]),
                )
            )
        return out

    async def _due_at(self, plan: str) -> datetime | None:
        try:
            [value] = await self._read([f"{plan}#DueAt"], ua.AttributeIds.Value)
        except ua.UaError:
            return None
        due = value.Value.Value if value.Value is not None else None
        return _aware(due) if isinstance(due, datetime) else None

    # --- subscriptions ------------------------------------------------------------------

    async def subscribe(self, model: GatewayModel, publishing_interval: float = 250) -> None:
        """Subscribe to every point's value and to condition events of the Server object."""
        try:
            sub = await self._client.create_subscription(publishing_interval, _Handler(self))
            self._subscription = sub
            nodes = [self._node(key) for key in model.points]
            self._points_by_node = {node.nodeid: node.nodeid.Identifier for node in nodes}
            self._alarms_by_node = {
                ua.NodeId(key, self._ns, ua.NodeIdType.String): key for key in model.all_alarms
            }
            if nodes:
                await sub.subscribe_data_change(nodes, queuesize=10)
            await sub.subscribe_events(
                ua.NodeId(ua.ObjectIds.Server), evfilter=_event_filter(), queuesize=100
            )
        except (OSError, TimeoutError, ua.UaError) as err:
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

    async def _call(self, object_path: str, method: ua.NodeId, *args: ua.Variant) -> None:
        request = ua.CallMethodRequest()
        request.ObjectId = ua.NodeId(object_path, self._ns, ua.NodeIdType.String)
        request.MethodId = method
        request.InputArguments = list(args)
        try:
            [result] = await self._client.uaclient.call([request])
        except (OSError, TimeoutError, ua.UaError) as err:
            raise CannotConnect(str(err)) from err
        if not result.StatusCode.is_good():
            raise ActionRefused(result.StatusCode.name)

    async def read_event_id(self, alarm: AlarmInfo) -> bytes | None:
        """The condition's latest EventId (what Acknowledge must name)."""
        [value] = await self._read([f"{alarm.key}.EventId"], ua.AttributeIds.Value)
        event_id = value.Value.Value if value.Value is not None else None
        return event_id if isinstance(event_id, bytes) else None

    async def acknowledge(self, alarm: AlarmInfo, event_id: bytes | None, comment: str) -> None:
        """Acknowledge (Part 9 Acknowledge) the condition's event ``event_id``.

        A stale EventId (another client acted in between) is refreshed from the
        condition and tried once more.
        """
        text = ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText)
        for attempt in range(2):
            if event_id is None or attempt:
                event_id = await self.read_event_id(alarm)
            try:
                await self._call(
                    alarm.key, _ACKNOWLEDGE, ua.Variant(event_id, ua.VariantType.ByteString), text
                )
                return
            except ActionRefused as err:
                if err.status != "BadEventIdUnknown" or attempt:
                    raise

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
        method = ua.NodeId(f"{device.key}.RecordMaintenance", self._ns, ua.NodeIdType.String)
        await self._call(device.key, method, *strings)


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


def _type_is(ref: ua.ReferenceDescription, type_id: int) -> bool:
    definition = ref.TypeDefinition
    return definition.NamespaceIndex == 0 and definition.Identifier == type_id


def _is_folder(ref: ua.ReferenceDescription) -> bool:
    return ref.NodeClass == ua.NodeClass.Object and _type_is(ref, ua.ObjectIds.FolderType)


def _is_plain_object(ref: ua.ReferenceDescription) -> bool:
    return ref.NodeClass == ua.NodeClass.Object and _type_is(ref, ua.ObjectIds.BaseObjectType)


def _data_type(node_id: Any) -> str:
    if isinstance(node_id, ua.NodeId) and node_id.NamespaceIndex == 0:
        if node_id.Identifier == ua.ObjectIds.Boolean:
            return "bool"
        if node_id.Identifier in (
            ua.ObjectIds.Int16,
            ua.ObjectIds.Int32,
            ua.ObjectIds.Int64,
            ua.ObjectIds.UInt16,
            ua.ObjectIds.UInt32,
            ua.ObjectIds.UInt64,
        ):
            return "int"
    return "float"
