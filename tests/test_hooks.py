"""Every hook: documented with its exact signature, implemented by a fixture plugin,
and seen to fire at its lifecycle point with its documented parameters.

:class:`AllHooks` implements every hook of :mod:`plantguard.hookspecs` (a test
fails when a hook is added without it), registered on a real
:class:`~plantguard.host.PluginHost` and run by the real engine and CLI.  The
contract's promises are tested one by one: every ``plantguard_shutdown``
implementation runs even if one raises; a plugin may refuse the site; sinks are
fed apart from the alarm manager; commands run with the CLI's host; the demo is a
plugin's.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from plantguard import cli, hookspecs
from plantguard.cli.common import demo_site_text
from plantguard.host import PluginError, PluginHost
from plantguard.plugin import (
    AlarmDefinition,
    AlarmSink,
    AlarmState,
    CommandContext,
    DemoOptions,
    DemoSite,
    Device,
    DeviceDriver,
    DriverType,
    EngineView,
    Finding,
    Point,
    Quality,
    ReadResult,
    RegisterCommand,
    RegisterDriver,
    RegisterRule,
    RegisterService,
    RegisterSink,
    Rule,
    RuleContext,
    RuleType,
    Service,
    ServiceType,
    Site,
    Store,
    Transition,
    ValueTable,
    hookimpl,
)
from plantguard.sinks import SinkFeed
from plantguard.testing import RunningSite, free_tcp_port, wait_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"

SITE = """
id: fx
poll_groups: {default: {interval: 0.05}}
scan_interval: 0.05
store: {history: {flush_interval: 0.1}}
services: {fx_service: {}}
areas:
  - id: a
    devices:
      - id: d
        driver: fx_gauge
        points:
          - {id: x, address: {value: 5.0}, rules: {fx_high: {limit: 1.0}}}
"""
ALARM = "d.x.fx_high"


def _hooks() -> dict[str, Callable[..., object]]:
    """The hook specifications, as pluggy sees them (marked with ``@hookspec``)."""
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, f"{hookspecs.PROJECT}_spec")
    }


def _signature(function: Callable[..., object]) -> str:
    """``name(param: Type, …) -> Return`` as the source writes it."""
    signature = inspect.signature(function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"{function.__name__}({params}) -> {signature.return_annotation}"


def _first_result(function: Callable[..., object]) -> bool:
    return bool(getattr(function, f"{hookspecs.PROJECT}_spec")["firstresult"])


# --- the fixture plugin: a driver, a rule, a service, a sink, a command, and every hook ---


class _Empty(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Address(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float


class _Limit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    limit: float


class _Driver(DeviceDriver):
    def __init__(self, device: Device, values: dict[str, float]) -> None:
        self.device = device
        self.values = values
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def read(self, points: Sequence[Point]) -> ReadResult:
        values = np.array([self.values[p.id] for p in points])
        return ReadResult(values, np.zeros(len(points), dtype=np.uint8), time.time())

    async def close(self) -> None:
        self._connected = False


class _DriverType(DriverType):
    connection_model = _Empty
    address_model = _Address

    def create(
        self, device: Device, connection: BaseModel, addresses: Mapping[str, BaseModel]
    ) -> DeviceDriver:
        return _Driver(
            device, {k: a.value for k, a in addresses.items() if isinstance(a, _Address)}
        )


class _HighRule(Rule):
    def __init__(self, table: ValueTable, configs: Sequence[tuple[Point, BaseModel]]) -> None:
        self._idx = table.indices([p.id for p, _ in configs])
        self._limit = np.array([getattr(c, "limit", np.inf) for _, c in configs])
        self._active = np.zeros(len(configs), dtype=bool)
        self._defs = [
            AlarmDefinition(id=f"{p.id}.fx_high", source_id=p.id, device_id=p.device_id, rule="x")
            for p, _ in configs
        ]

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._defs

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        good = table.quality[self._idx] == Quality.GOOD
        active = np.where(good, table.values[self._idx] > self._limit, self._active)
        out = [
            Finding(self._defs[i].id, bool(active[i]), "HI" if active[i] else "", 500, "", 0, now)
            for i in np.flatnonzero(active != self._active).tolist()
        ]
        self._active = active
        return out


class _RuleType(RuleType):
    config_model = _Limit

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        return _HighRule(table, configs)


class _Service(Service):
    def __init__(self, events: list[tuple[str, object]]) -> None:
        self.events = events

    async def start(self, engine: EngineView) -> None:
        self.events.append(("service.start", engine))

    async def stop(self) -> None:
        self.events.append(("service.stop", None))


class _ServiceType(ServiceType):
    options_model = _Empty

    def __init__(self, events: list[tuple[str, object]]) -> None:
        self.events = events

    def create(self, options: BaseModel) -> Service:
        return _Service(self.events)


class _ListSink(AlarmSink):
    def __init__(self, events: list[tuple[str, object]] | None = None) -> None:
        self.events = events if events is not None else []
        self.got: list[tuple[str, str]] = []

    async def deliver(self, transition: Transition) -> None:
        self.got.append((transition.alarm_id, transition.action))
        self.events.append(("sink", transition))


class AllHooks:
    """Implements every hook; records each call with the arguments it received."""

    REGISTRATION: ClassVar = (
        "plantguard_register_drivers",
        "plantguard_register_rules",
        "plantguard_register_services",
        "plantguard_register_sinks",
        "plantguard_register_commands",
    )

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.sink = _ListSink(self.events)
        self.seeded: list[tuple[Store, Site]] = []
        self.shutdown_saw: dict[str, object] = {}
        self.command_context: CommandContext | None = None

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    @hookimpl
    def plantguard_register_drivers(self, register: RegisterDriver) -> None:
        self.events.append(("plantguard_register_drivers", register))
        register("fx_gauge", _DriverType())

    @hookimpl
    def plantguard_register_rules(self, register: RegisterRule) -> None:
        self.events.append(("plantguard_register_rules", register))
        register("fx_high", _RuleType())

    @hookimpl
    def plantguard_register_services(self, register: RegisterService) -> None:
        self.events.append(("plantguard_register_services", register))
        register("fx_service", _ServiceType(self.events))

    @hookimpl
    def plantguard_register_sinks(self, register: RegisterSink) -> None:
        self.events.append(("plantguard_register_sinks", register))
        register("fx_sink", self.sink)

    @hookimpl
    def plantguard_register_commands(self, register: RegisterCommand) -> None:
        self.events.append(("plantguard_register_commands", register))
        register("fx_command", "load a site with the CLI's host", self._configure, self._run)

    @hookimpl
    def plantguard_site_loaded(self, site: Site) -> None:
        self.events.append(("plantguard_site_loaded", site))

    @hookimpl
    def plantguard_demo_site(self, options: DemoOptions) -> DemoSite | None:
        self.events.append(("plantguard_demo_site", options))
        return DemoSite(text=SITE, seed=self._seed)

    @hookimpl
    def plantguard_shutdown(self, engine: EngineView) -> None:
        self.events.append(("plantguard_shutdown", engine))
        assert engine.store is not None
        self.shutdown_saw = {
            "history": engine.store.trend("d.x").value.tolist(),
            "sink": list(self.sink.got),
        }

    def _seed(self, store: Store, site: Site) -> None:
        self.seeded.append((store, site))

    @staticmethod
    def _configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("site", type=Path)

    def _run(self, args: argparse.Namespace, context: CommandContext) -> int:
        self.command_context = context
        loaded = context.load_site(args.site)
        self.events.append(("command", loaded))
        return 0


# --- the documentation ------------------------------------------------------------------


def test_the_fixture_plugin_implements_every_hook() -> None:
    implemented = {name for name in vars(AllHooks) if name.startswith("plantguard_")}
    assert implemented == set(_hooks())


@pytest.mark.parametrize("name", sorted(_hooks()))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    function = _hooks()[name]
    heading = f"#### `{_signature(function)}`"
    assert heading in doc, f"docs/plugins.md has no section {heading!r}"
    section = doc.split(heading, 1)[1].split("\n#", 1)[0]
    first = "the first non-None result wins" in " ".join(section.split())
    assert first == _first_result(function), f"{name}: say whether the first result wins"
    spec_doc = " ".join((function.__doc__ or "").split())
    assert ("first non-None result wins" in spec_doc) == _first_result(function)
    assert ":param" in spec_doc or not inspect.signature(function).parameters
    assert ":return:" in spec_doc


def test_the_doc_lists_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^#### `(plantguard_\w+)\(", DOC.read_text(), re.MULTILINE))
    assert documented == set(_hooks())


# --- the lifecycle, through the engine --------------------------------------------------


async def test_every_hook_fires_at_its_lifecycle_point(
    plantguard_host: PluginHost, running_site: RunningSite
) -> None:
    plugin = AllHooks()
    plantguard_host.register(plugin, "fixture")

    @hookimpl
    def plantguard_shutdown(engine: EngineView) -> None:
        raise RuntimeError("this plugin fails to shut down")

    # Registered last, so pluggy's order calls it first: the others must still run.
    plantguard_host.register(type("Failing", (), {"plantguard_shutdown": plantguard_shutdown}))

    plantguard_host.start()
    assert plugin.names() == list(AllHooks.REGISTRATION)
    assert all(callable(register) for _, register in plugin.events)
    assert plantguard_host.provider(AlarmSink, "fx_sink") == "fixture"
    assert "fx_command" in plantguard_host.commands

    async with running_site(SITE) as engine:
        [(_, site)] = [e for e in plugin.events if e[0] == "plantguard_site_loaded"]
        assert isinstance(site, Site)
        assert site is engine.site
        [(_, view)] = [e for e in plugin.events if e[0] == "service.start"]
        assert view is engine
        await wait_for(lambda: engine.alarms.status[ALARM].state is AlarmState.UNACK)
        await wait_for(lambda: plugin.sink.got == [(ALARM, "activate")])
        await engine.alarms.acknowledge(ALARM, user="op1", comment="seen")
        driver = engine.drivers["d"]
        assert isinstance(driver, _Driver)
        driver.values["d.x"] = 0.0
        await wait_for(lambda: engine.alarms.status[ALARM].state is AlarmState.NORMAL)
        await wait_for(lambda: len(plugin.sink.got) == 3)

    lifecycle = [n for n in plugin.names() if n not in AllHooks.REGISTRATION]
    assert lifecycle == [
        "plantguard_site_loaded",
        "service.start",
        "sink",
        "sink",
        "sink",
        "service.stop",
        "plantguard_shutdown",
    ]
    assert plugin.events[-1][1] is engine
    # At shutdown, history was flushed and the sink had every transition.
    assert plugin.shutdown_saw["history"] == [5.0, 0.0]
    assert plugin.shutdown_saw["sink"] == [
        (ALARM, "activate"),
        (ALARM, "acknowledge"),
        (ALARM, "clear"),
    ]


def test_shutdown_calls_every_implementation_even_if_one_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    called: list[str] = []

    def plugin(name: str, fail: bool) -> object:
        @hookimpl
        def plantguard_shutdown(engine: EngineView) -> None:
            called.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")

        return type(name, (), {"plantguard_shutdown": staticmethod(plantguard_shutdown)})

    host = PluginHost()
    for name, fail in [("first", True), ("second", False), ("third", True)]:
        host.register(plugin(name, fail), name)
    host.start()
    engine = object()
    with caplog.at_level(logging.ERROR, logger="plantguard.host"):
        host.shutdown(engine)  # type: ignore[arg-type]
    assert sorted(called) == ["first", "second", "third"]
    failures = [r.getMessage() for r in caplog.records]
    assert failures == [
        "plugin 'third': plantguard_shutdown failed",
        "plugin 'first': plantguard_shutdown failed",
    ]


def test_implementations_may_take_fewer_parameters() -> None:
    calls: list[str] = []

    @hookimpl
    def plantguard_shutdown() -> None:
        calls.append("shutdown")

    @hookimpl
    def plantguard_register_rules() -> None:
        calls.append("rules")

    host = PluginHost()
    host.register(
        type(
            "Lazy",
            (),
            {
                "plantguard_shutdown": staticmethod(plantguard_shutdown),
                "plantguard_register_rules": staticmethod(plantguard_register_rules),
            },
        ),
        "lazy",
    )
    host.start()
    host.shutdown(object())  # type: ignore[arg-type]
    assert calls == ["rules", "shutdown"]


def test_hook_wrappers_are_refused() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def plantguard_shutdown(self, engine: EngineView) -> object:
            return (yield)

    host = PluginHost()
    host.register(Wrapper(), "wrap")
    with pytest.raises(PluginError, match="'wrap': plantguard_shutdown cannot be a wrapper"):
        host.start()


# --- site_loaded may refuse the site ----------------------------------------------------


class _Picky:
    @hookimpl
    def plantguard_site_loaded(self, site: Site) -> None:
        raise ValueError(f"site {site.id!r} has no tank")


def test_a_plugin_refuses_the_site_and_the_gateway_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = PluginHost()
    host.register(AllHooks(), "fixture")
    host.register(_Picky(), "picky")
    host.start()
    monkeypatch.setattr(cli, "default_host", lambda: host)
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    db = tmp_path / "run.db"
    assert cli.main(["run", str(site), "--db", str(db), "--duration", "5", "--quiet"]) == 2
    assert "plantguard: plugin 'picky' refused the site: site 'fx' has no tank" in (
        capsys.readouterr().err
    )


# --- commands run with the CLI's host ---------------------------------------------------


def test_plugin_commands_get_the_cli_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = AllHooks()
    host = PluginHost()
    host.register(plugin, "fixture")
    host.start()
    monkeypatch.setattr(cli, "default_host", lambda: host)
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    assert cli.main(["fx_command", str(site)]) == 0
    context = plugin.command_context
    assert isinstance(context, CommandContext)
    assert context.host is host
    [(_, loaded)] = [e for e in plugin.events if e[0] == "command"]
    assert loaded.site.id == "fx"  # type: ignore[attr-defined]


# --- the demo is a plugin's -------------------------------------------------------------


def test_the_demo_site_comes_from_the_first_plugin_that_gives_one(
    plantguard_host: PluginHost,
) -> None:
    options = DemoOptions(opcua_port=4841, modbus_port=5021, db="demo.db", scenario="none")
    builtin = plantguard_host.demo_site(options).text  # the simulator plugin's
    assert "driver: modbus" in builtin

    plugin = AllHooks()
    plantguard_host.register(plugin, "fixture")  # registered last: asked first
    demo = plantguard_host.demo_site(options)
    assert plugin.events == [("plantguard_demo_site", options)]
    assert "driver: fx_gauge" in demo.text
    assert demo_site_text(host=plantguard_host, **_fields(options)) == demo.text

    class Declines:
        @hookimpl
        def plantguard_demo_site(self, options: DemoOptions) -> DemoSite | None:
            return None

    plantguard_host.register(Declines(), "declines")  # asked first, passes it on
    assert plantguard_host.demo_site(options).text == demo.text

    nobody = PluginHost()
    nobody.register(Declines(), "declines")
    with pytest.raises(PluginError, match="no loaded plugin provides a demo site"):
        nobody.demo_site(options)


def _fields(options: DemoOptions) -> dict[str, Any]:
    return {
        "opcua_port": options.opcua_port,
        "modbus_port": options.modbus_port,
        "db": options.db,
        "scenario": options.scenario,
    }


def test_plantguard_demo_runs_the_plugin_demo_and_seeds_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = AllHooks()
    host = PluginHost()
    host.register(plugin, "fixture")
    host.start()
    monkeypatch.setattr(cli, "default_host", lambda: host)
    db = tmp_path / "demo.db"
    ports = ["--opcua-port", str(free_tcp_port()), "--modbus-port", str(free_tcp_port())]
    argv = ["demo", *ports, "--db", str(db), "--duration", "0.5", "--quiet", "--scenario", "none"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    [(_, options)] = [e for e in plugin.events if e[0] == "plantguard_demo_site"]
    assert isinstance(options, DemoOptions)
    assert (options.db, options.scenario) == (str(db), "none")
    [(store, site)] = plugin.seeded
    assert isinstance(store, Store)
    assert site.id == "fx"
    assert plugin.names()[-1] == "plantguard_shutdown"


# --- sinks are fed apart from the alarm manager ----------------------------------------


class _GateSink(_ListSink):
    """Holds every delivery until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def deliver(self, transition: Transition) -> None:
        await self.gate.wait()
        await super().deliver(transition)


class _FailingSink(AlarmSink):
    async def deliver(self, transition: Transition) -> None:
        raise RuntimeError("the pager is down")


async def test_a_slow_or_failing_sink_holds_up_nothing(
    plantguard_host: PluginHost, running_site: RunningSite, caplog: pytest.LogCaptureFixture
) -> None:
    slow, fast = _GateSink(), _ListSink()

    class Sinks:
        @hookimpl
        def plantguard_register_sinks(self, register: RegisterSink) -> None:
            register("slow", slow)
            register("boom", _FailingSink())
            register("fast", fast)

    plantguard_host.register(AllHooks(), "fixture")
    plantguard_host.register(Sinks(), "sinks")
    async with running_site(SITE) as engine:
        await wait_for(lambda: engine.alarms.status[ALARM].state is AlarmState.UNACK)
        await wait_for(lambda: fast.got == [(ALARM, "activate")])
        # The operator's action completes although one sink has not taken the activation.
        await asyncio.wait_for(engine.alarms.acknowledge(ALARM, user="op1"), 1.0)
        await wait_for(lambda: fast.got[-1] == (ALARM, "acknowledge"))
        assert slow.got == []
        slow.gate.set()
    # Everything queued reached the slow sink before the engine stopped, in order.
    assert slow.got == fast.got == [(ALARM, "activate"), (ALARM, "acknowledge")]
    failures = [r.getMessage() for r in caplog.records if r.name == "plantguard.sinks"]
    assert failures
    assert failures[0].startswith(f"alarm sink 'boom' (plugin 'sinks') failed on {ALARM}")


async def test_a_sink_that_falls_too_far_behind_loses_new_transitions_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class SmallFeed(SinkFeed):
        capacity = 2

    sink = _ListSink()
    feed = SmallFeed("small", sink, "mine")
    transitions = [
        Transition(
            f"a{i}", float(i), "activate", AlarmState.NORMAL, AlarmState.UNACK, "HI", 1, 0, ""
        )
        for i in range(5)
    ]
    await feed(transitions)
    assert feed.dropped == 3
    assert "alarm sink 'small' (plugin 'mine') is 2 transitions behind" in caplog.text
    feed.start()
    await feed.stop()
    assert sink.got == [("a0", "activate"), ("a1", "activate")]
