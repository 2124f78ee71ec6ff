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
               cancel_and_wait(task, what=…): a bounded stop of a task whose client
               library may swallow one cancellation (Python 3.11's wait_for)
               EngineView: site, table, alarms, store, write_point(…, Principal),
               on_values(ValuesListener)

    the plant  Site Device Point · ValueTable (values, quality, source_time arrays)
               Quality Priority PriorityName PRIORITY_BY_NAME

    security   SecurityEvent, read with an EventReader (RuleContext.events.reader())
               IdentityRule(site, reader, fields=IDENTITY_FIELDS, priority=…): the
               engine's device-identity check, for a rule type that configures it

    records    Store · MaintenancePlan MaintenanceRecord · PlanStatus DueState
               plan_statuses(store, now) · ImportIssue (where, field, message) of an
               import refused whole

    commands   LoadedSite (CommandContext.load_site) · ConfigError · UsageError
               add_db_argument(parser) + open_store(args) + site_path(args): the
               ``--db``/``--site`` pair every store command takes, opened existing-only;
               did_you_mean(kind, name, known): "unknown … (did you mean …?)";
               add_actor_argument(parser, role) + acting_principal(store, args, what):
               ``--as USER`` with its password check, for offline changes

    users      Principal · Role (viewer < operator < engineer < admin) · PermissionDenied

    safety     RiskStore (risk register, hidden dangers, their journal) · RiskPointRow
               HazardRow JournalEntry HazardConflict · PlantState AlarmOverview (what
               the early-warning index is computed from)

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
from .auth import Principal, Role
from .build import SettingError
from .cli.acting import acting_principal, add_actor_argument
from .cli.common import add_db_argument, did_you_mean, open_store, site_path
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
    PermissionDenied,
    PlantGuardError,
    PortInUse,
    StoreError,
    UsageError,
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
from .records.exchange import ImportIssue
from .records.models import MaintenancePlan, MaintenanceRecord
from .records.status import plan_statuses
from .rules import Rule, RuleContext, RuleType
from .services import EngineView, Service, ServiceType, ValuesListener
from .sinks import AlarmSink
from .store import Store
from .store.risk import (
    AlarmOverview,
    HazardConflict,
    HazardRow,
    JournalEntry,
    PlantState,
    RiskPointRow,
    RiskStore,
)
from .table import ValueTable
from .tasks import cancel_and_wait

__all__ = [
    "IDENTITY_FIELDS",
    "PRIORITY_BY_NAME",
    "AlarmDefinition",
    "AlarmOverview",
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
    "HazardConflict",
    "HazardRow",
    "IdentityRule",
    "ImportIssue",
    "JournalEntry",
    "LoadedSite",
    "MaintenancePlan",
    "MaintenanceRecord",
    "NetworkError",
    "PermissionDenied",
    "PlanStatus",
    "PlantGuardError",
    "PlantState",
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
    "RiskPointRow",
    "RiskStore",
    "Role",
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
    "UsageError",
    "ValueTable",
    "ValuesListener",
    "acting_principal",
    "add_actor_argument",
    "add_db_argument",
    "cancel_and_wait",
    "did_you_mean",
    "ensure_port_free",
    "hookimpl",
    "open_store",
    "plan_statuses",
    "port_in_use",
    "site_path",
]
