"""The plugin host: finds plugins, checks them, keeps what they register, and
calls the lifecycle hooks.

Built-in plugins and third-party ones take the same path: both are entry points
of the ``plantguard`` group, loaded by one pluggy manager.  The built-ins are
also named in :data:`BUILTIN_PLUGINS` so that a broken install (an entry point
missing) fails loudly instead of running a gateway without its Modbus driver.

``PLANTGUARD_PLUGINS`` (comma-separated entry-point names) restricts which
plugins load, e.g. to run a site without the simulator, or to test one plugin.

Importing this module is cheap (pluggy and the hook specifications): the kinds a
plugin registers (drivers, rules, services, sinks) and the site loader are
imported when a host starts or loads a site, so a command that needs no plugin
(``plantguard --version``, ``trend``) never pays for numpy, pydantic or the store.

Every hook but :func:`~plantguard.hookspecs.plantguard_demo_site` is called
here one implementation at a time (not through ``pm.hook``), so that what a
plugin registers, refuses or fails at is reported with the plugin's name, and one
failing ``plantguard_shutdown`` does not skip the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import ConfigurationError
from .hookspecs import CommandRun, DemoOptions, DemoSite

if TYPE_CHECKING:
    from .config import LoadedSite
    from .drivers import DriverType
    from .model import Site
    from .rules import RuleType
    from .services import EngineView, ServiceType
    from .sinks import AlarmSink

__all__ = [
    "BUILTIN_PLUGINS",
    "ENV_PLUGINS",
    "Command",
    "CommandContext",
    "PluginError",
    "PluginHost",
    "PluginRegistry",
    "default_host",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "plantguard"
ENV_PLUGINS = "PLANTGUARD_PLUGINS"
#: Entry-point names of the plugins that ship with PlantGuard.
BUILTIN_PLUGINS: tuple[str, ...] = ("modbus", "sim", "rules", "maintenance", "opcua")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: Hooks the host calls one implementation at a time: wrappers cannot take part.
_CALLED_ONE_BY_ONE = (
    "plantguard_register_drivers",
    "plantguard_register_rules",
    "plantguard_register_services",
    "plantguard_register_sinks",
    "plantguard_register_commands",
    "plantguard_site_loaded",
    "plantguard_shutdown",
)


class PluginError(ConfigurationError):
    """A plugin could not be loaded, implements an unknown hook, registered something
    invalid, or refused the site."""


class PluginRegistry:
    """What the registration hooks fill: the site loader validates a site against it."""

    def __init__(self) -> None:
        self.drivers: dict[str, DriverType] = {}
        self.rules: dict[str, RuleType] = {}
        self.services: dict[str, ServiceType] = {}
        self.sinks: dict[str, AlarmSink] = {}


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: CommandRun
    plugin: str


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a plugin command gets besides its arguments: the CLI's started plugin host.

    Commands use this host rather than building their own, so a command sees
    exactly the plugins (and ``PLANTGUARD_PLUGINS`` restriction) of the CLI.
    """

    host: PluginHost

    def load_site(self, path: str | Path, overrides: Mapping[str, Any] | None = None) -> LoadedSite:
        """Read and validate a site file with this host's plugins; raises
        :class:`~plantguard.config.ConfigError` (the CLI shows it, exit status 2)."""
        from .config import load_site

        return load_site(path, self.host, overrides)


class PluginHost(PluginRegistry):
    """One pluggy manager plus the registries its registration hooks fill."""

    def __init__(self) -> None:
        super().__init__()
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.commands: dict[str, Command] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._started = False

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # --- loading -------------------------------------------------------------------

    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        """Load the ``plantguard`` entry points (restricted by ``only`` or the environment)."""
        if only is None and (env := os.environ.get(ENV_PLUGINS)):
            only = [n.strip() for n in env.split(",") if n.strip()]
        wanted = set(only) if only is not None else None
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        missing_builtins = [
            n for n in BUILTIN_PLUGINS if n not in found and (wanted is None or n in wanted)
        ]
        if missing_builtins:
            raise PluginError(
                f"built-in plugins not installed: {', '.join(missing_builtins)} "
                "(reinstall plantguard: pip install -e .)"
            )
        if wanted is not None and (unknown := wanted - found.keys()):
            raise PluginError(
                f"{ENV_PLUGINS} names unknown plugins: {', '.join(sorted(unknown))} "
                f"(installed: {', '.join(sorted(found))})"
            )
        for name, ep in found.items():
            if wanted is not None and name not in wanted:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {name!r} ({ep.value}) failed to import: {exc}") from exc
            self.register(plugin, name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module (tests and embedding use this directly)."""
        if isinstance(plugin, str):
            plugin = importlib.import_module(plugin)
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(str(exc)) from exc

    def start(self) -> None:
        """Check every hook implementation, then run the registration hooks once."""
        if self._started:
            return
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"plugin {self.pm.get_name(exc.plugin)!r} implements an unknown hook: {exc}. "
                "Hook names are listed in plantguard.hookspecs."
            ) from exc
        self._refuse_wrappers()
        from .drivers import DriverType
        from .rules import RuleType
        from .services import ServiceType
        from .sinks import AlarmSink

        self._call_register("plantguard_register_drivers", self.drivers, DriverType)
        self._call_register("plantguard_register_rules", self.rules, RuleType)
        self._call_register("plantguard_register_services", self.services, ServiceType)
        self._call_register("plantguard_register_sinks", self.sinks, AlarmSink)
        self._register_commands()
        self._started = True

    # --- lifecycle hooks -----------------------------------------------------------

    def site_loaded(self, site: Site) -> None:
        """Call ``plantguard_site_loaded``; a plugin that raises refuses the site."""
        for impl in self._impls("plantguard_site_loaded"):
            try:
                _call(impl, site=site)
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} refused the site: {exc}") from exc

    def demo_site(self, options: DemoOptions) -> DemoSite:
        """The demo's site: the first non-None ``plantguard_demo_site`` result."""
        demo = self.pm.hook.plantguard_demo_site(options=options)
        if demo is None:
            raise PluginError(
                "no loaded plugin provides a demo site (hook plantguard_demo_site); "
                f"is {ENV_PLUGINS} leaving it out?"
            )
        if not isinstance(demo, DemoSite):
            raise PluginError(f"plantguard_demo_site returned {type(demo).__name__}, not DemoSite")
        return demo

    def shutdown(self, engine: EngineView) -> None:
        """Call every ``plantguard_shutdown`` implementation, each even if another raised;
        failures are logged with the plugin's name."""
        for impl in self._impls("plantguard_shutdown"):
            try:
                _call(impl, engine=engine)
            except Exception:
                log.exception("plugin %r: plantguard_shutdown failed", impl.plugin_name)

    # --- registration --------------------------------------------------------------

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """Implementations of a hook in pluggy's calling order (last registered first,
        ``tryfirst``/``trylast`` honoured)."""
        return list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))

    def _refuse_wrappers(self) -> None:
        for hook_name in _CALLED_ONE_BY_ONE:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.wrapper or impl.hookwrapper:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: {hook_name} cannot be a wrapper "
                        "(PlantGuard calls each implementation on its own)"
                    )

    def _call_register(self, hook_name: str, registry: dict[str, Any], kind: type) -> None:
        # The register callback knows which plugin it serves: duplicate names and wrong
        # types are reported with the plugin's name.  Registration order.
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            plugin_name = impl.plugin_name

            def register(name: str, obj: object, _plugin: str = plugin_name) -> None:
                self._add(registry, kind, name, obj, _plugin)

            _call(impl, register=register)

    def _add(
        self, registry: dict[str, Any], kind: type, name: str, obj: object, plugin: str
    ) -> None:
        what = kind.__name__
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"plugin {plugin!r} registered {what} with invalid name {name!r}")
        if not isinstance(obj, kind):
            raise PluginError(
                f"plugin {plugin!r} registered {name!r} as {what}, got {type(obj).__name__}"
            )
        key = (what, name)
        if key in self._owner:
            raise PluginError(
                f"{what} {name!r} registered by both {self._owner[key]!r} and {plugin!r}"
            )
        self._owner[key] = plugin
        registry[name] = obj

    def _register_commands(self) -> None:
        for impl in self.pm.hook.plantguard_register_commands.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(
                name: str,
                help: str,
                configure: Callable[[argparse.ArgumentParser], None],
                run: CommandRun,
                _plugin: str = plugin_name,
            ) -> None:
                if not isinstance(name, str) or not _NAME.match(name):
                    raise PluginError(f"plugin {_plugin!r} registered invalid command {name!r}")
                if name in self.commands:
                    raise PluginError(
                        f"command {name!r} registered by both {self.commands[name].plugin!r} "
                        f"and {_plugin!r}"
                    )
                self.commands[name] = Command(name, help, configure, run, _plugin)

            _call(impl, register=register)

    # --- introspection -------------------------------------------------------------

    def provider(self, kind: type, name: str) -> str | None:
        """The plugin that registered ``name`` as a ``kind`` (e.g. ``AlarmSink``)."""
        return self._owner.get((kind.__name__, name))

    def describe(self) -> list[tuple[str, list[str], list[str]]]:
        """(plugin name, hooks it implements, what it registered) for ``plantguard plugins``."""
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda np_: str(np_[0])):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            provided = sorted(
                f"{kind.lower()}:{n}" for (kind, n), p in self._owner.items() if p == name
            )
            provided += sorted(
                f"command:{c.name}" for c in self.commands.values() if c.plugin == name
            )
            rows.append((str(name), hooks, provided))
        return rows


def _call(impl: pluggy.HookImpl, **kwargs: object) -> object:
    """Call one implementation with the hook arguments it declares (pluggy's rule:
    an implementation may take fewer parameters than the spec)."""
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def default_host(only: Iterable[str] | None = None) -> PluginHost:
    """A started host with the installed plugins: what the CLI uses."""
    host = PluginHost()
    host.load_entry_points(only)
    host.start()
    return host
