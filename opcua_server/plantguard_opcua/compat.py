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
import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeValue as AddressSpaceValue
from asyncua.server.address_space import NodeData as AddressSpaceNode
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from plantguard.auth import ANONYMOUS, Principal
from plantguard.events import SecurityEvent, publish

from . import nodeids
from .event_filter import SubtypeAwareWhereClause
from .events import ConditionEvent, numeric_node
from .point_writes import PointWrites

__all__ = [
    "NodeTemplate",
    "PrincipalUserManager",
    "cache_reference_subtypes",
    "calling_principal",
    "deliver",
    "install",
    "node_classes",
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


# --- cloning condition instances ------------------------------------------------------------


@dataclass(frozen=True)
class NodeTemplate:
    """A copy of an instantiated node subtree, to stamp out more instances quickly.

    asyncua's ``instantiate`` copies a condition type node by node, browsing the
    type for each (~30 ms per condition, minutes for a large site).  Every
    condition of one type has the same subtree, so the first is instantiated
    the asyncua way and the others are copies of its node data, with NodeIds,
    names and the parent reference rewritten.
    """

    root: ua.NodeId
    parent: ua.NodeId
    nodes: tuple[Any, ...]  # asyncua NodeData, root first

    @classmethod
    def capture(
        cls, server: Server, root: ua.NodeId, node_ids: Iterable[ua.NodeId]
    ) -> NodeTemplate:
        """Snapshot ``root`` and its instantiated children (before other references are added)."""
        aspace = server.iserver.aspace
        root_data = aspace[root]
        parent = next(r.NodeId for r in root_data.references if not r.IsForward)
        ids = [root, *(n for n in node_ids if n != root)]
        return cls(root, parent, tuple(copy.deepcopy(aspace[n]) for n in ids))

    def stamp(
        self, server: Server, root: ua.NodeId, parent: ua.NodeId, browse_name: ua.QualifiedName,
        display_name: ua.LocalizedText,
    ) -> list[ua.NodeId]:  # fmt: skip
        """Add a copy under ``parent`` as ``root``; return the new NodeIds, root first."""
        aspace = server.iserver.aspace
        old = self.root.Identifier
        new = root.Identifier
        ns = self.root.NamespaceIndex
        if not isinstance(old, str) or not isinstance(new, str):
            raise TypeError("templates are for string NodeIds")

        def remap(node_id: ua.NodeId) -> ua.NodeId:
            ident = node_id.Identifier
            if node_id.NamespaceIndex == ns and isinstance(ident, str):
                if ident == old:
                    return root
                if ident.startswith(old + "."):
                    return nodeids.node_id(new + ident[len(old) :], ns)
            return node_id

        inside = {n.nodeid for n in self.nodes}
        added: list[ua.NodeId] = []
        for data in self.nodes:
            is_root = data.nodeid == self.root
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
                        inside=inside,
                    )
                )
            aspace[clone.nodeid] = clone
            added.append(clone.nodeid)
        # The parent's forward reference, as asyncua's add_nodes would have made it.
        parent_data = aspace[parent]
        template_ref = next(
            r for r in aspace[self.parent].references if r.IsForward and r.NodeId == self.root
        )
        parent_data.references.append(_retarget(template_ref, root, browse_name, display_name))
        return added

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
        inside: set[ua.NodeId],
    ) -> list[ua.ReferenceDescription]:
        """The copy's version of one reference of a template node (none to drop it)."""
        if ref.NodeId not in inside:
            if is_root and not ref.IsForward and ref.NodeId == self.parent:
                return [_retarget(ref, parent)]
            if is_root and ref.ReferenceTypeId != _HAS_TYPE_DEFINITION:
                return []  # e.g. HasCondition from the template's source
            return [ref]
        target = remap(ref.NodeId)
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


def node_classes(server: Server, node_ids: Iterable[ua.NodeId]) -> list[ua.NodeClass]:
    """Node classes straight from the address space (no service call per node)."""
    aspace = server.iserver.aspace
    classes = []
    for node_id in node_ids:
        held = aspace[node_id].attributes[AttributeIds.NodeClass].value
        value = held.Value if held is not None else None
        classes.append(ua.NodeClass(value.Value if value is not None else 0))
    return classes
