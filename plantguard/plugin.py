"""The plugin API: everything a PlantGuard plugin may import, from one module.

A plugin imports PlantGuard's names from here and nowhere else (the built-in
plugins do too, and a test holds them to it), so this module *is* the contract:
what is listed in ``__all__`` stays, what is not is the core's to change::

    from plantguard.plugin import DeviceDriver, DriverType, ReadResult, hookimpl

What is in it, by the part of the gateway a plugin plugs into::

    hooks      hookimpl · RegisterDriver RegisterRule RegisterService RegisterSink
               RegisterCommand CommandRun CommandContext · DemoOptions DemoSite

    devices    DriverType ──create(device, connection, addresses)──► DeviceDriver
               DeviceDriver.read(points) ──► ReadResult(values, quality, source_time)
               DriverError (unreachable: the engine marks the points Bad, reconnects)
               optional DeviceDriver.probe(points) ──► ProbeReading(result, RawPoint, RawRequest)

    rules      RuleType ──create(site, table, configs, RuleContext)──► Rule
               Rule.alarms() ──► [AlarmDefinition]   Rule.evaluate(table, now) ──► [Finding]

    alarms     AlarmSink.deliver(Transition)  (Transition.before/after: AlarmState)

    services   ServiceType ──create(options)──► Service.start(EngineView) / stop()
               EngineView: site, table, alarms, store, write_point(…, Principal),
               on_values(ValuesListener)

    the plant  Site Device Point · ValueTable (values, quality, source_time arrays)
               Quality Priority PriorityName PRIORITY_BY_NAME

    security   SecurityEvent, read with an EventReader (RuleContext.events.reader())
               IdentityRule(site, reader, fields=IDENTITY_FIELDS, priority=…): the
               engine's device-identity check, for a rule type that configures it

    records    Store · MaintenancePlan MaintenanceRecord · PlanStatus DueState
               plan_statuses(store, now)

    commands   LoadedSite (CommandContext.load_site) · ConfigError

    settings   SettingError(message, point=…, field=(…)): raised by a create() for a
               setting it cannot work with; check and run show it at its line

    failures   PlantGuardError ─┬ ConfigurationError  ├ StoreError
               (plantguard.errors) └ NetworkError ─ PortInUse, DeviceUnreachable
               ensure_port_free(host, port, what=…, setting=…) before a service
               binds; port_in_use(…) for the error itself.  The CLI shows each as
               one line with its exit status; anything else is shown as a bug

The hook specifications themselves are in :mod:`plantguard.hookspecs`, and the
test kit is :mod:`plantguard.testing` — a pytest plugin (fixtures
``plantguard_host``, ``running_site``, ``load_site_text``, ``tcp_port``; helpers
``wait_for``, ``free_tcp_port``), not re-exported here so that loading a plugin
never imports pytest.  See docs/plugins.md.
"""

from __future__ import annotations

from .alarms import AlarmState, Transition
from .auth import Principal
from .build import SettingError
from .comm import IDENTITY_FIELDS, IdentityRule
from .config import ConfigError, LoadedSite
from .drivers import (
    DeviceDriver,
    DriverError,
    DriverType,
    ProbeReading,
    RawPoint,
    RawRequest,
    ReadResult,
)
from .errors import (
    ConfigurationError,
    DeviceUnreachable,
    NetworkError,
    PlantGuardError,
    PortInUse,
    StoreError,
    ensure_port_free,
    port_in_use,
)
from .events import EventReader, SecurityEvent
from .hookspecs import (
    CommandRun,
    DemoOptions,
    DemoSite,
    RegisterCommand,
    RegisterDriver,
    RegisterRule,
    RegisterService,
    RegisterSink,
    hookimpl,
)
from .host import CommandContext
from .model import (
    PRIORITY_BY_NAME,
    AlarmDefinition,
    Device,
    Finding,
    Point,
    Priority,
    PriorityName,
    Quality,
    Site,
)
from .records.due import DueState, PlanStatus
from .records.models import MaintenancePlan, MaintenanceRecord
from .records.status import plan_statuses
from .rules import Rule, RuleContext, RuleType
from .services import EngineView, Service, ServiceType, ValuesListener
from .sinks import AlarmSink
from .store import Store
from .table import ValueTable

__all__ = [
    "IDENTITY_FIELDS",
    "PRIORITY_BY_NAME",
    "AlarmDefinition",
    "AlarmSink",
    "AlarmState",
    "CommandContext",
    "CommandRun",
    "ConfigError",
    "ConfigurationError",
    "DemoOptions",
    "DemoSite",
    "Device",
    "DeviceDriver",
    "DeviceUnreachable",
    "DriverError",
    "DriverType",
    "DueState",
    "EngineView",
    "EventReader",
    "Finding",
    "IdentityRule",
    "LoadedSite",
    "MaintenancePlan",
    "MaintenanceRecord",
    "NetworkError",
    "PlanStatus",
    "PlantGuardError",
    "Point",
    "PortInUse",
    "Principal",
    "Priority",
    "PriorityName",
    "ProbeReading",
    "Quality",
    "RawPoint",
    "RawRequest",
    "ReadResult",
    "RegisterCommand",
    "RegisterDriver",
    "RegisterRule",
    "RegisterService",
    "RegisterSink",
    "Rule",
    "RuleContext",
    "RuleType",
    "SecurityEvent",
    "Service",
    "ServiceType",
    "SettingError",
    "Site",
    "Store",
    "StoreError",
    "Transition",
    "ValueTable",
    "ValuesListener",
    "ensure_port_free",
    "hookimpl",
    "plan_statuses",
    "port_in_use",
]
