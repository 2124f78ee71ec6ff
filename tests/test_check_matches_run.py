"""``plantguard check`` refuses what ``plantguard run`` would refuse at start-up, in the same words.

Every way a site can stop the gateway before its first poll is listed in
:data:`CASES` with a site snippet: errors of the site file's schemas (found when
it is loaded), settings a plugin refuses when the engine is built (a forecast
naming a limit its point does not set, an advisory file that is missing, …), and
the store's address.  For each, ``check`` exits with status 2 and names the file,
the line and the field; ``run`` exits with status 2 and shows the same lines,
without a traceback.  Both run in-process (``run`` stops at the issue, before it
polls); one case goes through the real ``plantguard run`` process.

What only opening finds — a port in use, a database server that is down — passes
``check`` and stops ``run`` with the issue's place and no traceback
(:data:`RUN_ONLY`); settings that work but cannot do everything yet (an untrained
multivariate model) are warnings, printed by ``check`` and logged by ``run``
(:data:`WARNINGS`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from plantguard import cli
from plantguard.build import build_engine_parts
from plantguard.config import ConfigError, load_site
from plantguard.engine import Engine
from plantguard.host import PluginHost
from plantguard.plugin import (
    AlarmDefinition,
    Device,
    DeviceDriver,
    DriverType,
    EngineView,
    Finding,
    Point,
    ReadResult,
    RegisterDriver,
    RegisterRule,
    RegisterService,
    Rule,
    RuleContext,
    RuleType,
    Service,
    ServiceType,
    SettingError,
    Site,
    ValueTable,
    hookimpl,
)
from plantguard.store import Store
from plantguard.testing import free_tcp_port

#: A valid site; each case edits it.  ``STORE`` is the store's file under the test's
#: directory, ``PORT`` a port nothing listens on (no case gets as far as connecting).
BASE = """\
id: t
store: {url: STORE}
areas:
  - id: a
    devices:
      - id: d
        driver: modbus
        connection: {host: 127.0.0.1, port: PORT}
        points:
          - id: level
            range: [0, 100]
            address: {register: 0, type: float32}
            rules:
              limit: {h: 80, hh: 90}
          - id: temp
            address: {register: 2, type: float32}
"""


@dataclass(frozen=True)
class Case:
    """A site snippet and the issue it must give: ``file:line: field: message``.

    ``edits`` replace text of :data:`BASE` (each once), ``tail`` is appended (site-
    level ``rules:``, ``services:``), ``files`` are written next to the site file.
    The expected line is the first line holding ``marker``; ``field`` and
    ``message`` (a substring) are the rest of the issue.
    """

    id: str
    marker: str
    field: str
    message: str
    edits: Sequence[tuple[str, str]] = ()
    tail: str = ""
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def write(self, directory: Path) -> Path:
        text = BASE
        for old, new in self.edits:
            assert old in text, f"{self.id}: {old!r} is not in the base site"
            text = text.replace(old, new, 1)
        text += self.tail
        text = text.replace("STORE", str(directory / "site.db"))
        text = text.replace("PORT", str(free_tcp_port()))
        for name, content in self.files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(content, encoding="utf-8")
        site = directory / "site.yaml"
        site.write_text(text, encoding="utf-8")
        return site

    def expected(self, site: Path) -> str:
        """The issue's text up to the message."""
        lines = site.read_text(encoding="utf-8").splitlines()
        line = next(i for i, text in enumerate(lines, 1) if self.marker in text)
        return f"{site}:{line}: {self.field}: " if self.field else f"{site}:{line}: "


POINT0 = "areas[0].devices[0].points[0]"
POINT1 = "areas[0].devices[0].points[1]"

#: Start-up errors found when the site file is loaded (the schemas of the core and
#: of the plugins): ``check`` has always found these; listed to keep them found.
LOAD_CASES = [
    Case(
        "unknown driver",
        "modbuss",
        "areas[0].devices[0].driver",
        "unknown driver 'modbuss' (known: ",
        edits=[("driver: modbus", "driver: modbuss")],
    ),
    Case(
        "bad connection",
        "connection:",
        "areas[0].devices[0].connection",
        "transport tcp needs host",
        edits=[("{host: 127.0.0.1, port", "{port")],
    ),
    Case(
        "bad connection value",
        "connection:",
        "areas[0].devices[0].connection.unit",
        "Input should be less than or equal to 255",
        edits=[("port: PORT}", "port: PORT, unit: 300}")],
    ),
    Case(
        "bad point address",
        "register: -1",
        f"{POINT0}.address.register",
        "Input should be greater than or equal to 0",
        edits=[("register: 0,", "register: -1,")],
    ),
    Case(
        "overlapping registers",
        "- id: d",
        "areas[0].devices[0]",
        "points 'd.level' and 'd.temp' both use holding register 1",
        edits=[("register: 2,", "register: 1,")],
    ),
    Case(
        "duplicate point ids",
        "- id: d",
        "areas[0].devices[0]",
        "point id 'd.level' is used twice",
        edits=[("- id: temp", "- id: level")],
    ),
    Case(
        "duplicate device ids",
        "id: t",
        "",
        "device id 'd' is used in areas 'a' and 'b'",
        tail="""\
  - id: b
    devices:
      - {id: d, driver: modbus, connection: {host: 127.0.0.1}}
""",
    ),
    Case(
        "unknown poll group",
        "poll_group: slow",
        "areas[0].devices[0].poll_group",
        "unknown poll group 'slow' (defined: default)",
        edits=[("driver: modbus", "driver: modbus\n        poll_group: slow")],
    ),
    Case(
        "unknown rule",
        "limt:",
        f"{POINT0}.rules.limt",
        "unknown rule 'limt' (known: ",
        edits=[("limit: {h: 80", "limt: {h: 80")],
    ),
    Case(
        "bad rule settings",
        "limit: {h: 95",
        f"{POINT0}.rules.limit",
        "limit h=95.0 must be below hh=90.0",
        edits=[("limit: {h: 80", "limit: {h: 95")],
    ),
    Case(
        "site-level rule without site settings",
        "  limit: {}",
        "rules.limit",
        "rule 'limit' has no site-level settings",
        tail="rules:\n  limit: {}\n",
    ),
    Case(
        "unknown service",
        "opcuaa:",
        "services.opcuaa",
        "unknown service 'opcuaa' (known: ",
        tail="services:\n  opcuaa: {}\n",
    ),
    Case(
        "bad service option",
        "port: 70000",
        "services.opcua.port",
        "Input should be less than or equal to 65535",
        tail="services:\n  opcua: {port: 70000}\n",
    ),
]

#: Start-up errors found when the engine is built: before this, ``check`` passed
#: these and ``run`` stopped with a traceback.
BUILD_CASES = [
    Case(
        "forecast naming a limit its point does not set",
        "forecast:",
        f"{POINT0}.rules.forecast.limit",
        "rule 'forecast' names limit 'll', which the point's 'limit' rule does not set",
        edits=[
            (
                "limit: {h: 80, hh: 90}",
                "limit: {h: 80, hh: 90}\n              forecast: {limit: ll}",
            )
        ],
    ),
    Case(
        "forecast of a point with no limit rule",
        "forecast: {limit: hh}",
        f"{POINT1}.rules.forecast.limit",
        "rule 'forecast' names limit 'hh'",
        edits=[
            (
                "register: 2, type: float32}",
                "register: 2, type: float32}\n            rules: {forecast: {limit: hh}}",
            )
        ],
    ),
    Case(
        "missing advisory file",
        "file: advisories.yaml",
        "rules.firmware_advisory.file",
        "advisories.yaml: cannot read: No such file or directory",
        tail="rules:\n  firmware_advisory:\n    file: advisories.yaml\n",
    ),
    Case(
        "invalid advisory file",
        "file: advisories.yaml",
        "rules.firmware_advisory.file",
        "advisories.0.affected",
        tail="rules:\n  firmware_advisory:\n    file: advisories.yaml\n",
        files={"advisories.yaml": "advisories:\n  - {id: A-1, title: t, affected: ['<<1']}\n"},
    ),
    Case(
        "advisory file that is not YAML",
        "file: advisories.yaml",
        "rules.firmware_advisory.file",
        "advisories.yaml:2: YAML: expected the node content, but found '<stream end>'",
        tail="rules:\n  firmware_advisory:\n    file: advisories.yaml\n",
        files={"advisories.yaml": "advisories: [\n"},
    ),
    Case(
        "range rule without a range",
        "range: {margin",
        f"{POINT1}.rules.range",
        "rule 'range' needs the point's range or both low and high",
        edits=[
            (
                "register: 2, type: float32}",
                "register: 2, type: float32}\n            rules: {range: {margin: 0.1}}",
            )
        ],
    ),
    Case(
        "range rule below the point's range",
        "range: {high: -5}",
        f"{POINT0}.rules.range.high",
        "rule 'range' low 0.0 must be below high -5.0",
        edits=[("limit: {h: 80, hh: 90}", "range: {high: -5}")],
    ),
    Case(
        "multivariate group with no points",
        "ghost:",
        "rules.multivariate.groups.ghost",
        "multivariate group 'ghost' has no points",
        tail="rules:\n  multivariate:\n    groups:\n      ghost: {priority: high}\n",
    ),
    Case(
        "site-wide rule configured on a point",
        "failed_logins:",
        f"{POINT0}.rules.failed_logins",
        "a site-wide rule: configure it under the site's top-level rules:, not on a point",
        edits=[("limit: {h: 80, hh: 90}", "failed_logins: {}")],
    ),
    Case(
        "maintenance configured on a point",
        "maintenance:",
        f"{POINT0}.rules.maintenance",
        "maintenance plans are imported with `plantguard maintenance import`",
        edits=[("limit: {h: 80, hh: 90}", "maintenance: {}")],
    ),
    Case(
        "OPC UA pki_dir that cannot be a directory",
        "pki_dir:",
        "services.opcua.pki_dir",
        "cannot be a directory",
        tail="services:\n  opcua: {port: 0, pki_dir: STORE-file/pki}\n",
        files={"site.db-file": "a file, not a directory\n"},
    ),
]

#: The store's address: checked without opening the store (``run`` checks it
#: before it opens the store).
STORE_CASES = [
    Case(
        "unknown database",
        "store:",
        "store.url",
        "unknown database 'foo'",
        edits=[("url: STORE", "url: 'foo://db'")],
    ),
    Case(
        "database driver not installed",
        "store:",
        "store.url",
        "the database driver for 'mysql' is not installed",
        edits=[("url: STORE", "url: 'mysql://u@host/db'")],
    ),
    Case(
        "not a database URL",
        "store:",
        "store.url",
        "not a database URL",
        edits=[("url: STORE", "url: 'postgresql://u@host:port/db'")],
    ),
    Case(
        "SQLite file in a missing directory",
        "store:",
        "store.url",
        "does not exist (for the database file site.db)",
        edits=[("url: STORE", "url: STORE/nowhere/site.db")],
    ),
    Case(
        "SQLite store that is a directory",
        "store:",
        "store.url",
        "is a directory, not a database file",
        edits=[("url: STORE", "url: STORE-dir")],
        files={"site.db-dir/keep": ""},
    ),
    Case(
        "SQLite store that is not a database",
        "store:",
        "store.url",
        "is not a SQLite database",
        edits=[("url: STORE", "url: STORE.txt")],
        files={"site.db.txt": "not a database\n"},
    ),
]


# --- a third-party plugin: what the engine makes of exceptions it did not foresee -----------


class _Threshold(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = 0.0


class _NoAlarms(Rule):
    def alarms(self) -> Sequence[AlarmDefinition]:
        return []

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        return []


class _PickyRuleType(RuleType):
    """Refuses a negative threshold with a plain ValueError that names no point."""

    config_model = _Threshold

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        for _, cfg in configs:
            if isinstance(cfg, _Threshold) and cfg.threshold < 0:
                raise ValueError(f"threshold {cfg.threshold} is below zero")
        return _NoAlarms()


class _BrokenRuleType(RuleType):
    config_model = _Threshold

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        raise KeyError("nothing")  # a plugin bug


class _Gauge(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gauge: str = "g1"


class _GaugeDriver(DeviceDriver):
    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    def connected(self) -> bool:
        return False

    async def connect(self) -> None:
        raise AssertionError("check never connects")

    async def read(self, points: Sequence[Point]) -> ReadResult:
        raise AssertionError("never read")

    async def close(self) -> None:
        return None


class _GaugeDriverType(DriverType):
    connection_model = _Gauge
    address_model = _Gauge

    def create(
        self, device: Device, connection: BaseModel, addresses: Mapping[str, BaseModel]
    ) -> DeviceDriver:
        for point_id, address in addresses.items():
            if isinstance(address, _Gauge) and address.gauge == "g9":
                raise SettingError(
                    "this gateway has no gauge g9", point=point_id, field=("address", "gauge")
                )
        return _GaugeDriver(device)


class _SocketService(Service):
    async def start(self, engine: EngineView) -> None:
        raise AssertionError("check never starts a service")

    async def stop(self) -> None:
        return None


class _SocketOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = "/run/plantguard.sock"


class _SocketServiceType(ServiceType):
    options_model = _SocketOptions

    def create(self, options: BaseModel) -> Service:
        assert isinstance(options, _SocketOptions)
        if not Path(options.path).parent.is_dir():
            raise OSError(f"no directory for the socket {options.path}")
        return _SocketService()


class ThirdParty:
    @hookimpl
    def plantguard_register_rules(self, register: RegisterRule) -> None:
        register("picky", _PickyRuleType())
        register("broken", _BrokenRuleType())

    @hookimpl
    def plantguard_register_drivers(self, register: RegisterDriver) -> None:
        register("gauge", _GaugeDriverType())

    @hookimpl
    def plantguard_register_services(self, register: RegisterService) -> None:
        register("socket", _SocketServiceType())


class Refuses:
    @hookimpl
    def plantguard_site_loaded(self, site: Site) -> None:
        if site.id == "refused":
            raise ValueError("this plugin serves site 'plant' only")


_GAUGE_DEVICE = """\
      - id: g
        driver: gauge
        points:
          - {id: one, address: {gauge: g1}, rules: {picky: {threshold: 1}}}
          - {id: two, address: {gauge: g9}, rules: {picky: {threshold: -1}}}
"""
_G_POINT1 = "areas[0].devices[1].points[1]"

PLUGIN_CASES = [
    Case(
        "third-party rule refusing one point's settings (plain ValueError)",
        "threshold: -1",
        f"{_G_POINT1}.rules.picky",
        "threshold -1.0 is below zero",
        tail=_GAUGE_DEVICE.replace("{gauge: g9}", "{gauge: g1}"),
    ),
    Case(
        "third-party rule failing (a plugin bug)",
        "broken:",
        f"{POINT0}.rules.broken",
        "RuleType 'broken' of plugin 'thirdparty' failed: KeyError: 'nothing'",
        edits=[("limit: {h: 80, hh: 90}", "broken: {}")],
    ),
    Case(
        "third-party driver refusing a point's address (SettingError)",
        "gauge: g9",
        f"{_G_POINT1}.address.gauge",
        "this gateway has no gauge g9",
        tail=_GAUGE_DEVICE.replace("threshold: -1", "threshold: 2"),
    ),
    Case(
        "third-party service refusing its options (OSError)",
        "socket:",
        "services.socket",
        "no directory for the socket /nowhere/at/all.sock",
        tail="services:\n  socket: {path: /nowhere/at/all.sock}\n",
    ),
]

CASES = LOAD_CASES + BUILD_CASES + STORE_CASES + PLUGIN_CASES


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """The installed plugins and the third-party ones above, as the CLI's host."""
    h = PluginHost()
    h.load_entry_points()
    h.register(ThirdParty(), "thirdparty")
    h.register(Refuses(), "refuses")
    h.start()
    monkeypatch.setattr(cli, "default_host", lambda: h)
    return h


def _issues(err: str) -> list[str]:
    """The issue lines after ``plantguard: invalid configuration:``."""
    lines = err.splitlines()
    assert "plantguard: invalid configuration:" in lines, err
    return lines[lines.index("plantguard: invalid configuration:") + 1 :]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_check_and_run_refuse_it_in_the_same_words(
    case: Case,
    host: PluginHost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = case.write(tmp_path)
    assert cli.main(["--log-level", "error", "check", str(site)]) == 2
    checked = _issues(capsys.readouterr().err)
    expected = case.expected(site)
    assert any(line.startswith(expected) and case.message in line for line in checked), (
        f"expected {expected}…{case.message}… in:\n" + "\n".join(checked)
    )

    status = cli.main(["--log-level", "error", "run", str(site), "--duration", "0.2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert _issues(err) == checked


def test_one_case_through_the_real_run_command(tmp_path: Path) -> None:
    """The forecast and the advisory file of a new user, through ``plantguard run``."""
    case = Case(
        "forecast and advisory",
        "forecast:",
        f"{POINT0}.rules.forecast.limit",
        "names limit 'll'",
        edits=[
            (
                "limit: {h: 80, hh: 90}",
                "limit: {h: 80, hh: 90}\n              forecast: {limit: ll}",
            )
        ],
        tail="rules:\n  firmware_advisory: {file: advisories.yaml}\n",
    )
    site = case.write(tmp_path)

    def plantguard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plantguard", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            check=False,
        )

    check = plantguard("check", "site.yaml")
    run = plantguard("run", "site.yaml", "--duration", "1", "--quiet")
    assert (check.returncode, run.returncode) == (2, 2), run.stderr
    assert "Traceback" not in run.stderr
    lines = site.read_text(encoding="utf-8").splitlines()
    advisory = next(i for i, t in enumerate(lines, 1) if "firmware_advisory" in t)
    forecast = next(i for i, t in enumerate(lines, 1) if "forecast:" in t)
    assert _issues(check.stderr) == [
        f"site.yaml:{forecast}: {POINT0}.rules.forecast.limit: rule 'forecast' names limit "
        "'ll', which the point's 'limit' rule does not set (set limit.ll, or give the limit "
        "as a number)",
        f"site.yaml:{advisory}: rules.firmware_advisory.file: advisories.yaml: cannot read: "
        "No such file or directory",
    ]
    assert _issues(run.stderr) == _issues(check.stderr)


def test_a_plugin_refusing_the_site_is_found_by_check(
    host: PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Case("refused", "", "", "", edits=[("id: t", "id: refused")]).write(tmp_path)
    message = "plantguard: plugin 'refuses' refused the site: this plugin serves site 'plant' only"
    assert cli.main(["check", str(site)]) == 2
    assert message in capsys.readouterr().err
    assert cli.main(["run", str(site), "--duration", "0.2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_check_reports_every_issue_at_once(
    host: PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Build issues of rules, drivers and services, and the store's, in file order."""
    site = Case(
        "all",
        "",
        "",
        "",
        edits=[
            ("url: STORE", "url: 'foo://db'"),
            ("limit: {h: 80, hh: 90}", "forecast: {limit: hh}"),
        ],
        tail=_GAUGE_DEVICE
        + "rules:\n  firmware_advisory: {file: nope.yaml}\n"
        + "services:\n  socket: {path: /nowhere/x.sock}\n",
    ).write(tmp_path)
    assert cli.main(["check", str(site)]) == 2
    fields = [line.split(": ")[1] for line in _issues(capsys.readouterr().err)]
    assert fields == [
        "store.url",
        f"{POINT0}.rules.forecast.limit",
        f"{_G_POINT1}.rules.picky",  # the same line: rules are built before drivers
        f"{_G_POINT1}.address.gauge",
        "rules.firmware_advisory.file",
        "services.socket",
    ]


def test_check_opens_nothing(host: PluginHost, tmp_path: Path) -> None:
    """No store file, no connection, no service start: the third-party driver and
    service above fail the test if they are connected or started."""
    site = Case(
        "valid",
        "",
        "",
        "",
        tail=_GAUGE_DEVICE.replace("threshold: -1", "threshold: 2").replace("g9", "g2")
        + "services:\n  socket: {path: /tmp/x.sock}\n"
        + f"  opcua: {{port: 0, pki_dir: {tmp_path / 'pki'}}}\n",
    ).write(tmp_path)
    loaded = load_site(site, host)
    assert cli.main(["check", str(site)]) == 0
    assert not (tmp_path / "site.db").exists()
    assert not (tmp_path / "pki").exists()
    parts = build_engine_parts(loaded, host)
    assert set(parts.drivers) == {"d", "g"}
    assert not any(d.connected for d in parts.drivers.values())
    assert list(parts.services) == ["opcua", "socket"]  # start order


# --- what only opening finds: check passes, run stops without a traceback ------------------


def test_a_port_in_use_stops_run_at_the_service(
    host: PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = Case(
            "port in use", "", "", "", tail=f"services:\n  sim: {{port: {port}, scenario: none}}\n"
        ).write(tmp_path)
        assert cli.main(["--log-level", "error", "check", str(site)]) == 0
        capsys.readouterr()
        status = cli.main(["--log-level", "error", "run", str(site), "--duration", "5", "--quiet"])
    err = capsys.readouterr().err
    assert status == 4, err  # network or port (plantguard.errors)
    assert "Traceback" not in err
    assert err == (
        f"plantguard: the plant simulator (Modbus TCP) cannot listen on 127.0.0.1:{port}: the port "
        "is in use; stop what holds it, or choose another port "
        "(services.sim.port; --modbus-port for the demo)\n"
    )


def test_a_database_server_that_is_down_stops_run_without_a_traceback(
    host: PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://plantguard:secret@127.0.0.1:{free_tcp_port()}/plantguard"
    site = Case("down", "", "", "", edits=[("url: STORE", f"url: '{url}'")]).write(tmp_path)
    assert cli.main(["--log-level", "error", "check", str(site)]) == 0
    capsys.readouterr()
    status = cli.main(["--log-level", "error", "run", str(site), "--duration", "0.2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 3, err  # the store (plantguard.errors)
    assert "Traceback" not in err
    assert "plantguard: cannot open the store postgresql+psycopg://plantguard:***@127.0.0.1" in err
    assert "secret" not in err


def test_check_checks_the_db_that_run_would_use(
    host: PluginHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Case("db", "", "", "").write(tmp_path)
    assert cli.main(["check", str(site), "--db", "foo://x"]) == 2
    assert _issues(capsys.readouterr().err) == [
        "--db: unknown database 'foo' in 'foo://x' "
        "(a SQLite file path, or postgresql://user@host/database)"
    ]
    assert cli.main(["run", str(site), "--db", "foo://x", "--duration", "0.2"]) == 2
    assert "--db: unknown database 'foo'" in capsys.readouterr().err


# --- warnings: settings that work but cannot do everything yet -----------------------------

_GROUP = """\
rules:
  multivariate:
    groups:
      reactor: {priority: high}
"""


@dataclass(frozen=True)
class Warned:
    id: str
    case: Case
    message: str


WARNINGS = [
    Warned(
        "multivariate model not trained yet",
        Case(
            "missing model",
            "reactor:",
            "rules.multivariate.groups.reactor.model",
            "",
            edits=[
                ("limit: {h: 80, hh: 90}", "multivariate: {group: reactor}"),
                (
                    "register: 2, type: float32}\n",
                    "register: 2, type: float32}\n            rules: {multivariate: {group: reactor}}\n",
                ),
            ],
            tail=_GROUP,
        ),
        "multivariate group reactor: no model at ",
    ),
    Warned(
        "multivariate model that cannot be read",
        Case(
            "invalid model",
            "reactor:",
            "rules.multivariate.groups.reactor.model",
            "",
            edits=[
                ("limit: {h: 80, hh: 90}", "multivariate: {group: reactor}"),
                (
                    "register: 2, type: float32}\n",
                    "register: 2, type: float32}\n            rules: {multivariate: {group: reactor}}\n",
                ),
            ],
            tail=_GROUP,
            files={"models/multivariate-reactor.json": json.dumps({"format": "other"})},
        ),
        "multivariate group reactor: model ",
    ),
    Warned(
        "multivariate group of points only, model not trained",
        Case(
            "points only",
            "multivariate: {group: reactor}",
            f"{POINT0}.rules.multivariate.group",
            "",
            edits=[
                ("limit: {h: 80, hh: 90}", "multivariate: {group: reactor}"),
                (
                    "register: 2, type: float32}\n",
                    "register: 2, type: float32}\n            rules: {multivariate: {group: reactor}}\n",
                ),
            ],
        ),
        "multivariate group reactor: no model at ",
    ),
    Warned(
        "drift model that cannot be read",
        Case(
            "drift",
            "ewma:",
            f"{POINT0}.rules.ewma.model",
            "",
            edits=[("limit: {h: 80, hh: 90}", "ewma: {model: drift.json}")],
            files={"drift.json": "[1, 2"},
        ),
        "drift model drift.json not used (baselines are learned online)",
    ),
]


@pytest.mark.parametrize("warned", WARNINGS, ids=lambda w: w.id)
def test_check_prints_and_run_logs_the_same_warning(
    warned: Warned,
    host: PluginHost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = warned.case.write(tmp_path)
    assert cli.main(["--log-level", "error", "check", str(site)]) == 0
    err = capsys.readouterr().err
    expected = f"plantguard: warning: {warned.case.expected(site)}{warned.message}"
    [warning] = [line for line in err.splitlines() if line.startswith("plantguard: warning:")]
    assert warning.startswith(expected), err

    # run: the engine is built as `run` builds it (with its store), and logs the warning.
    loaded = load_site(site, host)
    store = Store(str(tmp_path / "run.db"))
    try:
        with caplog.at_level(logging.WARNING, logger="plantguard.engine"):
            Engine(loaded, host, store)
    finally:
        store.close()
    logged = [r.getMessage() for r in caplog.records if r.name == "plantguard.engine"]
    assert logged == [warning.removeprefix("plantguard: warning: ")]


def test_the_engine_raises_the_issues_check_reports(host: PluginHost, tmp_path: Path) -> None:
    """In-process, without the CLI: Engine() refuses before it touches the store's tables."""
    site = BUILD_CASES[0].write(tmp_path)
    loaded = load_site(site, host)
    store = Store(str(tmp_path / "run.db"))
    try:
        with pytest.raises(ConfigError) as raised:
            Engine(loaded, host, store)
    finally:
        store.close()
    [issue] = raised.value.issues
    assert (issue.file, issue.field) == (str(site), f"{POINT0}.rules.forecast.limit")
    with pytest.raises(ConfigError) as checked:
        build_engine_parts(loaded, host)
    assert checked.value.issues == raised.value.issues
