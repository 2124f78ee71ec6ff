"""Expected failures end as one line on stderr with the exit status of their class.

Each case runs the real ``plantguard`` process (as a user types it) and checks the
status documented in :mod:`plantguard.errors` (2 usage or input, 3 store, 4 network
or port), exactly one stderr line, no traceback, and — where it applies — that
nothing was created on the way.  ``--log-level warning`` keeps the gateway's
start-up log lines out of stderr, so the line counted is the failure's.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from plantguard.cli import demo_site_text
from plantguard.errors import EXIT_BROKEN_PIPE, EXIT_NETWORK, EXIT_STORE, EXIT_USAGE
from plantguard.model import AlarmDefinition
from plantguard.store import Store
from plantguard.testing import free_tcp_port

PLANTGUARD = [sys.executable, "-m", "plantguard"]


def _run(argv: Sequence[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*PLANTGUARD, "--log-level", "warning", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The failure's one stderr line, after checking the status and that there is no traceback."""
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == status, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("plantguard: "), err
    return lines[0]


def _closed_port_url() -> str:
    return f"postgresql://plantguard:secret@127.0.0.1:{free_tcp_port()}/test"


def _site(directory: Path, db: str) -> Path:
    site = directory / "site.yaml"
    site.write_text(
        demo_site_text(
            opcua_port=free_tcp_port(), modbus_port=free_tcp_port(), db=db, scenario="none"
        ),
        encoding="utf-8",
    )
    return site


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port a listening socket holds on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_an_opcua_port_in_use_is_one_line_and_status_4(tmp_path: Path, held_port: int) -> None:
    result = _run(
        [
            "demo",
            "--opcua-port",
            str(held_port),
            "--modbus-port",
            str(free_tcp_port()),
            "--db",
            str(tmp_path / "demo.db"),
            "--duration",
            "5",
            "--quiet",
        ],
        tmp_path,
    )
    line = _one_line(result, EXIT_NETWORK)
    assert line == (
        f"plantguard: the OPC UA server cannot listen on 127.0.0.1:{held_port}: the port is in "
        "use; stop what holds it, or choose another port "
        "(services.opcua.port; --opcua-port for the demo)"
    )


@pytest.mark.parametrize(
    ("held", "line"),
    [
        ("--opcua-port", "the OPC UA server cannot listen on 127.0.0.1:{port}"),
        ("--modbus-port", "the plant simulator (Modbus TCP) cannot listen on 127.0.0.1:{port}"),
    ],
)
def test_demo_on_a_busy_port_creates_no_database(
    tmp_path: Path, held_port: int, held: str, line: str
) -> None:
    ports = {"--opcua-port": str(free_tcp_port()), "--modbus-port": str(free_tcp_port())}
    ports[held] = str(held_port)
    result = _run(
        ["demo", *(a for kv in ports.items() for a in kv), "--db", "demo.db", "--duration", "5"],
        tmp_path,
    )
    assert _one_line(result, EXIT_NETWORK).startswith(f"plantguard: {line.format(port=held_port)}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no demo.db, nothing else


def test_a_database_server_that_is_down_stops_run_with_status_3(tmp_path: Path) -> None:
    url = _closed_port_url()
    site = _site(tmp_path, url)
    result = _run(["run", str(site), "--duration", "1", "--quiet"], tmp_path)
    line = _one_line(result, EXIT_STORE)
    assert line.startswith("plantguard: cannot open the store postgresql")
    assert "secret" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.yaml"]


def test_a_database_server_that_is_down_stops_a_read_command_with_status_3(
    tmp_path: Path,
) -> None:
    result = _run(["alarms", "list", "--db", _closed_port_url()], tmp_path)
    line = _one_line(result, EXIT_STORE)
    assert "127.0.0.1" in line
    assert "secret" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["alarms", "list"], ["run", "SITE"]])
@pytest.mark.parametrize(
    ("db", "message"),
    [
        (
            "postgresql:/broken",
            "plantguard: --db: not a database URL (a URL is postgresql://user@host/database; "
            "did you mean 'postgresql://broken'?)",
        ),
        (
            "mysql://u@127.0.0.1/x",
            "plantguard: --db: the database driver for 'mysql' is not installed: "
            "No module named 'MySQLdb'",
        ),
    ],
)
def test_a_db_argument_that_cannot_work_is_a_usage_error(
    tmp_path: Path, command: list[str], db: str, message: str
) -> None:
    before: set[str] = set()
    if "SITE" in command:
        command = [
            str(_site(tmp_path, str(tmp_path / "site.db"))) if c == "SITE" else c for c in command
        ]
        before = {"site.yaml"}
    result = _run([*command, "--db", db], tmp_path)
    assert _one_line(result, EXIT_USAGE) == message
    assert {p.name for p in tmp_path.iterdir()} == before  # no postgresql: directory, no file


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    db = tmp_path / "alarms.db"
    store = Store(str(db))
    try:  # enough alarms that the JSON outgrows the pipe's buffer
        store.define_alarms(
            [
                AlarmDefinition(
                    id=f"area{i % 7}.device{i}.level.hh",
                    source_id=f"device{i}.level",
                    device_id=f"device{i}",
                    rule="limit",
                    message="level very high " * 4,
                )
                for i in range(3000)
            ]
        )
    finally:
        store.close()
    command = shlex.join([*PLANTGUARD, "alarms", "list", "--json", "--db", str(db)])
    result = subprocess.run(
        ["bash", "-c", f'{command} | head -1; echo "status=${{PIPESTATUS[0]}}"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stderr == ""
    first, status = result.stdout.splitlines()
    assert first.startswith("[")
    assert status in ("status=0", f"status={EXIT_BROKEN_PIPE}")


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_site_file_is_status_2_with_file_line_and_field(tmp_path: Path, command: str) -> None:
    site = _site(tmp_path, str(tmp_path / "site.db"))
    text = site.read_text(encoding="utf-8").replace("driver: modbus", "driver: modbuss", 1)
    site.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "modbuss" in t)
    result = _run([command, str(site)], tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == EXIT_USAGE, result.stderr
    # The one failure keeps its established form: the heading, then one line per issue.
    heading, issue = result.stderr.splitlines()
    assert heading == "plantguard: invalid configuration:"
    assert issue.startswith(f"{site}:{line}: areas[0].devices[0].driver: unknown driver 'modbuss'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.yaml"]


def test_debug_shows_the_traceback_of_an_expected_failure(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PLANTGUARD, "--debug", "alarms", "list", "--db", _closed_port_url()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == EXIT_STORE
    assert result.stderr.count("Traceback (most recent call last)") == 1
    assert result.stderr.splitlines()[-1].startswith("plantguard: ")


def test_a_site_without_devices_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("id: empty\nareas:\n  - id: hall\n    devices: []\n", encoding="utf-8")
    result = _run(["check", str(site)], tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.splitlines() == [
        "plantguard: invalid configuration:",
        f"{site}:2: areas: the site has no devices",
    ]


def test_a_bad_scan_interval_does_not_hide_the_other_errors(tmp_path: Path) -> None:
    site = _site(tmp_path, str(tmp_path / "site.db"))
    text = site.read_text(encoding="utf-8")
    text = text.replace("scan_interval: 0.5", "scan_interval: -1", 1)
    text = text.replace("driver: modbus", "driver: modbuss", 1)
    site.write_text(text, encoding="utf-8")
    result = _run(["check", str(site)], tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    err = result.stderr
    assert "scan_interval: Input should be greater than 0" in err
    assert "areas[0].devices[0].driver: unknown driver 'modbuss'" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["alarms", "ack", "tank1.level.limit", "--user", "alice"], "no password for alice"),
        (["users", "add", "bob", "--role", "admin"], "no new password for bob"),
    ],
)
def test_a_password_asked_without_a_terminal_is_one_line(
    tmp_path: Path, argv: list[str], words: str
) -> None:
    """A script or a service with no terminal and no password variable: the refusal says
    which variable to set, instead of getpass's echo warning and an EOFError."""
    db = tmp_path / "plant.db"
    Store(str(db)).close()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PLANTGUARD_PASSWORD", "PLANTGUARD_NEW_PASSWORD")
    }
    result = subprocess.run(
        [*PLANTGUARD, *argv, "--db", str(db)],
        cwd=tmp_path,
        env={**env, "PYTHONWARNINGS": "ignore"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        start_new_session=True,  # no controlling terminal: /dev/tty cannot be opened
    )
    line = _one_line(result, 1)
    assert words in line
    assert "PLANTGUARD_" in line
