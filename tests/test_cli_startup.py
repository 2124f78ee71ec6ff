"""A command imports what it needs, nothing more.

Each case runs the real ``plantguard`` process under ``python -X importtime`` and
reads the modules it imported from stderr: ``--version`` and a built-in
command's ``--help`` import no plugin and none of the heavy libraries; ``trend``
imports the store (SQLAlchemy, numpy) it reads but no plugin, OPC UA, Modbus or
plotting library.  Commands that do need plugins (a plugin's command, the full
``--help``, ``plugins``) still load them.  These are assertions on modules, not
on time: the seconds are measured by ``make bench-hotpaths``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from plantguard.auth import Role
from plantguard.build import url_problem
from plantguard.cli import main
from plantguard.cli.acting import ROLE_LABELS, add_actor_argument
from plantguard.cli.common import fmt_time
from plantguard.cli.probe import DEFAULT_TIMEOUT
from plantguard.cli.records import MAINTENANCE_KINDS
from plantguard.model import Point
from plantguard.probe import DEFAULT_TIMEOUT as PROBE_DEFAULT_TIMEOUT
from plantguard.records.models import MaintenanceKind
from plantguard.store import Store

#: What no command that reads no site, serves nothing and plots nothing may import.
PLUGIN_PACKAGES = (
    "plantguard_opcua",
    "plantguard_modbus",
    "plantguard_sim",
    "plantguard_rules",
    "plantguard_maintenance",
)
HEAVY = ("asyncua", "pymodbus", "matplotlib", "cryptography")
STORE = ("sqlalchemy", "alembic", "numpy", "pydantic")
#: Core modules that cost at import (auth derives a password hash; the engine, the store
#: and the acceptance runner pull in the libraries above).
EXPENSIVE_CORE = (
    "plantguard.auth",
    "plantguard.engine",
    "plantguard.store",
    "plantguard.acceptance",
)


def _imported(argv: Sequence[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``plantguard ARGV``; its result and the modules it imported, with their
    top-level packages (``plantguard.auth`` and ``plantguard``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "plantguard", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    modules = names | {name.split(".")[0] for name in names}
    assert "plantguard" in modules, result.stderr[-2000:]  # the parse found the import lines
    return result, modules


@pytest.mark.parametrize(
    "argv", [["--version"], ["trend", "--help"], ["db", "check", "--help"], ["alarms", "--help"]]
)
def test_version_and_builtin_help_import_no_plugin_and_no_heavy_library(
    tmp_path: Path, argv: list[str]
) -> None:
    result, modules = _imported(argv, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("plantguard 0." if argv == ["--version"] else "usage:")
    unwanted = {*PLUGIN_PACKAGES, *HEAVY, *STORE, *EXPENSIVE_CORE}
    assert not modules & unwanted, sorted(modules & unwanted)


def test_trend_imports_the_store_but_no_plugin(tmp_path: Path) -> None:
    db = str(tmp_path / "plant.db")
    store = Store(db)
    try:
        keys = store.register_points([Point(id="tank1.level", device_id="tank1", unit="m")])
        t = 1_767_225_600.0 + np.arange(10, dtype=np.float64)
        store.write_history(
            np.full(10, keys["tank1.level"], dtype=np.int64),
            t,
            np.linspace(1.0, 2.0, 10),
            np.zeros(10, dtype=np.uint8),
        )
    finally:
        store.close()
    argv = ["trend", "tank1.level", "--db", db, "--since", "2026-01-01T00:00:00+00:00"]
    result, modules = _imported([*argv, "--until", "2026-01-01T00:01:00+00:00", "--csv"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.strip().splitlines()) == 11  # the header and the ten samples
    assert {"sqlalchemy", "numpy"} <= modules
    assert "plantguard.build" not in modules  # a file path needs no URL check
    assert not modules & {*PLUGIN_PACKAGES, *HEAVY}, sorted(modules & {*PLUGIN_PACKAGES, *HEAVY})


@pytest.mark.parametrize("argv", [["--help"], [], ["-h", "trend"]])
def test_the_full_help_loads_the_plugins_to_list_their_commands(
    tmp_path: Path, argv: list[str]
) -> None:
    result, modules = _imported(argv, tmp_path)
    assert result.returncode == (0 if argv else 2), result.stderr[-2000:]
    assert "plantguard_rules" in modules
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")}
    assert {"trend", "demo", "detect", "train"} <= listed  # built-in and plugin commands


def test_a_plugin_command_loads_the_plugins(tmp_path: Path) -> None:
    result, modules = _imported(["detect", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: plantguard detect")
    assert "plantguard_rules" in modules


def test_a_mistyped_command_is_told_the_plugin_commands_too(tmp_path: Path) -> None:
    result, _ = _imported(["detcet"], tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'detcet'" in result.stderr
    assert "'detect'" in result.stderr  # the plugins were loaded to list every command


def test_a_builtin_command_gets_the_plugins_when_it_uses_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("modbus", "sim", "rules", "maintenance", "opcua"):
        assert f"\n{name}\n" in f"\n{out}"


def test_the_values_the_parser_repeats_match_their_source() -> None:
    assert DEFAULT_TIMEOUT == PROBE_DEFAULT_TIMEOUT
    assert tuple(r.label for r in sorted(Role)) == ROLE_LABELS
    assert tuple(k.value for k in MaintenanceKind) == MAINTENANCE_KINDS


@pytest.mark.parametrize(
    "t",
    [0.0, -1.5, 1_767_225_600.0, 1_767_225_600.25, 1_767_225_600.9999996, 1_767_225_600.0004999],
)
def test_fmt_time_writes_what_datetime_writes(t: float) -> None:
    assert fmt_time(t) == dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def test_fmt_time_writes_what_datetime_writes_over_a_day() -> None:
    rng = np.random.default_rng(3)
    for t in (1_767_225_600.0 + rng.uniform(0, 86_400, 2_000)).tolist():
        assert fmt_time(t) == dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def test_the_acting_role_is_named_by_label_or_by_role() -> None:
    by_label, by_role = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_actor_argument(by_label, "engineer")
    add_actor_argument(by_role, Role.ENGINEER)
    assert by_label.format_help() == by_role.format_help()
    assert "with the engineer role or above" in " ".join(by_label.format_help().split())
    with pytest.raises(ValueError, match="unknown role 'root'"):
        add_actor_argument(argparse.ArgumentParser(), "root")


@pytest.mark.parametrize("target", ["plant.db", "~/stores/plant.db", "a?b", "x?mode=ro", "dir/"])
def test_a_db_path_without_a_colon_is_one_the_url_check_passes(target: str) -> None:
    # What lets the CLI skip the check (and the builder's imports) for such paths.
    assert url_problem(target) is None


def test_version_and_help_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.startswith("plantguard 0.")
    with pytest.raises(SystemExit) as full_help:
        main(["-h", "trend"])  # -h before the command: the full listing
    assert full_help.value.code == 0
    assert "detect" in capsys.readouterr().out
    assert main([]) == 2  # no command: the full help, status 2
    assert "detect" in capsys.readouterr().out
