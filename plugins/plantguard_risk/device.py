"""The early-warning index as a virtual device: ``driver: safety_index``.

Why a device: its points get what every point gets — the value table, history,
the OPC UA address space (``<site>/<area>/<device>/Points/index``), Home
Assistant sensors, reports — with no change to any of them.  The site file
declares it like any device and configures the weights as the options of the
``safety_index`` service::

    services:
      safety_index: {hazard: {general: 2, major: 10}, thresholds: [25, 50, 75]}
    areas:
      - id: plant
        devices:
          - id: safety
            driver: safety_index
            points:
              - {id: index, address: {component: index}}
              - {id: level, data_type: int, address: {component: level}}
              - {id: hazards_open, address: {component: hazards_open}}

The service is what reaches the running engine's store (a driver is given only
its device); it attaches itself to every ``safety_index`` device of its engine
when it starts.  Each read of the device computes the index afresh (or reuses
the last result within ``refresh`` seconds), so it is computed at the poll
interval of the device's poll group.  Until the service is attached the points
read Bad (configuration error): a site with the device but without the service
says so on every point rather than showing a made-up figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from plantguard.plugin import (
    Device,
    DeviceDriver,
    DriverType,
    EngineView,
    Point,
    Principal,
    Quality,
    ReadResult,
    Service,
    ServiceType,
    SettingError,
    Store,
    StoreError,
)

from .gather import gather, overdue_plans
from .index import IndexResult, IndexSettings, compute
from .reporting import HazardReporting

__all__ = [
    "DRIVER",
    "IndexAddress",
    "IndexDriver",
    "IndexDriverType",
    "IndexService",
    "IndexServiceType",
]

DRIVER = "safety_index"
#: Seconds between two due computations of the maintenance plans (due dates move in
#: hours and days; the computation reads every alarm's state).
PLANS_EVERY = 60.0

Component = Literal[
    "index",
    "level",
    "alarms_unack",
    "alarms_standing",
    "hazards_open",
    "rectification_overdue",
    "inspections_overdue",
    "risk_controls_overdue",
    "detection_flags",
    "device_unavailability",
]


class IndexAddress(BaseModel):
    """A point of the virtual device: which figure it shows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: Component


class NoConnection(BaseModel):
    """The virtual device has nothing to connect to (weights are the service's options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(slots=True)
class IndexSource:
    """Computes the index from a store; shared by the devices of one engine."""

    store: Store
    settings: IndexSettings
    clock: Callable[[], float] = time.time
    last: IndexResult | None = None
    last_time: float = float("-inf")
    late: set[str] | None = None
    late_time: float = float("-inf")

    def result(self) -> IndexResult:
        now = self.clock()
        if self.last is None or now - self.last_time >= self.settings.refresh:
            if self.late is None or now - self.late_time >= PLANS_EVERY:
                self.late, self.late_time = overdue_plans(self.store, now), now
            inputs = gather(self.store, now, self.settings, self.late)
            self.last = compute(inputs, self.settings)
            self.last_time = now
        return self.last


#: The source attached to each virtual device (by the device object's identity).
_SOURCES: dict[int, tuple[Device, IndexSource]] = {}


def _value(result: IndexResult, component: str) -> float:
    if component == "index":
        return result.index
    if component == "level":
        return float(result.level_number)
    return result.components[component]


class IndexDriver(DeviceDriver):
    def __init__(self, device: Device, addresses: Mapping[str, IndexAddress]) -> None:
        self.device = device
        self._addresses = addresses
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    async def connect(self) -> None:
        self._open = True

    def _source(self) -> IndexSource | None:
        found = _SOURCES.get(id(self.device))
        return found[1] if found is not None and found[0] is self.device else None

    async def read(self, points: Sequence[Point]) -> ReadResult:
        now = time.time()
        source = self._source()
        n = len(points)
        if source is None:
            bad = np.full(n, Quality.BAD_CONFIGURATION_ERROR, dtype=np.uint8)
            return ReadResult(np.full(n, np.nan), bad, now)
        result = await asyncio.to_thread(source.result)
        values = np.array([_value(result, self._addresses[p.id].component) for p in points])
        return ReadResult(values, np.zeros(n, dtype=np.uint8), source.last_time)

    async def close(self) -> None:
        self._open = False


class IndexDriverType(DriverType):
    connection_model = NoConnection
    address_model = IndexAddress

    def create(
        self, device: Device, connection: BaseModel, addresses: Mapping[str, BaseModel]
    ) -> IndexDriver:
        typed: dict[str, IndexAddress] = {}
        for point in device.points:
            address = addresses.get(point.id)
            if not isinstance(address, IndexAddress):
                raise SettingError("needs address: {component: …}", point=point.id)
            if point.access != "read":
                raise SettingError(
                    "the early-warning index is computed, not written",
                    point=point.id,
                    field=("access",),
                )
            typed[point.id] = address
        return IndexDriver(device, typed)


class IndexService(Service):
    """Attaches the engine's store and the weights to the engine's virtual devices.

    Once started with a store it is also the engine's *hazard reporter*
    (:mod:`.reporting`): the OPC UA service finds :meth:`report_hazard` on it.
    """

    def __init__(self, settings: IndexSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._attached: list[int] = []
        self._reporting: HazardReporting | None = None

    def report_hazard(
        self,
        principal: Principal,
        title: str,
        *,
        description: str = "",
        device: str = "",
        point: str = "",
    ) -> str:
        """Report a hidden danger in the engine's store (see :class:`.HazardReporting`)."""
        if self._reporting is None:
            raise StoreError("the safety_index service is not running with a store")
        return self._reporting.report_hazard(
            principal, title, description=description, device=device, point=point
        )

    async def start(self, engine: EngineView) -> None:
        if engine.store is None:
            return
        self._reporting = HazardReporting(engine.store, self.clock)
        source = IndexSource(engine.store, self.settings, self.clock)
        for device in engine.site.devices:
            if device.driver == DRIVER:
                _SOURCES[id(device)] = (device, source)
                self._attached.append(id(device))

    async def stop(self) -> None:
        for key in self._attached:
            _SOURCES.pop(key, None)
        self._attached.clear()
        self._reporting = None


class IndexServiceType(ServiceType):
    options_model = IndexSettings
    #: Before the drivers poll, after simulators.
    order = 20

    def create(self, options: BaseModel) -> IndexService:
        if not isinstance(options, IndexSettings):
            raise TypeError(f"expected IndexSettings, got {type(options).__name__}")
        return IndexService(options)
