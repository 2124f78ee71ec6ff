"""Hook specifications: everything a PlantGuard plugin can implement.

A plugin is a module or object with functions decorated by
:data:`plantguard.hookimpl` whose names are listed here.  It is found through the
``plantguard`` entry-point group (built-ins use the same group), or registered
directly with :meth:`plantguard.host.PluginHost.register` in tests.

Registration hooks receive a ``register`` callback instead of returning values
(the pattern of ``llm``'s ``register_models``): the host validates every id and
schema in one place and can say which plugin registered what.

Hooks by lifecycle:

* **start-up, registration** (called once, in plugin registration order):
  :func:`plantguard_register_drivers`, :func:`plantguard_register_rules`,
  :func:`plantguard_register_sinks`, :func:`plantguard_register_services`,
  :func:`plantguard_register_commands`
* **start-up, configuration**: :func:`plantguard_site_loaded`
* **shutdown**: :func:`plantguard_shutdown`

A function marked ``@hookimpl`` whose name is not one of these is an error at
start-up (``check_pending``): a misspelt rule hook that silently never runs is a
safety defect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from .drivers import DriverType
    from .engine import Engine
    from .model import Site
    from .rules import RuleType
    from .services import ServiceType
    from .sinks import AlarmSink

__all__ = [
    "PROJECT",
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


class RegisterCommand(Protocol):
    def __call__(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None: ...


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
def plantguard_register_sinks(register: RegisterSink) -> None:
    """Register alarm sinks, which receive every alarm transition after it is journalled.

    :param register: ``register(name, sink)`` with a ready :class:`~plantguard.sinks.AlarmSink`.
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_services(register: RegisterService) -> None:
    """Register service types (servers, simulators) configured under ``services:``.

    Only the services named in the site file are started.

    :param register: ``register(name, service_type)``.
    :return: nothing; every implementation is called.
    """


@hookspec
def plantguard_register_commands(register: RegisterCommand) -> None:
    """Add sub-commands to the ``plantguard`` command line.

    Called while the CLI builds its parser.

    :param register: ``register(name, help, configure, run)``: ``configure``
        adds arguments to the sub-command's parser, ``run`` executes it and returns
        the exit status.
    :return: nothing; every implementation is called.
    """


# --- start-up: configuration ------------------------------------------------------


@hookspec
def plantguard_site_loaded(site: Site) -> None:
    """The site file was loaded and validated; the engine has not started.

    For plugins that prepare per-site state.  Raise to refuse the site: the
    error is shown and the gateway does not start.

    :param site: the validated site.
    :return: nothing; every implementation is called.
    """


# --- shutdown ---------------------------------------------------------------------


@hookspec
def plantguard_shutdown(engine: Engine) -> None:
    """The engine stopped: history is flushed, drivers and services are closed.

    :param engine: the stopped engine (read-only use).
    :return: nothing; every implementation is called, even if one raises.
    """
