"""Hook specifications: everything a PlantGuard plugin can implement.

A plugin is a module or object with functions decorated by
:data:`plantguard.plugin.hookimpl` whose names are listed here.  It is found
through the ``plantguard`` entry-point group (built-ins use the same group), or
registered directly with :meth:`plantguard.host.PluginHost.register` in tests.
Plugins import what they use from :mod:`plantguard.plugin`, the plugin API.

Registration hooks receive a ``register`` callback instead of returning values
(the pattern of ``llm``'s ``register_models``): the host validates every id and
schema in one place and can say which plugin registered what.

The host calls each implementation of a hook on its own and says which plugin
failed; an implementation may declare only the parameters it uses.

Hooks by lifecycle:

* **start-up, registration** (called once, in plugin registration order, by
  :meth:`~plantguard.host.PluginHost.start`):
  :func:`plantguard_register_drivers`, :func:`plantguard_register_rules`,
  :func:`plantguard_register_services`, :func:`plantguard_register_sinks`,
  :func:`plantguard_register_commands`
* **start-up, configuration** (once per engine, before it builds anything; and
  by ``plantguard check``): :func:`plantguard_site_loaded`
* **the demo** (``plantguard demo`` only): :func:`plantguard_demo_site`
* **shutdown** (once per engine, after it stopped): :func:`plantguard_shutdown`

A function marked ``@hookimpl`` whose name is not one of these is an error at
start-up (``check_pending``): a misspelt rule hook that silently never runs is a
safety defect.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from .drivers import DriverType
    from .host import CommandContext
    from .model import Site
    from .rules import RuleType
    from .services import EngineView, ServiceType
    from .sinks import AlarmSink
    from .store import Store

__all__ = [
    "PROJECT",
    "CommandRun",
    "DemoOptions",
    "DemoSite",
    "RegisterCommand",
    "RegisterDriver",
    "RegisterRule",
    "RegisterService",
    "RegisterSink",
    "hookimpl",
    "hookspec",
]

PROJECT = "plantguard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterDriver(Protocol):
    def __call__(self, name: str, driver_type: DriverType) -> None: ...


class RegisterRule(Protocol):
    def __call__(self, name: str, rule_type: RuleType) -> None: ...


class RegisterSink(Protocol):
    def __call__(self, name: str, sink: AlarmSink) -> None: ...


class RegisterService(Protocol):
    def __call__(self, name: str, service_type: ServiceType) -> None: ...


#: A plugin command: the parsed arguments and the command's context (the started
#: plugin host, site loading) in, the exit status out.
CommandRun = Callable[[argparse.Namespace, "CommandContext"], int]


class RegisterCommand(Protocol):
    def __call__(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: CommandRun,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``plantguard demo`` was asked for on its command line."""

    opcua_port: int
    modbus_port: int
    #: The demo's store: a SQLite file path or a SQLAlchemy URL.
    db: str
    #: ``"cycle"`` (alarm events every 90 s) or ``"none"``.
    scenario: str
    #: ``HOST:PORT`` of an MQTT broker the demo also publishes to (Sparkplug B and
    #: Home Assistant discovery), or None.
    mqtt: str | None = None


@dataclass(frozen=True, slots=True)
class DemoSite:
    """The demo a plugin provides: its site file and how to fill a new demo store."""

    #: The site file (YAML) with :class:`DemoOptions` applied.
    text: str
    #: Called once with the opened store and the validated site, before the engine
    #: starts; it must leave alone what a previous demo run stored.
    seed: Callable[[Store, Site], object]


# --- start-up: registration -------------------------------------------------------


@hookspec
def plantguard_register_drivers(register: RegisterDriver) -> None:
    """Register device driver types (protocols).

    Called once at start-up, before the site file is validated, because device
    ``connection`` and point ``address`` settings are validated by the driver type.

    :param register: ``register(name, driver_type)``; ``name`` is what a device
        names with ``driver:`` in the site file (``[a-z][a-z0-9_]*``, unique).
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_rules(register: RegisterRule) -> None:
    """Register rule types.

    Called once at start-up.  A point opts into a rule type with
    ``rules: {<name>: {...}}``; the mapping is validated with the type's
    ``config_model``.

    :param register: ``register(name, rule_type)``.
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_services(register: RegisterService) -> None:
    """Register service types (servers, simulators) configured under ``services:``.

    Called once at start-up.  Only the services named in the site file are started.

    :param register: ``register(name, service_type)``.
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_sinks(register: RegisterSink) -> None:
    """Register alarm sinks: the way a plugin receives alarm transitions.

    Called once at start-up.  Every engine delivers every alarm transition to
    every sink after the transition is journalled, in journal order, each sink
    from a task of its own: a slow sink falls behind alone and a failing one is
    logged, neither holds up the alarm manager.  Transitions still queued when the
    engine stops are delivered before :func:`plantguard_shutdown` (for a few seconds).

    :param register: ``register(name, sink)`` with a ready :class:`~plantguard.sinks.AlarmSink`.
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_commands(register: RegisterCommand) -> None:
    """Add sub-commands to the ``plantguard`` command line.

    Called once at start-up, before the CLI builds its parser.

    :param register: ``register(name, help, configure, run)``: ``configure``
        adds arguments to the sub-command's parser; ``run(args, context)``
        executes it with the parsed arguments and a
        :class:`~plantguard.host.CommandContext` (the started plugin host, site
        loading) and returns the exit status.
    :return: nothing; every implementation is called.
    """


# --- start-up: configuration ------------------------------------------------------


@hookspec
def plantguard_site_loaded(site: Site) -> None:
    """The site file was loaded and validated; the engine is about to be built.

    Called once per engine (``plantguard run``, ``plantguard demo``, the test
    kit's ``running_site``), before it opens a device or starts a service.  For
    plugins that prepare per-site state.  Raise to refuse the site: the error is
    shown with the plugin's name and the gateway does not start.
    ``plantguard check`` calls it too (it builds what ``run`` builds, and opens
    nothing), so a refusal shows there first; no :func:`plantguard_shutdown`
    follows a ``check``.

    :param site: the validated site.
    :return: nothing; every implementation is called, until one raises.
    """


# --- the demo ---------------------------------------------------------------------


@hookspec(firstresult=True)
def plantguard_demo_site(options: DemoOptions) -> DemoSite | None:
    """Provide the site that ``plantguard demo`` runs.

    Called once by ``plantguard demo`` (and by
    :func:`plantguard.cli.common.demo_site_text`).  The built-in simulator
    plugin provides the demo plant; the core names no plugin.

    :param options: the ports, store and scenario chosen on the command line.
    :return: the demo's :class:`DemoSite`, or None to leave it to another
        plugin; the first non-None result wins.
    """


# --- shutdown ---------------------------------------------------------------------


@hookspec
def plantguard_shutdown(engine: EngineView) -> None:
    """The engine stopped: history is flushed, drivers and services are closed,
    and the alarm sinks have been given their last transitions.

    :param engine: the stopped engine (read-only use).
    :return: nothing; every implementation is called, even if one raises (the
        failure is logged with the plugin's name).
    """
