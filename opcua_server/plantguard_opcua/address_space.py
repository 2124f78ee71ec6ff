"""Builds ``Objects/PlantGuard/<site>/<area>/<device>/`` from the configured site.

Only the structure is made of real asyncua nodes: the PlantGuard folder, the
site, its areas and its devices, added as plain ``AddNodesItem`` batches (one
service call per batch, not one per node).  Everything below a device — its
properties, its ``Points`` folder, its points and their properties — is a
:class:`.view.SiteView`, rendered when a client asks for it; the real device
node carries the forward references to those children, as AddNodes would have
left them.
"""

from __future__ import annotations

import asyncio

from asyncua import ua
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from plantguard.model import Site
from plantguard.table import ValueTable

from . import nodeids
from .node_specs import NodeSpecs, reference_to
from .values import PointValues
from .view import SiteView

__all__ = ["build_address_space"]

#: Devices added per AddNodes batch (the event loop runs between batches).
_DEVICES_PER_BATCH = 200


async def _add(session: InternalSession, items: list[ua.AddNodesItem]) -> None:
    results = await session.add_nodes(items)
    for item, result in zip(items, results, strict=True):
        if not result.StatusCode.is_good():
            raise RuntimeError(
                f"cannot add OPC UA node {item.RequestedNewNodeId.to_string()}: "
                f"{result.StatusCode.name}"
            )


async def build_address_space(
    server: Server, ns: int, site: Site, table: ValueTable, values: PointValues
) -> SiteView:
    """Add the site's structure to ``server`` (an initialised ``asyncua.Server`` whose
    address space is a :class:`.compat.ViewAddressSpace`) and return its view."""
    session = server.iserver.isession
    specs = NodeSpecs(ns)
    objects = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
    root = specs.obj(nodeids.ROOT, objects, "PlantGuard", display_name="PlantGuard")
    site_item = specs.obj(
        nodeids.site_path(site), root.RequestedNewNodeId, site.id,
        display_name=site.name or site.id,
    )  # fmt: skip
    top = [root, site_item]
    area_nodes = []
    for area in site.areas:
        item = specs.obj(
            nodeids.area_path(site, area), site_item.RequestedNewNodeId, area.id,
            display_name=area.name or area.id,
        )  # fmt: skip
        top.append(item)
        area_nodes.append(item.RequestedNewNodeId)
    await _add(session, top)
    view = SiteView(ns, site, table, values)
    aspace = server.iserver.aspace
    view.bind(aspace)
    devices = [
        (nodeids.device_path(site, area, device), area_node, device)
        for area, area_node in zip(site.areas, area_nodes, strict=True)
        for device in area.devices
    ]
    for start in range(0, len(devices), _DEVICES_PER_BATCH):
        chunk = devices[start : start + _DEVICES_PER_BATCH]
        await _add(session, [specs.device(path, parent, d) for path, parent, d in chunk])
        for path, _parent, device in chunk:
            data = aspace[nodeids.node_id(path, ns)]
            data.references.extend(
                reference_to(child) for child in specs.device_children(path, device)
            )
        await asyncio.sleep(0)
    return view
