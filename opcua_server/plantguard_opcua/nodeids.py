"""Stable NodeIds for the PlantGuard address space, derived from configured ids only.

An HMI stores NodeIds in its screens, so a NodeId must not depend on start-up
order, on the namespace index or on anything generated at run time.  Every node
PlantGuard adds is a string NodeId in the ``urn:plantguard`` namespace whose
identifier is the configured path to it:

=====================  ==========================================
node                   identifier (``ns=<urn:plantguard>;s=...``)
=====================  ==========================================
PlantGuard root        ``/``
site                   ``demo``
area                   ``demo/utilities``
device                 ``demo/utilities/pump1``
device property        ``demo/utilities/pump1#Manufacturer``
points folder          ``demo/utilities/pump1/Points``
point variable         ``demo/utilities/pump1/Points/current``
point property         ``demo/utilities/pump1/Points/current#EURange``
alarms folder          ``demo/utilities/pump1/Alarms``
alarm condition        ``demo/utilities/pump1/Alarms/vibration.limit``
condition component    ``demo/utilities/pump1/Alarms/vibration.limit.AckedState.Id``
=====================  ==========================================

An alarm's segment is its id without the device prefix (``vibration.limit`` for
``pump1.vibration.limit``).  A condition's components are named by asyncua when
it instantiates the condition type: the condition's NodeId, a dot, and the
browse path joined with dots.

Configured ids match :data:`plantguard.model.ID_PATTERN` (no ``/`` or ``#``), so a
``/`` always separates levels, a ``#`` always introduces a property, and no
configured id can collide with the root ``/``.  A point's segment is its local id
(the global ``pump1.current`` without the ``pump1.`` prefix).  Renaming or moving a
device to another area changes its NodeIds, exactly as it changes its browse path.
"""

from __future__ import annotations

from asyncua import ua

from plantguard.model import Area, Device, Point, Site

__all__ = [
    "ALARMS_FOLDER",
    "NAMESPACE_URI",
    "POINTS_FOLDER",
    "ROOT",
    "alarm_local_id",
    "alarms_folder_path",
    "area_path",
    "condition_path",
    "device_path",
    "node_id",
    "point_local_id",
    "point_path",
    "points_folder_path",
    "property_path",
    "site_path",
]

#: The namespace every PlantGuard node lives in; clients resolve its index by URI.
NAMESPACE_URI = "urn:plantguard"

#: Identifier of the ``PlantGuard`` folder under ``Objects``.
ROOT = "/"

#: BrowseName (and last NodeId segment) of the folder holding a device's point variables.
POINTS_FOLDER = "Points"

#: BrowseName (and last NodeId segment) of the folder holding a device's alarm conditions.
ALARMS_FOLDER = "Alarms"


def site_path(site: Site) -> str:
    return site.id


def area_path(site: Site, area: Area) -> str:
    return f"{site.id}/{area.id}"


def device_path(site: Site, area: Area, device: Device) -> str:
    return f"{site.id}/{area.id}/{device.id}"


def points_folder_path(device_node: str) -> str:
    return f"{device_node}/{POINTS_FOLDER}"


def point_local_id(device: Device, point: Point) -> str:
    """The point's id as written under its device (``current`` for ``pump1.current``)."""
    prefix = f"{device.id}."
    return point.id[len(prefix) :] if point.id.startswith(prefix) else point.id


def point_path(device_node: str, device: Device, point: Point) -> str:
    return f"{points_folder_path(device_node)}/{point_local_id(device, point)}"


def property_path(owner_node: str, name: str) -> str:
    return f"{owner_node}#{name}"


def alarms_folder_path(device_node: str) -> str:
    return f"{device_node}/{ALARMS_FOLDER}"


def alarm_local_id(device_id: str, alarm_id: str) -> str:
    """The alarm's id below its device (``level.limit`` for ``tank1.level.limit``)."""
    prefix = f"{device_id}."
    return alarm_id[len(prefix) :] if alarm_id.startswith(prefix) else alarm_id


def condition_path(device_node: str, device_id: str, alarm_id: str) -> str:
    return f"{alarms_folder_path(device_node)}/{alarm_local_id(device_id, alarm_id)}"


def node_id(identifier: str, ns: int) -> ua.NodeId:
    """The string NodeId of ``identifier`` in namespace ``ns`` (every PlantGuard node)."""
    # The type is left for asyncua to infer from the str: naming it makes asyncua
    # re-check the pair on every NodeId, ~20 µs each (a tenth of a condition's start-up).
    return ua.NodeId(ua.String(identifier), ua.Int16(ns))
