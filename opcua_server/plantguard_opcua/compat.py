"""Everything PlantGuard needs from asyncua's server internals, in one module.

asyncua 2.1 lacks three things Alarms & Conditions need (DESIGN.md lists them):

1. **The calling session's user in method callbacks.**  Sessions are created by
   ``InternalServer.create_session``; :func:`install` makes that create a
   :class:`_Session`, whose ``call`` publishes the session's principal in a
   context variable for the duration of the call (:func:`calling_principal`).
2. **Event filters matching subtypes.**  ``_Session.create_monitored_items``
   replaces the evaluator of each new event item by
   :class:`.event_filter.SubtypeAwareWhereClause`.
3. **Events reaching more than one notifier, and ConditionRefresh per notifier.**
   :func:`deliver` and :func:`refresh` put events straight into the monitored
   items watching the Server object or the alarm's device.

Adopting a newer asyncua should mean revisiting this module only.  It uses
``MonitoredItemService._monitored_items``, ``._monitored_events`` and
``InternalSubscription.enqueue_event``; a test exercises each path.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from plantguard.auth import ANONYMOUS, Principal
from plantguard.events import SecurityEvent, publish

from .event_filter import SubtypeAwareWhereClause
from .events import ConditionEvent, numeric_node
from .point_writes import PointWrites

__all__ = [
    "PrincipalUserManager",
    "calling_principal",
    "deliver",
    "install",
    "refresh",
    "subscription_exists",
]

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
    """

    def __init__(self, authenticate: Callable[[str, str], Principal | None]) -> None:
        self._authenticate = authenticate

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return _PrincipalUser(role=UserRole.User, name=None, principal=ANONYMOUS)
        principal = self._authenticate(username, password or "")
        if principal is None:
            log.warning("OPC UA login refused for user %r", username)
            publish(SecurityEvent("failed_login", source="opcua", user=username))
            return None
        log.info("OPC UA session for user %r (%s)", username, principal.role.label)
        return _PrincipalUser(role=UserRole.User, name=username, principal=principal)


class _Session(InternalSession):
    is_subtype: Callable[[ua.NodeId, ua.NodeId], bool]
    point_writes: PointWrites | None = None

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
        principal = getattr(self.user, "principal", ANONYMOUS)
        token = _caller.set(principal)
        try:
            results: list[ua.CallMethodResult] = await super().call(params)
            return results
        finally:
            _caller.reset(token)

    async def create_monitored_items(
        self, params: ua.CreateMonitoredItemsParameters
    ) -> list[ua.MonitoredItemCreateResult]:
        results: list[ua.MonitoredItemCreateResult] = await super().create_monitored_items(params)
        sub = self.subscription_service.subscriptions.get(params.SubscriptionId)
        if sub is None:
            return results
        is_subtype = self.is_subtype
        for result in results:
            mdata = sub.monitored_item_srv._monitored_items.get(result.MonitoredItemId)
            if mdata is not None and mdata.where_clause_evaluator is not None:
                mdata.where_clause_evaluator = SubtypeAwareWhereClause(  # type: ignore[assignment]
                    mdata.filter.WhereClause, is_subtype
                )
        return results


def _subtype_checker(iserver: Any) -> Callable[[ua.NodeId, ua.NodeId], bool]:
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


def install(
    server: Server,
    authenticate: Callable[[str, str], Principal | None],
    point_writes: PointWrites | None = None,
) -> None:
    """Make ``server`` create PlantGuard sessions and authenticate with PlantGuard users.

    ``point_writes`` sends client writes of point values to the engine.
    Call after ``server.init()`` and before ``server.start()``.
    """
    iserver = server.iserver
    iserver.user_manager = PrincipalUserManager(authenticate)  # type: ignore[assignment]
    is_subtype = _subtype_checker(iserver)

    def create_session(
        name: str, user: User = _ANONYMOUS_USER, external: bool = False
    ) -> InternalSession:
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
        return session

    iserver.create_session = create_session  # type: ignore[method-assign]


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
