"""The nodes that have history: point variables, found from their NodeIds, and the Server.

NodeIds are resolved from the site model: a point's string NodeId is parsed back to
its device (one dict entry per device, nothing per point), so a site of any size
costs one entry per device and no address-space lookup.
"""

from __future__ import annotations

from typing import Final

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds

from plantguard.model import Device, Point, Site

from .. import nodeids
from ..events import numeric_node

__all__ = ["POINT_VARIANTS", "SERVER", "PointIndex"]

_V = ua.VariantType

POINT_VARIANTS: Final[dict[str, ua.VariantType]] = {
    "float": _V.Double,
    "int": _V.Int64,
    "bool": _V.Boolean,
}
SERVER: Final = numeric_node(ObjectIds.Server)


class PointIndex:
    """Point variables by NodeId, parsed back from the NodeId's path: one entry per device."""

    def __init__(self, site: Site, ns: int) -> None:
        self.ns = ns
        self._devices: dict[str, Device] = {
            nodeids.device_path(site, area, device): device
            for area in site.areas
            for device in area.devices
        }
        self._folder = f"/{nodeids.POINTS_FOLDER}/"

    def point(self, node_id: ua.NodeId) -> Point | None:
        ident = node_id.Identifier
        if node_id.NamespaceIndex != self.ns or not isinstance(ident, str) or "#" in ident:
            return None
        device_path, folder, local = ident.rpartition(self._folder)
        device = self._devices.get(device_path) if folder and "/" not in local else None
        if device is None:
            return None
        return next((p for p in device.points if nodeids.point_local_id(device, p) == local), None)
