"""An example PlantGuard plugin: a device driver and a rule.

``gauge`` devices are level gauges that report the value set in each point's
address (a stand-in for a real protocol; a write changes it), and the ``above``
rule raises an alarm while a point's value is above its limit.  Package it with
an entry point and the gateway loads it like the built-in plugins::

    [project.entry-points.plantguard]
    example = "plantguard_example.plugin"

Everything from PlantGuard comes from ``plantguard.plugin``, the plugin API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    PRIORITY_BY_NAME,
    AlarmDefinition,
    Device,
    DeviceDriver,
    DriverError,
    DriverType,
    Finding,
    Point,
    PriorityName,
    Quality,
    ReadResult,
    RegisterDriver,
    RegisterRule,
    Rule,
    RuleContext,
    RuleType,
    Site,
    ValueTable,
    hookimpl,
)

# --- the driver ----------------------------------------------------------------------


class GaugeConnection(BaseModel):
    """A device's ``connection:`` mapping, validated when the site is loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset: float = Field(0.0, description="added to every reading")


class GaugeAddress(BaseModel):
    """A point's ``address:`` mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float = Field(description="what the gauge reads until it is written")


class GaugeDriver(DeviceDriver):
    def __init__(
        self, device: Device, connection: GaugeConnection, values: dict[str, float]
    ) -> None:
        self.device = device
        self._offset = connection.offset
        self._values = values
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True  # a real driver opens its transport; DriverError if it cannot

    async def read(self, points: Sequence[Point]) -> ReadResult:
        if not self._connected:
            raise DriverError(f"{self.device.id}: not connected")
        values = np.array([self._values[p.id] + self._offset for p in points], dtype=np.float64)
        quality = np.full(len(points), Quality.GOOD, dtype=np.uint8)
        return ReadResult(values, quality, time.time())

    async def write(self, point: Point, value: float) -> None:
        self._values[point.id] = value - self._offset

    async def close(self) -> None:
        self._connected = False


class GaugeDriverType(DriverType):
    connection_model = GaugeConnection
    address_model = GaugeAddress

    def create(
        self, device: Device, connection: BaseModel, addresses: Mapping[str, BaseModel]
    ) -> DeviceDriver:
        assert isinstance(connection, GaugeConnection)
        values = {pid: a.value for pid, a in addresses.items() if isinstance(a, GaugeAddress)}
        return GaugeDriver(device, connection, values)


# --- the rule --------------------------------------------------------------------------


class AboveConfig(BaseModel):
    """A point's ``rules: {above: {...}}`` mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: float
    priority: PriorityName = "high"


class AboveRule(Rule):
    """One alarm per configured point, evaluated over whole arrays each scan."""

    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, AboveConfig]]) -> None:
        self._idx = table.indices([p.id for p, _ in configs])
        self._limit = np.array([c.limit for _, c in configs], dtype=np.float64)
        self._active = np.zeros(len(configs), dtype=bool)
        self._definitions = [
            AlarmDefinition(
                id=f"{p.id}.above",
                source_id=p.id,
                device_id=p.device_id,
                rule="above",
                priority=PRIORITY_BY_NAME[c.priority],
                message="{value:.3g} is above {limit:.3g}",
            )
            for p, c in configs
        ]

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        values = table.values[self._idx]
        good = table.quality[self._idx] < Quality.UNCERTAIN
        # A point whose quality is not Good keeps its alarm state: no verdict on bad data.
        active = np.where(good, values > self._limit, self._active)
        findings = []
        for i in np.flatnonzero(active != self._active).tolist():
            alarm, value = self._definitions[i], float(values[i])
            if active[i]:
                text = alarm.render(value=value, limit=float(self._limit[i]))
                findings.append(
                    Finding(alarm.id, True, "HI", int(alarm.priority), text, value, now)
                )
            else:
                findings.append(Finding(alarm.id, False, "", 0, "back to normal", value, now))
        self._active = active
        return findings


class AboveRuleType(RuleType):
    config_model = AboveConfig

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        return AboveRule(table, [(p, c) for p, c in configs if isinstance(c, AboveConfig)])


# --- the hooks -------------------------------------------------------------------------


@hookimpl
def plantguard_register_drivers(register: RegisterDriver) -> None:
    register("gauge", GaugeDriverType())


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("above", AboveRuleType())
