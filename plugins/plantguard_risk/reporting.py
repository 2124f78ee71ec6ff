"""Reporting a hidden danger from outside the command line (OPC UA, Home Assistant).

The OPC UA server must not import this plugin, and this plugin must not import the
OPC UA server: the seam between them is structural.  A running service that has a
``report_hazard(principal, title, *, description, device, point) -> id`` method is
a *hazard reporter*; the OPC UA service looks for one among the engine's services
and, if it finds one, adds ``ReportHazard`` to the site node.  The ``safety_index``
service of this plugin is one (it holds the engine's store once started).

Refusals are the core's errors, so a caller can map them without knowing this
plugin: :class:`PermissionDenied` (the role is too low — checked first, so a viewer
learns nothing about which devices exist) and :class:`UsageError` (an empty title,
an unknown device or point, or a point of another device).  Either way nothing is
written.
"""

from __future__ import annotations

from collections.abc import Callable

from plantguard.plugin import Principal, RiskStore, Role, Store, UsageError

from .lifecycle import HazardRefused, Lifecycle

__all__ = ["HazardReporting"]


class HazardReporting:
    """Checks a report against the store's devices and points, then files it."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def report_hazard(
        self,
        principal: Principal,
        title: str,
        *,
        description: str = "",
        device: str = "",
        point: str = "",
    ) -> str:
        """File a reported hidden danger and return its id; ``device`` and ``point``
        are ids known to the store (a point is ``device.point``), empty for none."""
        if not principal.may(Role.OPERATOR):
            raise HazardRefused(
                f"{principal.name or 'anonymous'} ({principal.role.label}) may not report "
                f"a hidden danger: it needs the {Role.OPERATOR.label} role"
            )
        device, point = device.strip(), point.strip()
        refs = self.store.records.references()
        if device and device not in refs.devices:
            raise UsageError(f"unknown device {device!r}")
        if point:
            owner = refs.points.get(point)
            if owner is None:
                raise UsageError(f"unknown point {point!r}")
            if device and owner != device:
                raise UsageError(f"point {point!r} belongs to {owner!r}, not to {device!r}")
            device = owner
        hazard = Lifecycle(RiskStore(self.store.engine), self.clock).report(
            principal,
            title,
            description=description.strip(),
            device_id=device or None,
            point_id=point or None,
        )
        return hazard.id
