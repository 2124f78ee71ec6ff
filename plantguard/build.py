"""Building what a site runs — rules, drivers, services, alarm sinks — without opening anything.

``plantguard run`` (through :class:`~plantguard.engine.Engine`) and ``plantguard
check`` take this one step, so whatever the gateway would refuse when it starts,
``check`` refuses first, in the same words.  Loading the site file
(:mod:`plantguard.config`) validates each mapping with the schema of the plugin
that owns it; building goes on from there: every rule type makes its rule (and
reads its files: advisory lists, trained models), every driver type makes its
drivers (not connected), every service type makes its service (not started).
Nothing here opens a device, binds a port or touches the store.

A plugin's ``create`` that raises becomes a :class:`~plantguard.config.ConfigIssue`
at the rule, device or service in the site file, with its line.  A plugin names
the setting at fault precisely by raising :class:`SettingError`; any other
exception is placed as well as the engine can (the rule on the point whose
settings fail on their own, or the rule's site-level mapping).  Every issue is
collected before one :class:`~plantguard.config.ConfigError` is raised, so one
``check`` shows everything to fix.

Warnings are settings that work but will not do all the user expects yet — a
multivariate group whose model has not been trained: ``check`` prints them,
``run`` logs them, neither refuses the site.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from .comm import CommLossRule, DeviceFaultRule, IdentityWatch, core_rules
from .config import ConfigError, ConfigIssue, LoadedSite
from .drivers import DeviceDriver, DriverType
from .errors import EXIT_FAILURE
from .host import PluginHost
from .model import AlarmDefinition, Point
from .rules import Rule, RuleContext, RuleType
from .services import Service, ServiceType
from .sinks import AlarmSink, SinkFeed
from .store import Store, database_url
from .table import ValueTable

__all__ = [
    "EngineParts",
    "SettingError",
    "StartError",
    "build_engine_parts",
    "check_site",
    "store_issue",
    "store_problem",
    "url_problem",
]

log = logging.getLogger(__name__)

PathPart = str | int
FieldPath = tuple[PathPart, ...]


class SettingError(ValueError):
    """A setting a plugin cannot work with, found when the site is built.

    Raise it from :meth:`RuleType.create <plantguard.rules.RuleType.create>`,
    :meth:`DriverType.create <plantguard.drivers.DriverType.create>` or
    :meth:`ServiceType.create <plantguard.services.ServiceType.create>` (or
    anything they call) to name the setting: ``plantguard check`` and
    ``plantguard run`` show the message at its line in the site file.

    :param point: global id of the point whose settings are wrong (a rule
        configured on points, a driver's point address); None for the rule's
        site-level mapping, the device, or the service.
    :param field: path below that: for a rule, inside its settings (``("limit",)``;
        on the point's ``rules.<name>`` or the site's ``rules.<name>``); for a
        driver, inside the device (``("connection", "tls", "cafile")``) or the
        point (``("address", "register")``); for a service, inside its options.
    """

    def __init__(
        self, message: str, *, point: str | None = None, field: Sequence[PathPart] = ()
    ) -> None:
        self.message = message
        self.point = point
        self.field: FieldPath = tuple(field)
        super().__init__(f"point {point}: {message}" if point else message)


class StartError(ConfigError):
    """A service could not start (an address not of this host, a file it cannot
    read): the issue names the service in the site file.  Exit status 1; a port in
    use is a :class:`~plantguard.errors.PortInUse` (4)."""

    exit_status = EXIT_FAILURE


@dataclass(slots=True)
class EngineParts:
    """Everything :func:`build_engine_parts` made, ready for an engine to run."""

    table: ValueTable
    #: The configured rules, then the core's comm, identity and fault rules.
    rules: list[Rule]
    comm: CommLossRule
    identity: IdentityWatch
    fault: DeviceFaultRule
    #: Every alarm the rules declare.
    alarms: list[AlarmDefinition]
    drivers: dict[str, DeviceDriver]
    #: In start order (lower ``order`` first).
    services: dict[str, Service]
    sinks: list[SinkFeed]
    warnings: list[ConfigIssue] = field(default_factory=list)


def build_engine_parts(
    loaded: LoadedSite,
    host: PluginHost,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
) -> EngineParts:
    """Build the rules, drivers (not connected), services (not started) and alarm sinks
    of ``loaded``, after the plugins' ``plantguard_site_loaded`` hooks.

    ``store`` is given to rules that read records (``check`` has none: a rule
    that needs the store to exist, such as maintenance due, is then left out).

    :raises ConfigError: every setting a plugin refused, at its place in the file.
    :raises PluginError: a plugin refused the site.
    """
    host.site_loaded(loaded.site)  # a plugin may refuse the site before anything is built
    return _Builder(loaded, host, store, clock).build()


def check_site(loaded: LoadedSite, host: PluginHost, *, db: str | None = None) -> EngineParts:
    """What ``plantguard check`` does: the store's address (``db``, default the site's
    ``store.url``) and :func:`build_engine_parts`, every issue of both at once.

    :raises ConfigError: the issues; the parts are for reading (nothing is open).
    """
    issues: list[ConfigIssue] = []
    try:
        parts = build_engine_parts(loaded, host)
    except ConfigError as exc:
        issues += exc.issues
        parts = None
    if (problem := store_issue(loaded, db)) is not None:
        issues.append(problem)
    if issues or parts is None:
        raise ConfigError(_in_file_order(issues))
    return parts


def _in_file_order(issues: Sequence[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.line is None, i.line or 0))


# --- the store's address ----------------------------------------------------------------


def store_issue(loaded: LoadedSite, db: str | None) -> ConfigIssue | None:
    """Why the store at ``db`` (``--db``; None: the site's ``store.url``) cannot be
    opened, as far as that is known without connecting; None if nothing is wrong.

    Checked: the URL parses, its database is one SQLAlchemy knows and its driver is
    installed; a SQLite file's directory exists and can be written, and an existing
    file is a SQLite database.  A server that is down, or a wrong password, is only
    found by opening the store.
    """
    target = loaded.site.store.url if db is None else db
    problem = store_problem(target)
    if problem is None:
        return None
    if db is None:
        return loaded.location.issue(("store", "url"), problem)
    return ConfigIssue("--db", None, "", problem)


def store_problem(target: str) -> str | None:
    """:func:`store_issue` for a bare ``--db`` value or URL."""
    problem = url_problem(target)
    if problem is not None:
        return problem
    url = sa.make_url(database_url(target))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    if path.is_dir():
        return f"{path} is a directory, not a database file"
    if not path.parent.is_dir():
        return f"directory {path.parent} does not exist (for the database file {path.name})"
    writable = path if path.exists() else path.parent
    if not os.access(writable, os.W_OK):
        return f"{writable} is not writable"
    if path.exists() and not _sqlite_or_empty(path):
        return f"{path} is not a SQLite database"
    return None


#: ``postgresql:/host/db``: a URL with a slash missing, not a file ``postgresql:`` holds.
_BROKEN_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def url_problem(target: str) -> str | None:
    """Why ``target`` (``--db``) is no database address PlantGuard can use, found
    without touching anything: a URL that does not parse, a database SQLAlchemy does
    not know, a driver that is not installed.  None if the address is usable."""
    if "://" not in target and (broken := _BROKEN_URL.match(target)):
        scheme = broken.group(1)
        return (
            f"not a database URL (a URL is {scheme}://user@host/database; "
            f"did you mean '{scheme}://{target[broken.end() :]}'?)"
        )
    try:
        url = sa.make_url(database_url(target))
        engine = sa.create_engine(url)  # loads the dialect and its driver; connects nothing
    except sa.exc.NoSuchModuleError:
        scheme = target.split("://", 1)[0]
        return (
            f"unknown database {scheme!r} in {target!r} "
            "(a SQLite file path, or postgresql://user@host/database)"
        )
    except ImportError as exc:
        return f"the database driver for {target.split('://', 1)[0]!r} is not installed: {exc}"
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        return f"not a database URL: {exc}"
    engine.dispose()
    return None


def _sqlite_or_empty(path: Path) -> bool:
    """Whether ``path`` starts as a SQLite file does (an empty file becomes one)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return True  # SQLite will say what is wrong when the store is opened
    return head in (b"", b"SQLite format 3\x00")


# --- building ---------------------------------------------------------------------------


class _Builder:
    def __init__(
        self,
        loaded: LoadedSite,
        host: PluginHost,
        store: Store | None,
        clock: Callable[[], float],
    ) -> None:
        self.loaded = loaded
        self.host = host
        self.site = loaded.site
        self.store = store
        self.clock = clock
        self.base_dir = Path(loaded.location.file).parent
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []

    def build(self) -> EngineParts:
        table = ValueTable(self.site.points)
        rules, alarms = self._rules(table)
        comm, identity = core_rules(self.site, table, rules)
        fault = DeviceFaultRule(self.site, table, rules)
        for rule in (comm, identity, fault):
            alarms += rule.alarms()
        rules += [comm, identity, fault]
        drivers = self._drivers()
        fault.watch(drivers)  # drivers name the faults they see
        services = self._services()
        sinks = [
            SinkFeed(name, sink, self.host.provider(AlarmSink, name))
            for name, sink in self.host.sinks.items()
        ]
        if self.issues:
            raise ConfigError(_in_file_order(self.issues))
        return EngineParts(
            table,
            rules,
            comm,
            identity,
            fault,
            alarms,
            drivers,
            services,
            sinks,
            _in_file_order(self.warnings),
        )

    # --- where things are in the file ----------------------------------------------

    @cached_property
    def _device_paths(self) -> dict[str, FieldPath]:
        return {
            device.id: ("areas", a_i, "devices", d_i)
            for a_i, area in enumerate(self.site.areas)
            for d_i, device in enumerate(area.devices)
        }

    @cached_property
    def _point_paths(self) -> dict[str, FieldPath]:
        return {
            point.id: (*self._device_paths[device.id], "points", p_i)
            for device in self.site.devices
            for p_i, point in enumerate(device.points)
        }

    def _issue(self, path: Sequence[PathPart], message: str) -> ConfigIssue:
        return self.loaded.location.issue(path, message)

    def _rule_path(
        self,
        name: str,
        configs: Sequence[tuple[Point, BaseModel]],
        point: str | None,
        fld: Sequence[PathPart] = (),
    ) -> FieldPath:
        """Where rule ``name``'s setting is: on ``point``, else the site-level mapping
        (or, for a rule configured on points only, the first of them)."""
        if point is not None and point in self._point_paths:
            return (*self._point_paths[point], "rules", name, *fld)
        if name in self.site.rules or not configs:
            return ("rules", name, *fld)
        return (*self._point_paths[configs[0][0].id], "rules", name, *fld)

    # --- rules -----------------------------------------------------------------------

    def _context(
        self, name: str, configs: Sequence[tuple[Point, BaseModel]], site_config: BaseModel | None
    ) -> RuleContext:
        def warn(message: str, *, point: str | None = None, field: Sequence[PathPart] = ()) -> None:
            self.warnings.append(self._issue(self._rule_path(name, configs, point, field), message))

        return RuleContext(
            site_config,
            self.base_dir,
            store=self.store,
            clock=self.clock,
            warn=warn,
        )

    def _rules(self, table: ValueTable) -> tuple[list[Rule], list[AlarmDefinition]]:
        rules: list[Rule] = []
        alarms: list[AlarmDefinition] = []
        loaded = self.loaded
        point_of = self.site.points
        for name in {**loaded.rule_configs, **loaded.site_rule_configs}:
            rule_type = self.host.rules[name]
            configs = [
                (point_of[table.index[pid]], cfg) for pid, cfg in loaded.rule_configs.get(name, ())
            ]
            site_config = loaded.site_rule_configs.get(name)
            context = self._context(name, configs, site_config)
            try:
                rule = rule_type.create(self.site, table, configs, context)
                declared = list(rule.alarms())
            except Exception as exc:
                self._rule_failed(name, table, configs, exc)
                continue
            rules.append(rule)
            alarms += declared
        unconfigured = self.host.rules.keys() - loaded.rule_configs.keys()
        for name in sorted(unconfigured - loaded.site_rule_configs.keys()):
            context = self._context(name, [], None)
            try:
                site_rule = self.host.rules[name].create_site_rule(context)
                declared = list(site_rule.alarms()) if site_rule is not None else []
            except Exception as exc:
                self.issues.append(self._failure(("rules", name), RuleType, name, exc))
                continue
            if site_rule is not None:
                rules.append(site_rule)
                alarms += declared
        return rules, alarms

    def _rule_failed(
        self,
        name: str,
        table: ValueTable,
        configs: list[tuple[Point, BaseModel]],
        exc: Exception,
    ) -> None:
        """Issues for a rule type whose ``create`` raised ``exc``, each at the setting
        at fault: the one a :class:`SettingError` names; else, for a rule configured on
        points only, each point whose settings fail on their own."""
        if isinstance(exc, SettingError) or name in self.site.rules or len(configs) < 2:
            point = exc.point if isinstance(exc, SettingError) else None
            fld = exc.field if isinstance(exc, SettingError) else ()
            path = self._rule_path(name, configs, point, fld)
            self.issues.append(self._failure(path, RuleType, name, exc))
            return
        rule_type = self.host.rules[name]
        found: dict[str, ConfigIssue] = {}
        for one in configs:
            context = self._context(name, [one], None)
            try:
                list(rule_type.create(self.site, table, [one], context).alarms())
            except Exception as single:
                issue = self._failure(
                    self._rule_path(name, [one], one[0].id), RuleType, name, single
                )
                found.setdefault(issue.message, issue)  # the same failure everywhere: once
        if not found:  # only the points together fail
            found[""] = self._failure(self._rule_path(name, configs, None), RuleType, name, exc)
        self.issues += found.values()

    def _failure(
        self, path: Sequence[PathPart], kind: type, name: str, exc: Exception
    ) -> ConfigIssue:
        """The issue for a plugin's ``create`` that raised ``exc``.

        A ValueError or OSError is a setting the plugin refused: its message is the
        issue's.  Anything else is a plugin failing: its type and plugin are named,
        and the traceback is logged (level debug) for the plugin's author.
        """
        if isinstance(exc, SettingError):
            message = exc.message
        elif isinstance(exc, (ValueError, OSError)):
            message = str(exc)
        else:
            plugin = self.host.provider(kind, name)
            log.debug("%s %r of plugin %r failed", kind.__name__, name, plugin, exc_info=exc)
            message = (
                f"{kind.__name__} {name!r} of plugin {plugin!r} failed: {type(exc).__name__}: {exc}"
            )
        return self._issue(path, message or type(exc).__name__)

    # --- drivers and services ---------------------------------------------------------

    def _drivers(self) -> dict[str, DeviceDriver]:
        drivers: dict[str, DeviceDriver] = {}
        loaded = self.loaded
        for device in self.site.devices:
            try:
                drivers[device.id] = self.host.drivers[device.driver].create(
                    device, loaded.connections[device.id], loaded.addresses[device.id]
                )
            except Exception as exc:
                base = self._device_paths[device.id]
                if isinstance(exc, SettingError) and exc.point in self._point_paths:
                    base = self._point_paths[exc.point]
                fld = exc.field if isinstance(exc, SettingError) else ()
                self.issues.append(self._failure((*base, *fld), DriverType, device.driver, exc))
        return drivers

    def _services(self) -> dict[str, Service]:
        services: dict[str, Service] = {}
        types = self.host.services
        for name, options in sorted(
            self.loaded.services.items(), key=lambda kv: types[kv[0]].order
        ):
            try:
                services[name] = types[name].create(options)
            except Exception as exc:
                fld = exc.field if isinstance(exc, SettingError) else ()
                self.issues.append(self._failure(("services", name, *fld), ServiceType, name, exc))
        return services
