"""``<site>.ReportHazard``: reporting a hidden danger (隐患) from an OPC UA client.

::

    <site>.ReportHazard  (Title, Description, Device, Point) → HazardId

The hidden dangers belong to the risk plugin, which this package must not import
(nor may the plugin import the server).  The seam is structural: a service of the
running engine that has a ``report_hazard`` method (:class:`HazardReporter`) is
asked to file the report, with the calling session's principal.  The risk plugin's
``safety_index`` service is one; without it (or without a store) the site has no
ReportHazard method, rather than one that always fails.

:class:`.server.OpcUaService` adds the method with the rest of the address space,
before the port opens.
The reporter checks the role first and the input next, and writes nothing when it
refuses; its refusals become status codes: :class:`PermissionDenied` →
``BadUserAccessDenied``, :class:`UsageError` → ``BadInvalidArgument``, any other
:class:`PlantGuardError` (the store unusable) → ``BadInternalError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard.auth import Principal
from plantguard.errors import PermissionDenied, PlantGuardError, UsageError
from plantguard.model import Site
from plantguard.services import EngineView

from . import compat, nodeids

__all__ = [
    "METHOD",
    "HazardReporter",
    "add_report_hazard",
    "find_reporter",
    "status_of",
]

log = logging.getLogger(__name__)

#: The method's browse name; its NodeId is ``<site>.ReportHazard``.
METHOD = "ReportHazard"

_INPUTS = (
    ("Title", "what is wrong, in a line (required)"),
    ("Description", "details: where, what was seen; may be empty"),
    ("Device", "id of the device concerned; empty for none"),
    ("Point", "id of the point concerned (device.point); empty for none"),
)
_STRING = ua.NodeId(ua.Int32(ObjectIds.String))


@runtime_checkable
class HazardReporter(Protocol):
    """A service that files a reported hidden danger and returns its id.

    Raises :class:`PermissionDenied` or :class:`UsageError` and writes nothing when
    it refuses.  Called in a worker thread (it writes to the store)."""

    def report_hazard(
        self,
        principal: Principal,
        title: str,
        *,
        description: str = "",
        device: str = "",
        point: str = "",
    ) -> str: ...


def find_reporter(engine: EngineView) -> HazardReporter | None:
    """The engine's first service that is a :class:`HazardReporter`, if any.

    ``services`` is not part of :class:`EngineView` (yet); an engine without it
    (a test double) has no reporter."""
    services: Mapping[str, object] = getattr(engine, "services", None) or {}
    return next((s for s in services.values() if isinstance(s, HazardReporter)), None)


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def _text(arg: Any) -> str:
    value = arg.Value if isinstance(arg, ua.Variant) else arg
    return "" if value is None else str(value)


def status_of(exc: PlantGuardError) -> int:
    """The status code answering a reporter's refusal."""
    if isinstance(exc, PermissionDenied):
        return StatusCodes.BadUserAccessDenied
    if isinstance(exc, UsageError):
        return StatusCodes.BadInvalidArgument
    return StatusCodes.BadInternalError


async def add_report_hazard(server: Server, ns: int, site: Site, reporter: HazardReporter) -> None:
    """Add ``<site>.ReportHazard`` to the site node, calling ``reporter``."""

    async def report(_parent: ua.NodeId, *args: ua.Variant) -> list[ua.Variant] | ua.StatusCode:
        principal = compat.calling_principal()  # asyncua checked the argument count
        title, description, device, point = (_text(a) for a in args)
        try:
            hazard_id = await asyncio.to_thread(
                reporter.report_hazard,
                principal,
                title,
                description=description,
                device=device,
                point=point,
            )
        except PlantGuardError as exc:
            log.info("ReportHazard by %s refused: %s", principal.name or "anonymous", exc)
            return _status(status_of(exc))
        log.info("hidden danger %s reported over OPC UA by %s", hazard_id, principal.name)
        return [ua.Variant(hazard_id, ua.VariantType.String)]

    site_id = nodeids.site_path(site)
    inputs = [
        ua.Argument(Name=name, DataType=_STRING, ValueRank=-1,
                    Description=ua.LocalizedText(help_text))
        for name, help_text in _INPUTS
    ]  # fmt: skip
    outputs = [ua.Argument(Name="HazardId", DataType=_STRING, ValueRank=-1)]
    await server.get_node(nodeids.node_id(site_id, ns)).add_method(
        nodeids.node_id(f"{site_id}.{METHOD}", ns),
        ua.QualifiedName(METHOD, ns),
        report,
        inputs,
        outputs,
    )
