"""Everything PlantGuard needs from asyncua's server internals, in one module.

asyncua 2.1 lacks three things Alarms & Conditions need (docs/opcua.md lists them):

1. **The calling session's user in method callbacks.**  Sessions are created by
   ``InternalServer.create_session``; :func:`install` makes that create a
   :class:`_Session`, whose ``call`` publishes the session's principal in a
   context variable for the duration of the call (:func:`calling_principal`).
2. **Event filters matching subtypes.**  ``_Session.create_monitored_items``
   replaces the evaluator of each new event item by
   :class:`.event_filter.SubtypeAwareWhereClause`.
3. **Events reaching more than one notifier, and ConditionRefresh per notifier.**
   :func:`deliver` and :func:`refresh` put events straight into the monitored
   items watching the Server object or the alarm's device.  :func:`publish_events_now`
   sends them without waiting for the end of the publishing interval.

and PlantGuard does two things differently:

4. **An address space that is mostly a view.**  :func:`use_view` turns the
   server's ``AddressSpace`` into a :class:`ViewAddressSpace`, which answers the
   PlantGuard nodes it does not hold from a :class:`.view.SiteView`, and sends
   data-change items on point values to :class:`.subscriptions.PointSubscriptions`
   instead of per-node callbacks.
5. **Condition instances copied, not instantiated** (:class:`NodeTemplate`).

Adopting a newer asyncua should mean revisiting this module (and the queue
handling in :mod:`.subscriptions`) only.  It uses ``AddressSpace._nodes`` and
``._datachange_callback_counter``, ``NodeManagementService._add_node``,
``MonitoredItemService._monitored_items``, ``._monitored_datachange``,
``._monitored_events``, ``InternalSubscription._triggered_datachanges``, ``._triggered_events``,
``._publishing_enabled`` and ``.enqueue_event``, and ``UaProcessor._publish_requests``;
a test exercises each path.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AddressSpace
from asyncua.server.address_space import AttributeValue as AddressSpaceValue
from asyncua.server.address_space import NodeData as AddressSpaceNode
from asyncua.server.internal_session import InternalSession, SessionState
from asyncua.server.server import Server
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import struct_from_binary

from plantguard.auth import ANONYMOUS, Principal
from plantguard.throttle import LoginThrottle

from . import nodeids
from .arguments import ArgumentCheck, base_type_finder
from .event_filter import SubtypeAwareWhereClause
from .events import ConditionEvent, numeric_node
from .limits import ResourceLimits, revise_items, revise_modified, session_items
from .point_writes import PointWrites
from .subscriptions import PointSubscriptions
from .view import SiteView

__all__ = [
    "NodeTemplate",
    "PrincipalUserManager",
    "ViewAddressSpace",
    "cache_reference_subtypes",
    "calling_principal",
    "deliver",
    "install",
    "refresh",
    "subscription_exists",
    "subtype_checker",
    "use_view",
]


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


log = logging.getLogger(__name__)

_caller: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "plantguard_opcua_caller", default=ANONYMOUS
)


def calling_principal() -> Principal:
    """Who is calling the OPC UA method being executed (anonymous outside a call)."""
    return _caller.get()


@dataclass
class _PrincipalUser(User):
    """asyncua's user record, carrying the PlantGuard principal it was authenticated as."""

    principal: Principal = field(default=ANONYMOUS)


class PrincipalUserManager:
    """asyncua user manager backed by PlantGuard's users.

    Every session gets asyncua's ``User`` role, which lets it browse, read,
    subscribe and call; whether a call may *act* is decided by the alarm manager
    from the principal.  Anonymous sessions are the anonymous principal; a wrong
    name or password is refused (``BadUserAccessDenied``).

    Passwords go through :attr:`throttle` (:mod:`plantguard.throttle`): delays and
    locks per user name and client address, the scrypt check in a worker thread.
    asyncua calls ``InternalSession.activate_session`` — and through it
    :meth:`get_user` — synchronously, so the check cannot wait there: making a
    manager hooks asyncua's ActivateSession handling (:func:`_hook_activation`), which
    awaits :meth:`activate` first and answers a refusal itself; :meth:`get_user`
    then takes the principal already checked.
    """

    def __init__(
        self,
        authenticate: Callable[[str, str], Principal | None],
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._authenticate = authenticate
        #: Failed-login delays and locks; assign another to change its settings.
        self.throttle = throttle if throttle is not None else LoginThrottle(service="OPC UA")
        _hook_activation()

    async def activate(self, processor: Any, header: ua.RequestHeader, body: Any) -> _Checked:
        """Check the user name token of an ActivateSession request, throttled.

        ``body`` is the request's parameters, unread.  Returns the checked login, or
        None when there is no password to check (anonymous, certificate, a request
        asyncua will refuse anyway); raises :class:`_Refused` when refused.
        """
        iserver = processor.iserver
        session = processor.session or iserver.lookup_external_session(header.AuthenticationToken)
        if not isinstance(session, InternalSession) or session.state == SessionState.Closed:
            return None
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body)
            token = params.UserIdentityToken
            if not isinstance(token, ua.UserNameIdentityToken) or not isinstance(
                token, iserver.supported_tokens
            ):
                return None
            username, password = iserver.decrypt_user_token(session, token)
        except Exception:
            return None  # asyncua refuses the token itself, as before
        name, secret = str(username or ""), str(password or "")
        host, port = _peer(processor.name)
        principal = await self.throttle.attempt(
            name, host, port, lambda: self._authenticate(name, secret)
        )
        if principal is None:
            raise _Refused
        return name, secret, principal

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return _PrincipalUser(role=UserRole.User, name=None, principal=ANONYMOUS)
        checked = _checked_login.get()
        if (
            checked is not None
            and checked[0] == username
            and hmac.compare_digest(checked[1].encode(), (password or "").encode())
        ):
            principal: Principal | None = checked[2]
        else:  # not through ActivateSession's hook: locks still hold, without waiting
            secret = password or ""
            principal = self.throttle.attempt_now(
                username, None, None, lambda: self._authenticate(username, secret)
            )
            if principal is None:
                return None
        assert principal is not None
        log.info("OPC UA session for user %r (%s)", username, principal.role.label)
        return _PrincipalUser(role=UserRole.User, name=username, principal=principal)


#: A login checked by :meth:`PrincipalUserManager.activate`: user, password, principal.
_Checked = tuple[str, str, Principal] | None
_checked_login: contextvars.ContextVar[_Checked] = contextvars.ContextVar(
    "plantguard_opcua_checked_login", default=None
)
_ACTIVATE_SESSION = numeric_node(ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


class _Refused(Exception):
    """A login refused by the throttle or the password check."""


def _peer(name: Any) -> tuple[str | None, int | None]:
    """Host and port of asyncua's peer name (the transport's ``peername``)."""
    if isinstance(name, tuple) and len(name) >= 2:
        return str(name[0]), int(name[1])
    return (str(name) if name else None), None


def _hook_activation() -> None:
    """Await :meth:`PrincipalUserManager.activate` before asyncua handles an
    ActivateSession request (asyncua's own handling calls the user manager
    synchronously, on the event loop).

    Patches ``UaProcessor._process_message`` once; servers without a
    :class:`PrincipalUserManager` are handled exactly as before.  A refusal is
    answered here with ``BadUserAccessDenied`` — asyncua would log an ERROR line per
    refused attempt.
    """
    original: Callable[..., Awaitable[Any]] = UaProcessor._process_message
    if getattr(original, "plantguard_hook", False):
        return

    async def _process_message(
        self: Any, typeid: ua.NodeId, header: ua.RequestHeader, seqhdr: Any, body: Any
    ) -> Any:
        manager = self.iserver.user_manager
        if typeid != _ACTIVATE_SESSION or not isinstance(manager, PrincipalUserManager):
            return await original(self, typeid, header, seqhdr, body)
        try:
            checked = await manager.activate(self, header, body.copy())
        except _Refused:
            response = ua.ServiceFault()
            response.ResponseHeader.ServiceResult = _status(StatusCodes.BadUserAccessDenied)
            self.send_response(header.RequestHandle, seqhdr, response)
            return True
        token = _checked_login.set(checked)
        try:
            return await original(self, typeid, header, seqhdr, body)
        finally:
            _checked_login.reset(token)

    _process_message.plantguard_hook = True  # type: ignore[attr-defined]
    UaProcessor._process_message = _process_message  # type: ignore[method-assign]


class _Session(InternalSession):
    is_subtype: Callable[[ua.NodeId, ua.NodeId], bool]
    point_writes: PointWrites | None = None
    check_arguments: ArgumentCheck | None = None
    limits: ResourceLimits = ResourceLimits()

    on_closed: Callable[[], None] | None = None

    async def close_session(self, delete_subs: bool = True) -> None:
        release, self.on_closed = self.on_closed, None
        if release is not None:
            release()
        await super().close_session(delete_subs)

    def _own_subscriptions(self) -> list[Any]:
        subscriptions = self.subscription_service.subscriptions.values()
        return [sub for sub in subscriptions if sub.session_id == self.session_id]

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        """Point values go to the engine (role check, device); the rest to asyncua."""
        handler = self.point_writes
        items = list(params.NodesToWrite)
        if handler is None or not any(handler.handles(i) for i in items):
            return list(await super().write(params))
        principal = getattr(self.user, "principal", ANONYMOUS)
        results: list[ua.StatusCode | None] = [None] * len(items)
        rest = [n for n, item in enumerate(items) if not handler.handles(item)]
        for n, item in enumerate(items):
            if handler.handles(item):
                results[n] = await handler.write(item, principal)
        if rest:
            others = ua.WriteParameters()
            others.NodesToWrite = [items[n] for n in rest]
            for n, status in zip(rest, await super().write(others), strict=True):
                results[n] = status
        return [r if r is not None else ua.StatusCode() for r in results]

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        """Arguments checked against each method's declaration first (:mod:`.arguments`);
        the rest run with the session's principal published for the handlers."""
        check = self.check_arguments
        refused = [check(request) if check else None for request in params]
        to_run = [request for request, refusal in zip(params, refused, strict=True) if not refusal]
        principal = getattr(self.user, "principal", ANONYMOUS)
        token = _caller.set(principal)
        try:
            ran = iter(await super().call(to_run) if to_run else [])
        finally:
            _caller.reset(token)
        return [refusal or next(ran) for refusal in refused]

    async def create_monitored_items(
        self, params: ua.CreateMonitoredItemsParameters
    ) -> list[ua.MonitoredItemCreateResult]:
        sub = self.subscription_service.subscriptions.get(params.SubscriptionId)
        if sub is None:
            return list(await super().create_monitored_items(params))
        requests = list(params.ItemsToCreate)
        refusals = revise_items(requests, session_items(self._own_subscriptions()), self.limits)
        params.ItemsToCreate = [r for r, no in zip(requests, refusals, strict=True) if no is None]
        created = iter(await super().create_monitored_items(params))
        results = [
            next(created)
            if code is None
            else ua.MonitoredItemCreateResult(StatusCode=_status(code))
            for code in refusals
        ]
        is_subtype = self.is_subtype
        aspace = self.aspace
        for request, result in zip(requests, results, strict=True):
            mdata = sub.monitored_item_srv._monitored_items.get(result.MonitoredItemId)
            if mdata is None:
                continue
            if mdata.where_clause_evaluator is not None:
                mdata.where_clause_evaluator = SubtypeAwareWhereClause(  # type: ignore[assignment]
                    mdata.filter.WhereClause, is_subtype
                )
            # asyncua keeps neither; point subscriptions honour both.
            mdata.discard_oldest = request.RequestedParameters.DiscardOldest  # type: ignore[attr-defined]
            if isinstance(aspace, ViewAddressSpace):
                mdata.percent_deadband_span = aspace.range_span(  # type: ignore[attr-defined]
                    request.ItemToMonitor.NodeId
                )
                handle = mdata.callback_handle
                if handle is not None and handle in aspace._points:
                    # Point values are compared by PointSubscriptions; asyncua's copies
                    # of each item's last two values would only burden the collector.
                    mdata.mvalue = _LATEST_ONLY  # type: ignore[assignment]
        if isinstance(aspace, ViewAddressSpace):
            aspace.items_created()
        return results

    async def set_monitoring_mode(
        self, params: ua.SetMonitoringModeParameters
    ) -> list[ua.StatusCode]:
        results: list[ua.StatusCode] = await super().set_monitoring_mode(params)
        if isinstance(self.aspace, ViewAddressSpace):
            self.aspace.items_changed()
        return results

    async def modify_monitored_items(
        self, params: ua.ModifyMonitoredItemsParameters
    ) -> list[ua.MonitoredItemModifyResult]:
        sub = self.subscription_service.subscriptions.get(params.SubscriptionId)
        if sub is not None:
            revise_modified(
                params.ItemsToModify,
                sub.monitored_item_srv._monitored_items,
                session_items(self._own_subscriptions()),
                self.limits,
            )
        results: list[ua.MonitoredItemModifyResult] = await super().modify_monitored_items(params)
        if isinstance(self.aspace, ViewAddressSpace):
            self.aspace.items_changed()
        return results


def subtype_checker(iserver: Any) -> Callable[[ua.NodeId, ua.NodeId], bool]:
    """``is_subtype(type, ancestor)`` over the server's type hierarchy, cached: the live
    event filters of :func:`install`'s sessions and history's ReadEvent use it."""
    cache: dict[tuple[ua.NodeId, ua.NodeId], bool] = {}
    aspace = iserver.aspace
    has_subtype = numeric_node(ObjectIds.HasSubtype)

    def is_subtype(node: ua.NodeId, ancestor: ua.NodeId) -> bool:
        key = (node, ancestor)
        if key not in cache:
            current: ua.NodeId | None = node
            found = False
            for _ in range(64):  # type hierarchies are shallow; this bounds a cycle
                if current is None:
                    break
                if current == ancestor:
                    found = True
                    break
                data = aspace.get(current)
                current = None
                if data is not None:
                    for ref in data.references:
                        if ref.ReferenceTypeId == has_subtype and not ref.IsForward:
                            current = ref.NodeId
                            break
            cache[key] = found
        return cache[key]

    return is_subtype


_ANONYMOUS_USER = User(role=UserRole.Anonymous)


def cache_reference_subtypes(server: Server) -> None:
    """Answer "is this reference type a subtype of that one" from a cache.

    asyncua's view service walks the reference-type tree anew for every reference
    of every browse; instantiating one alarm condition browses thousands of
    times, so building conditions cost ~80 ms each (17 s for 220 alarms).  The
    reference-type hierarchy is fixed once the server is initialised (PlantGuard
    adds no reference types), so the subtypes of each type are computed once.
    Call after ``server.init()``.
    """
    view = server.iserver.view_service
    walk = view._get_sub_ref
    null = numeric_node(ObjectIds.Null)
    subtypes_of: dict[ua.NodeId, frozenset[ua.NodeId]] = {}

    def suitable_reftype(wanted: ua.NodeId, found: ua.NodeId, subtypes: bool) -> bool:
        if wanted in (null, found):
            return True
        if not subtypes:
            return False
        known = subtypes_of.get(wanted)
        if known is None:
            known = subtypes_of[wanted] = frozenset(walk(wanted))
        return found in known

    view._suitable_reftype = suitable_reftype  # type: ignore[method-assign,assignment]


def install(
    server: Server,
    authenticate: Callable[[str, str], Principal | None],
    point_writes: PointWrites | None = None,
    limits: ResourceLimits | None = None,
    throttle: LoginThrottle | None = None,
) -> None:
    """Make ``server`` create PlantGuard sessions and authenticate with PlantGuard users.

    ``point_writes`` sends client writes of point values to the engine;
    ``limits`` bound what each client may hold (:mod:`.limits`); ``throttle``
    slows down and locks out password guessing (:mod:`plantguard.throttle`).
    Call after ``server.init()`` and before ``server.start()``.
    """
    iserver = server.iserver
    iserver.user_manager = PrincipalUserManager(  # type: ignore[assignment]
        authenticate, throttle
    )
    is_subtype = subtype_checker(iserver)
    limits = limits or ResourceLimits()
    iserver.max_monitored_item_queue_size = max(limits.max_queue_size, limits.max_event_queue_size)
    iserver.max_unacked_messages_per_subscription = limits.max_unacknowledged
    per_client: dict[str, int] = {}

    def lookup(node_id: ua.NodeId) -> Any:
        return iserver.aspace.get(node_id)  # the view's, once installed

    check_arguments = ArgumentCheck(lookup, base_type_finder(lookup))

    def create_session(
        name: str, user: User = _ANONYMOUS_USER, external: bool = False
    ) -> InternalSession:
        client = _client_host(name)
        if external:
            if per_client.get(client, 0) >= limits.max_sessions_per_client:
                log.warning(
                    "OPC UA session refused for %s: it holds %d sessions already",
                    client,
                    limits.max_sessions_per_client,
                )
                raise ServiceError(StatusCodes.BadTooManySessions)
            per_client[client] = per_client.get(client, 0) + 1
        session = _Session(
            iserver,
            iserver.aspace,
            iserver.subscription_service,
            name,
            user=user,
            external=external,
        )
        session.is_subtype = is_subtype
        session.point_writes = point_writes
        session.check_arguments = check_arguments
        session.limits = limits
        if external:
            session.on_closed = lambda: _release(per_client, client)
        return session

    iserver.create_session = create_session  # type: ignore[method-assign]


def _client_host(name: Any) -> str:
    """The host part of a session's name (asyncua names external sessions by peer)."""
    return str(name[0]) if isinstance(name, tuple) and name else str(name)


def _release(per_client: dict[str, int], client: str) -> None:
    left = per_client.get(client, 0) - 1
    if left > 0:
        per_client[client] = left
    else:
        per_client.pop(client, None)


class _LatestOnly:
    """Stands in for asyncua's per-item ``MonitoredItemValues`` of point items, shared by
    all of them: asyncua only sets a value and compares it within one synchronous call
    (an item's first value, or when it is enabled again), and the answer is always
    "changed"."""

    current: ua.DataValue | None = None

    def set_current_datavalue(self, value: ua.DataValue) -> None:
        self.current = value

    def get_current_datavalue(self) -> ua.DataValue | None:
        return self.current

    def get_old_datavalue(self) -> ua.DataValue | None:
        return None


_LATEST_ONLY = _LatestOnly()


class ViewAddressSpace(AddressSpace):
    """asyncua's address space, answering the PlantGuard nodes it does not hold from a
    :class:`.view.SiteView`.

    Real nodes (the standard nodes, PlantGuard's folders and devices, records) are
    served as asyncua serves them.  A NodeId of the PlantGuard namespace that is not
    real is looked up in the view: Browse, TranslateBrowsePaths and Call see a
    rendered node, Read asks the view (current values from the table), Write is
    refused (point writes are taken before this, by :class:`.point_writes.PointWrites`),
    and a data-change item on a point value goes to :class:`PointSubscriptions`.
    """

    _view: SiteView
    _points: PointSubscriptions
    #: Data-change items on other view attributes (condition variables …): handle → item.
    _watched: dict[int, tuple[str, AttributeIds, Callable[..., Any]]]

    def _ident(self, node_id: ua.NodeId) -> str | None:
        ident = node_id.Identifier
        if node_id.NamespaceIndex != self._view.ns or not isinstance(ident, str):
            return None
        return ident

    def _virtual(self, node_id: ua.NodeId) -> AddressSpaceNode | None:
        ident = self._ident(node_id)
        return None if ident is None else self._view.node(ident)

    def __getitem__(self, node_id: ua.NodeId) -> AddressSpaceNode:
        data = self._nodes.get(node_id)
        if data is None:
            data = self._virtual(node_id)
            if data is None:
                raise KeyError(node_id)
        return data

    def get(self, node_id: ua.NodeId) -> AddressSpaceNode | None:
        data = self._nodes.get(node_id)
        return data if data is not None else self._virtual(node_id)

    def __contains__(self, node_id: ua.NodeId) -> bool:
        if node_id in self._nodes:
            return True
        ident = self._ident(node_id)
        return ident is not None and ident in self._view

    def read_attribute_value(self, nodeid: ua.NodeId, attr: AttributeIds) -> ua.DataValue:
        if nodeid in self._nodes:
            return super().read_attribute_value(nodeid, attr)
        ident = self._ident(nodeid)
        if ident is None:
            return ua.DataValue(StatusCode=_status(StatusCodes.BadNodeIdUnknown))
        return self._view.read(ident, attr)

    async def write_attribute_value(
        self, nodeid: ua.NodeId, attr: AttributeIds, value: ua.DataValue
    ) -> ua.StatusCode:
        if nodeid in self._nodes:
            return await super().write_attribute_value(nodeid, attr, value)
        if nodeid in self:
            return _status(StatusCodes.BadNotWritable)
        return _status(StatusCodes.BadNodeIdUnknown)

    def add_datachange_callback(
        self, nodeid: ua.NodeId, attr: AttributeIds, callback: Callable[..., Any]
    ) -> tuple[ua.StatusCode, int]:
        if nodeid in self._nodes:
            return super().add_datachange_callback(nodeid, attr, callback)
        ident = self._ident(nodeid)
        if ident is None or ident not in self._view:
            return _status(StatusCodes.BadNodeIdUnknown), 0
        self._datachange_callback_counter += 1
        handle = self._datachange_callback_counter
        index = self._view.point_index(ident)
        if index is not None and attr == AttributeIds.Value:
            self._points.add(handle, index, callback)
        else:
            self._watched[handle] = (ident, attr, callback)
        return ua.StatusCode(), handle

    def delete_datachange_callback(self, handle: int) -> None:
        if handle in self._points:
            self._points.remove(handle)
        elif self._watched.pop(handle, None) is None:
            super().delete_datachange_callback(handle)

    def items_created(self) -> None:
        """Monitored items were created: take them into the point subscriptions."""
        self._points.created()

    def items_changed(self) -> None:
        """Monitored items were modified or re-moded: re-read them."""
        self._points.changed()

    def range_span(self, node_id: ua.NodeId) -> float:
        """High − Low of a point's EURange (0 without one), for Percent deadbands."""
        ident = self._ident(node_id)
        span = self._view.range_span(ident) if ident is not None else None
        return span or 0.0

    async def notify(self, prefix: str) -> None:
        """Send the current values of watched view nodes whose identifier starts with
        ``prefix`` (a condition's variables, after its alarm changed)."""
        for handle, (ident, attr, callback) in list(self._watched.items()):
            if ident.startswith(prefix):
                try:
                    await callback(handle, self._view.read(ident, attr))
                except Exception:
                    log.exception("data change of %s not delivered", ident)


def use_view(server: Server, view: SiteView, points: PointSubscriptions) -> ViewAddressSpace:
    """Make ``server``'s address space answer from ``view`` (after ``server.init()``).

    The address space object is shared by every asyncua service, so its class is
    changed in place rather than replaced.
    """
    aspace = server.iserver.aspace
    aspace.__class__ = ViewAddressSpace
    assert isinstance(aspace, ViewAddressSpace)
    aspace._view = view
    aspace._points = points
    aspace._watched = {}
    view.bind(aspace)
    return aspace


async def _enqueue(mis: Any, mid: int, event: ConditionEvent, *, apply_filter: bool = True) -> None:
    mdata = mis._monitored_items.get(mid)
    if mdata is None or mdata.filter is None:
        return
    evaluator = mdata.where_clause_evaluator
    if apply_filter and evaluator is not None and not evaluator.eval(event):
        return
    fields = ua.EventFieldList()
    fields.ClientHandle = mdata.client_handle
    fields.EventFields = event.to_event_fields(mdata.filter.SelectClauses)
    await mis.isub.enqueue_event(mid, fields, mdata.queue_size)


async def deliver(server: Server, event: ConditionEvent, notifiers: Iterable[ua.NodeId]) -> None:
    """Send ``event`` to every monitored item watching one of ``notifiers``."""
    targets = list(notifiers)
    for sub in list(server.iserver.subscription_service.subscriptions.values()):
        mis = sub.monitored_item_srv
        for node in targets:
            for mid in list(mis._monitored_events.get(node, ())):
                await _enqueue(mis, mid, event.at(node))


async def publish_events_now(server: Server) -> None:
    """Publish every client subscription holding events now, if its client has a
    Publish request waiting, instead of at the end of its publishing interval.

    An alarm event would otherwise wait up to one publishing interval (what an HMI
    asks for: 100 ms to 1 s) after the scan that raised it, on top of the poll
    that brought its value.  The notification message is the subscription's own
    publish (asyncua's ``publish_results``, sequence numbers, acknowledgements and
    Republish unchanged), only sooner; data changes queued by then go along.  A
    subscription whose client has no request waiting is left to its publishing
    cycle, which sends as soon as a request arrives: asking without a request
    would count as a publishing cycle towards the subscription's lifetime.
    """
    for sub in list(server.iserver.subscription_service.subscriptions.values()):
        if not sub._triggered_events or not sub._publishing_enabled:
            continue
        processor = getattr(sub.pub_request_callback, "__self__", None)
        if isinstance(processor, UaProcessor) and processor._publish_requests:
            await sub.publish_results()


def subscription_exists(server: Server, subscription_id: int, mid: int | None = None) -> bool:
    sub = server.iserver.subscription_service.subscriptions.get(subscription_id)
    if sub is None:
        return False
    return mid is None or mid in sub.monitored_item_srv._monitored_items


async def refresh(
    server: Server,
    subscription_id: int,
    mid: int | None,
    *,
    start: ConditionEvent,
    end: ConditionEvent,
    retained: Iterable[tuple[ConditionEvent, Iterable[ua.NodeId]]],
) -> None:
    """ConditionRefresh(2): RefreshStart, the retained conditions, RefreshEnd, to one
    subscription (or one of its items).  Start and end markers pass any filter."""
    sub = server.iserver.subscription_service.subscriptions[subscription_id]
    mis = sub.monitored_item_srv
    watched: dict[int, ua.NodeId] = {
        m: node for node, mids in mis._monitored_events.items() for m in mids
    }
    items = [mid] if mid is not None else list(watched)
    for m in items:
        await _enqueue(mis, m, start.at(watched.get(m, start.emitting_node)), apply_filter=False)
    for event, notifiers in retained:
        for node in notifiers:
            for m in items:
                if watched.get(m) == node:
                    await _enqueue(mis, m, event.at(node))
    for m in items:
        await _enqueue(mis, m, end.at(watched.get(m, end.emitting_node)), apply_filter=False)


# --- condition instances from templates ------------------------------------------------------


@dataclass(frozen=True)
class NodeTemplate:
    """A copy of one instantiated condition subtree, to render others of its type.

    asyncua's ``instantiate`` copies a condition type node by node, browsing the
    type for each (~30 ms per condition, minutes for a large site), and leaves ~75
    nodes per condition in memory.  Every condition of one type has the same
    subtree, so the first is instantiated the asyncua way, captured here and
    removed again; each condition is then rendered from the template, one node at a
    time, with NodeIds, names and the parent reference rewritten.
    """

    root: ua.NodeId
    parent: ua.NodeId
    nodes: dict[str, Any]  # identifier suffix ("" for the root) → asyncua NodeData
    #: The parent's forward reference to the root, as AddNodes made it.
    parent_reference: ua.ReferenceDescription
    type_definition: ua.NodeId

    @classmethod
    async def capture(
        cls, server: Server, root: ua.NodeId, node_ids: Iterable[ua.NodeId]
    ) -> NodeTemplate:
        """Snapshot ``root`` and its instantiated children, then delete them from the
        address space (before any other reference to them is added)."""
        aspace = server.iserver.aspace
        root_data = aspace[root]
        parent = next(r.NodeId for r in root_data.references if not r.IsForward)
        old = root.Identifier
        if not isinstance(old, str):
            raise TypeError("templates are for string NodeIds")
        nodes: dict[str, Any] = {}
        for node_id in [root, *(n for n in node_ids if n != root)]:
            ident = node_id.Identifier
            if isinstance(ident, str) and (ident == old or ident.startswith(old + ".")):
                # Taken, not copied: the instance is removed below, so nothing else holds it.
                nodes[ident[len(old) :]] = aspace[node_id]
        parent_data = aspace[parent]
        reference = next(r for r in parent_data.references if r.IsForward and r.NodeId == root)
        type_definition = next(
            r.NodeId for r in root_data.references if r.ReferenceTypeId == _HAS_TYPE_DEFINITION
        )
        parent_data.references.remove(reference)
        for node_id in list(node_ids):
            if node_id in aspace._nodes:
                del aspace._nodes[node_id]
        return cls(root, parent, nodes, reference, type_definition)

    def has(self, suffix: str) -> bool:
        return suffix in self.nodes

    def reference(
        self, root: ua.NodeId, browse_name: ua.QualifiedName, display_name: ua.LocalizedText
    ) -> ua.ReferenceDescription:
        """The folder's forward reference to a condition rendered from this template."""
        return _retarget(self.parent_reference, root, browse_name, display_name)

    def render(
        self,
        suffix: str,
        root: ua.NodeId,
        parent: ua.NodeId,
        browse_name: ua.QualifiedName,
        display_name: ua.LocalizedText,
    ) -> AddressSpaceNode:
        """The node ``suffix`` of the condition ``root`` under ``parent``."""
        data = self.nodes[suffix]
        old = self.root.Identifier
        new = root.Identifier
        ns = self.root.NamespaceIndex
        assert isinstance(old, str)
        assert isinstance(new, str)

        def remap(node_id: ua.NodeId) -> ua.NodeId:
            ident = node_id.Identifier
            if node_id.NamespaceIndex == ns and isinstance(ident, str):
                if ident == old:
                    return root
                if ident.startswith(old + "."):
                    return nodeids.node_id(new + ident[len(old) :], ns)
            return node_id

        is_root = not suffix
        clone = AddressSpaceNode(remap(data.nodeid))
        for attribute, held in data.attributes.items():
            # DataValues are replaced on write, never mutated: they can be shared.
            clone.attributes[attribute] = AddressSpaceValue(held.value)
        clone.attributes[AttributeIds.NodeId] = AddressSpaceValue(
            ua.DataValue(ua.Variant(clone.nodeid, ua.VariantType.NodeId))
        )
        if is_root:
            clone.attributes[AttributeIds.BrowseName] = AddressSpaceValue(
                ua.DataValue(ua.Variant(browse_name, ua.VariantType.QualifiedName))
            )
            clone.attributes[AttributeIds.DisplayName] = AddressSpaceValue(
                ua.DataValue(ua.Variant(display_name, ua.VariantType.LocalizedText))
            )
        for ref in data.references:
            clone.references.extend(
                self._moved(
                    ref,
                    is_root=is_root,
                    parent=parent,
                    remap=remap,
                    root=root,
                    browse_name=browse_name,
                    display_name=display_name,
                )
            )
        return clone

    def _moved(
        self,
        ref: ua.ReferenceDescription,
        *,
        is_root: bool,
        parent: ua.NodeId,
        remap: Callable[[ua.NodeId], ua.NodeId],
        root: ua.NodeId,
        browse_name: ua.QualifiedName,
        display_name: ua.LocalizedText,
    ) -> list[ua.ReferenceDescription]:
        """The copy's version of one reference of a template node (none to drop it)."""
        target = remap(ref.NodeId)
        if target is ref.NodeId:  # outside the template
            if is_root and not ref.IsForward and ref.NodeId == self.parent:
                return [_retarget(ref, parent)]
            if is_root and ref.ReferenceTypeId != _HAS_TYPE_DEFINITION:
                return []  # e.g. HasCondition from the template's source
            return [ref]
        if target == root:
            return [_retarget(ref, target, browse_name, display_name)]
        return [_retarget(ref, target)]


_HAS_TYPE_DEFINITION = numeric_node(ObjectIds.HasTypeDefinition)


def _retarget(
    ref: ua.ReferenceDescription,
    node_id: ua.NodeId,
    browse_name: ua.QualifiedName | None = None,
    display_name: ua.LocalizedText | None = None,
) -> ua.ReferenceDescription:
    """A copy of ``ref`` pointing at ``node_id`` (built directly: copy.copy is 5x slower)."""
    return ua.ReferenceDescription(
        ReferenceTypeId=ref.ReferenceTypeId,
        IsForward=ref.IsForward,
        NodeId=node_id,
        BrowseName=ref.BrowseName if browse_name is None else browse_name,
        DisplayName=ref.DisplayName if display_name is None else display_name,
        NodeClass=ref.NodeClass,
        TypeDefinition=ref.TypeDefinition,
    )
