"""Maintenance and statistics in the address space, and the RecordMaintenance method.

Per device, beside its properties and points::

    <device>/Maintenance          NextDue, LastDone, Overdue, DueSoon, PlansDue
    <device>/Maintenance/<plan>   Title, Kind, State, DueAt, Remaining, Unit
    <device>/Statistics           OnlineRate, Availability, Outages, MTBF_h, MTTR_h, Alarms
    <device>/Statistics/Counters  one UInt64 per counter its driver keeps (messages,
                                  malformed …), since the gateway started
    <device>.RecordMaintenance    (PlanId, WorkDone, Result, Passed, CertificateNumber,
                                   Performer) → RecordId
and per site ``<site>/Maintenance`` (Overdue, DueSoon) and ``<site>/Statistics``
(Devices, OnlineRate, Alarms).  Statistics cover the last 30 days.

The values are computed by :mod:`plantguard.records` — the same functions the CLI
uses — and refreshed every minute and right after a record is added.  Counters
come from the store too (the engine writes them every minute), so a counter
appears as a variable at the first refresh after its driver first stored it.  Recording
needs the operator role; the record's performer is the given name or, if empty,
the calling session's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plantguard.auth import Role
from plantguard.model import Device, Site
from plantguard.records.due import DueState, PlanStatus
from plantguard.records.models import MaintenanceKind, MaintenanceRecord
from plantguard.records.stats import DeviceAvailability, Statistics, statistics
from plantguard.records.status import plan_statuses
from plantguard.store import Store
from plantguard.store.records import UnknownReference

from . import compat, nodeids
from .nodeids import device_path, site_path

__all__ = ["REFRESH_EVERY", "STATISTICS_PERIOD", "RecordsPublisher"]

log = logging.getLogger(__name__)

REFRESH_EVERY = 60.0
STATISTICS_PERIOD = 30 * 86400.0

_DEVICE_MAINTENANCE = {
    "NextDue": ua.VariantType.DateTime,
    "LastDone": ua.VariantType.DateTime,
    "Overdue": ua.VariantType.Boolean,
    "DueSoon": ua.VariantType.Boolean,
    "PlansDue": ua.VariantType.UInt32,
}
_PLAN = {
    "Title": ua.VariantType.String,
    "Kind": ua.VariantType.String,
    "State": ua.VariantType.String,
    "DueAt": ua.VariantType.DateTime,
    "Remaining": ua.VariantType.Double,
    "Unit": ua.VariantType.String,
}
_DEVICE_STATISTICS = {
    "OnlineRate": ua.VariantType.Double,
    "Availability": ua.VariantType.Double,
    "Outages": ua.VariantType.UInt32,
    "MTBF_h": ua.VariantType.Double,
    "MTTR_h": ua.VariantType.Double,
}
_SITE_MAINTENANCE = {"Overdue": ua.VariantType.UInt32, "DueSoon": ua.VariantType.UInt32}
_SITE_STATISTICS = {
    "Devices": ua.VariantType.UInt32,
    "OnlineRate": ua.VariantType.Double,
    "Alarms": ua.VariantType.UInt32,
}
_RECORD_INPUTS = (
    ("PlanId", "plan this work fulfils; empty for unplanned work"),
    ("WorkDone", "what was done"),
    ("Result", "completed, partial or not_done (empty: completed)"),
    ("Passed", "inspection verdict: true, false or empty"),
    ("CertificateNumber", "certificate of an inspection or calibration"),
    ("Performer", "who did the work (empty: the calling user)"),
)


class _MethodError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class _DeviceNodes:
    device: Device
    node_id: str
    maintenance: dict[str, ua.NodeId]
    statistics: dict[str, ua.NodeId]
    plans: dict[str, dict[str, ua.NodeId]]
    #: ``<device>/Statistics/Counters`` and its variables by counter name (grows)
    counters_folder: ua.NodeId
    counters: dict[str, ua.NodeId]


_STRING = ua.NodeId(ua.Int32(ObjectIds.String))
_DATETIME = ua.NodeId(ua.Int32(ObjectIds.DateTime))
_NO_DATE = dt.datetime(1601, 1, 1)  # OPC UA's minimum DateTime, sent with a Bad status only


def _time(value: dt.datetime | None) -> ua.Variant | None:
    """A DateTime value, or no value at all when there is none: asyncua cannot encode a
    None DateTime (the read fails), refuses to write a Null-typed Variant to a DateTime
    variable, and 1601-01-01 would be a date, not "unknown"."""
    if value is None:
        return None
    return ua.Variant(value.astimezone(dt.UTC).replace(tzinfo=None), ua.VariantType.DateTime)


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


class RecordsPublisher:
    """Builds the Maintenance and Statistics nodes and keeps them current."""

    def __init__(
        self,
        server: Server,
        ns: int,
        site: Site,
        store: Store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._server = server
        self._ns = ns
        self._site = site
        self._store = store
        self._clock = clock
        self._devices: dict[str, _DeviceNodes] = {}
        self._site_nodes: dict[str, ua.NodeId] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._dated: set[ua.NodeId] = set()

    async def build(self) -> None:
        ns = self._ns
        site_id = site_path(self._site)
        site_node = self._server.get_node(nodeids.node_id(site_id, ns))
        self._site_nodes.update(
            await self._variables(
                site_node, f"{site_id}/Maintenance", "Maintenance", _SITE_MAINTENANCE
            )
        )
        self._site_nodes.update(
            {
                f"Statistics.{k}": v
                for k, v in (
                    await self._variables(
                        site_node, f"{site_id}/Statistics", "Statistics", _SITE_STATISTICS
                    )
                ).items()
            }
        )
        plans = self._store.records.plans()
        for area in self._site.areas:
            for device in area.devices:
                path = device_path(self._site, area, device)
                node = self._server.get_node(nodeids.node_id(path, ns))
                maintenance = await self._variables(
                    node, f"{path}/Maintenance", "Maintenance", _DEVICE_MAINTENANCE
                )
                folder = self._server.get_node(nodeids.node_id(f"{path}/Maintenance", ns))
                plan_nodes = {}
                for plan in (p for p in plans if p.device_id == device.id and p.active):
                    plan_nodes[plan.id] = await self._variables(
                        folder, f"{path}/Maintenance/{plan.id}", plan.id, _PLAN
                    )
                stats = await self._variables(
                    node, f"{path}/Statistics", "Statistics", _DEVICE_STATISTICS
                )
                counters = nodeids.node_id(f"{path}/Statistics/Counters", ns)
                await self._server.get_node(nodeids.node_id(f"{path}/Statistics", ns)).add_object(
                    counters, ua.QualifiedName("Counters", ns)
                )
                await self._method(node, path, device)
                self._devices[device.id] = _DeviceNodes(
                    device, path, maintenance, stats, plan_nodes, counters, {}
                )
        await self.refresh()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="opcua records refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing maintenance and statistics nodes failed")

    # --- building -------------------------------------------------------------------------

    async def _variables(
        self, parent: Node, path: str, name: str, variables: dict[str, ua.VariantType]
    ) -> dict[str, ua.NodeId]:
        obj = await parent.add_object(
            nodeids.node_id(path, self._ns), ua.QualifiedName(name, self._ns)
        )
        out = {}
        for var_name, vtype in variables.items():
            node_id = nodeids.node_id(f"{path}#{var_name}", self._ns)
            if vtype is ua.VariantType.DateTime:
                await obj.add_variable(
                    node_id, ua.QualifiedName(var_name, self._ns), ua.Variant(),
                    datatype=_DATETIME,
                )  # fmt: skip
            else:
                initial = ua.Variant(_zero(vtype), vtype)
                await obj.add_variable(node_id, ua.QualifiedName(var_name, self._ns), initial)
            out[var_name] = node_id
        return out

    async def _method(self, node: Node, path: str, device: Device) -> None:
        inputs = [
            ua.Argument(Name=name, DataType=_STRING, ValueRank=-1,
                        Description=ua.LocalizedText(help_text))
            for name, help_text in _RECORD_INPUTS
        ]  # fmt: skip
        outputs = [ua.Argument(Name="RecordId", DataType=_STRING, ValueRank=-1)]

        async def record(parent: ua.NodeId, *args: ua.Variant) -> list[ua.Variant] | ua.StatusCode:
            try:
                record_id = await self.record_maintenance(device.id, [_text(a) for a in args])
            except _MethodError as exc:
                log.info("RecordMaintenance on %s refused: %s", device.id, exc)
                return ua.StatusCode(
                    ua.UInt32(exc.code)
                )  # asyncua answers a returned code as the result
            return [ua.Variant(record_id, ua.VariantType.String)]

        await node.add_method(
            nodeids.node_id(f"{path}.RecordMaintenance", self._ns),
            ua.QualifiedName("RecordMaintenance", self._ns),
            record,
            inputs,
            outputs,
        )

    # --- the method -----------------------------------------------------------------------

    async def record_maintenance(self, device_id: str, args: Sequence[str]) -> str:
        """Validate, store and publish one record; raise _MethodError with a status code."""
        principal = compat.calling_principal()
        if not principal.may(Role.OPERATOR):
            raise _MethodError(
                StatusCodes.BadUserAccessDenied,
                f"{principal.name or 'anonymous'} may not record maintenance",
            )
        if len(args) != len(_RECORD_INPUTS):
            raise _MethodError(
                StatusCodes.BadArgumentsMissing, "RecordMaintenance takes 6 arguments"
            )
        plan_id, work, result, passed, certificate, performer = (a.strip() for a in args)
        plan = next((p for p in self._store.records.plans(device_id) if p.id == plan_id), None)
        if plan_id and plan is None:
            raise _MethodError(
                StatusCodes.BadInvalidArgument, f"no plan {plan_id!r} for {device_id}"
            )
        verdict = {"": None, "true": True, "false": False}.get(passed.lower(), "bad")
        if verdict == "bad":
            raise _MethodError(
                StatusCodes.BadInvalidArgument,
                f"Passed must be true, false or empty, not {passed!r}",
            )
        try:
            record = MaintenanceRecord(
                id=f"r-{uuid.uuid4().hex[:12]}",
                device_id=device_id,
                plan_id=plan_id or None,
                kind=plan.kind if plan else MaintenanceKind.MAINTENANCE,
                performed_at=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
                performer=performer or principal.name,
                work_done=work,
                result=result or "completed",
                passed=verdict,
                certificate_number=certificate,
            )
            await asyncio.to_thread(self._store.records.add_records, [record])
        except (ValueError, UnknownReference) as exc:
            raise _MethodError(StatusCodes.BadInvalidArgument, str(exc)) from exc
        log.info("maintenance %s recorded on %s by %s", record.id, device_id, principal.name)
        await self.refresh()
        return record.id

    # --- refreshing -----------------------------------------------------------------------

    async def refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            statuses, stats = await asyncio.to_thread(self._compute, now)
            await self._write_all(statuses, stats)

    def _compute(self, now: float) -> tuple[dict[str, PlanStatus], Statistics]:
        statuses = plan_statuses(self._store, now)
        return statuses, statistics(self._store, now - STATISTICS_PERIOD, now, statuses)

    async def _write_all(self, statuses: dict[str, PlanStatus], stats: Statistics) -> None:
        by_device: dict[str, list[PlanStatus]] = {}
        for status in statuses.values():
            by_device.setdefault(status.plan.device_id, []).append(status)
        availability = {a.device_id: a for a in stats.availability}
        writes: list[_Write] = []
        for device_id, nodes in self._devices.items():
            mine = by_device.get(device_id, [])
            writes += _device_maintenance(nodes.maintenance, mine)
            for status in mine:
                plan_nodes = nodes.plans.get(status.plan.id)
                if plan_nodes is not None:  # a plan added after start shows after a restart
                    writes += _plan(plan_nodes, status)
            if device_id in availability:
                writes += _availability(nodes.statistics, availability[device_id])
            writes += await self._counters(nodes, stats.counters.get(device_id, {}))
        writes += self._site_summary(statuses, stats)
        for node_id, variant in writes:
            if variant is None and node_id not in self._dated:
                continue  # a date that never was: the variable is still without a value
            await self._server.write_attribute_value(node_id, self._value(node_id, variant))

    async def _counters(self, nodes: _DeviceNodes, counters: dict[str, int]) -> list[_Write]:
        """The device's counter variables, adding those of counters seen the first time."""
        writes: list[_Write] = []
        for name, value in counters.items():
            node_id = nodes.counters.get(name)
            if node_id is None:
                node_id = nodeids.node_id(f"{nodes.node_id}/Statistics/Counters#{name}", self._ns)
                await self._server.get_node(nodes.counters_folder).add_variable(
                    node_id, ua.QualifiedName(name, self._ns), _counter(0)
                )
                nodes.counters[name] = node_id
            writes.append((node_id, _counter(value)))
        return writes

    def _site_summary(self, statuses: dict[str, PlanStatus], stats: Statistics) -> list[_Write]:
        site = self._site_nodes
        rates = [a.online_rate for a in stats.availability if a.device_id in self._devices]
        states = [s.state for s in statuses.values()]
        return [
            (site["Overdue"], _uint(states.count(DueState.OVERDUE))),
            (site["DueSoon"], _uint(states.count(DueState.DUE_SOON))),
            (site["Statistics.Devices"], _uint(len(self._devices))),
            (site["Statistics.OnlineRate"], _double(sum(rates) / len(rates) if rates else None)),
            (site["Statistics.Alarms"], _uint(sum(stats.alarms_by_priority.values()))),
        ]

    def _value(self, node_id: ua.NodeId, variant: ua.Variant | None) -> ua.DataValue:
        """The DataValue to write; ``None`` is a date that disappeared (a condition plan
        done).  asyncua refuses a null Variant for a DateTime variable, so that is
        written as BadNoData, which clients read as no value; variables that never had
        a date are left without one by the caller.
        """
        if variant is None:
            self._dated.discard(node_id)
            return ua.DataValue(
                ua.Variant(_NO_DATE, ua.VariantType.DateTime),
                StatusCode=ua.StatusCode(ua.UInt32(StatusCodes.BadNoData)),
            )
        if variant.VariantType is ua.VariantType.DateTime:
            self._dated.add(node_id)
        return ua.DataValue(variant)


_Write = tuple[ua.NodeId, ua.Variant | None]


def _uint(value: int) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.UInt32)


def _counter(value: int) -> ua.Variant:
    return ua.Variant(max(0, min(value, 2**64 - 1)), ua.VariantType.UInt64)


def _double(value: float | None) -> ua.Variant:
    return ua.Variant(_number(value), ua.VariantType.Double)


def _string(value: str) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.String)


def _flag(value: bool) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.Boolean)


def _device_maintenance(nodes: dict[str, ua.NodeId], plans: list[PlanStatus]) -> list[_Write]:
    """A device's Maintenance view: the earliest due, the latest done, what is due."""
    due_times = [s.due_at for s in plans if s.due_at is not None]
    done_times = [s.last_done for s in plans if s.last_done is not None]
    return [
        (nodes["NextDue"], _time(min(due_times) if due_times else None)),
        (nodes["LastDone"], _time(max(done_times) if done_times else None)),
        (nodes["Overdue"], _flag(any(s.state is DueState.OVERDUE for s in plans))),
        (nodes["DueSoon"], _flag(any(s.state is DueState.DUE_SOON for s in plans))),
        (nodes["PlansDue"], _uint(sum(s.is_due for s in plans))),
    ]


def _plan(nodes: dict[str, ua.NodeId], status: PlanStatus) -> list[_Write]:
    return [
        (nodes["Title"], _string(status.plan.title)),
        (nodes["Kind"], _string(status.plan.kind.value)),
        (nodes["State"], _string(status.state.value)),
        (nodes["DueAt"], _time(status.due_at)),
        (nodes["Remaining"], _double(status.remaining)),
        (nodes["Unit"], _string(status.plan.trigger.unit)),
    ]


def _availability(nodes: dict[str, ua.NodeId], a: DeviceAvailability) -> list[_Write]:
    return [
        (nodes["OnlineRate"], _double(a.online_rate)),
        (nodes["Availability"], _double(a.availability)),
        (nodes["Outages"], _uint(a.outages)),
        (nodes["MTBF_h"], _double(a.mtbf_h)),
        (nodes["MTTR_h"], _double(a.mttr_h)),
    ]


def _zero(vtype: ua.VariantType) -> Any:
    if vtype is ua.VariantType.Boolean:
        return False
    if vtype is ua.VariantType.String:
        return ""
    if vtype is ua.VariantType.Double:
        return math.nan
    return 0


def _text(arg: Any) -> str:
    value = arg.Value if isinstance(arg, ua.Variant) else arg
    return "" if value is None else str(value)
