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
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from plantguard.auth import Role
from plantguard.build import url_problem
from plantguard.cli import main
from plantguard.cli.acting import ROLE_LABELS, add_actor_argument
from plantguard.cli.common import fmt_time, fmt_times
from plantguard.cli.history import When, when_argument
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


#: What reading history needs none of: the site model (pydantic), the alarm package,
#: the KPI module, the users' password hashing and the records part of the store.
SITE_MODEL = (
    "pydantic",
    "plantguard.model",
    "plantguard.alarms",
    "plantguard.kpi",
    "plantguard.auth",
    "plantguard.store.records",
)


def test_the_trend_listing_imports_no_site_model(tmp_path: Path) -> None:
    db = str(tmp_path / "plant.db")
    t = 1_767_225_600.0 + np.arange(10, dtype=np.float64) * 0.75
    store = Store(db)
    try:
        keys = store.register_points([Point(id="tank1.level", device_id="tank1", unit="m")])
        store.write_history(
            np.full(10, keys["tank1.level"], dtype=np.int64),
            t,
            np.linspace(1.0, 2.0, 10),
            np.arange(10, dtype=np.uint8),
        )
    finally:
        store.close()
    argv = ["trend", "tank1.level", "--db", db, "--since", "2026-01-01T00:00:00+00:00"]
    result, modules = _imported([*argv, "--until", "2026-01-01T00:01:00+00:00"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [
        f"{fmt_time(x)}  {v:12.4f}  q={q}"
        for x, v, q in zip(t.tolist(), np.linspace(1.0, 2.0, 10).tolist(), range(10), strict=True)
    ]
    assert result.stdout.splitlines() == expected
    assert not modules & set(SITE_MODEL), sorted(modules & set(SITE_MODEL))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", When(ago=90.0)),
        ("1h30m", When(ago=5400.0)),
        (" 2 W ", When(ago=1_209_600.0)),
        ("now", When(ago=0.0)),
        ("20260101", When(ago=20_260_101.0)),  # digits are a duration, as ever
        ("2026-01-01T00:00:00+00:00", When(at=1_767_225_600.0)),
        ("2026-01-01T01:00+01:00", When(at=1_767_225_600.0)),
    ],
)
def test_a_time_argument_is_a_duration_or_an_iso_time(text: str, expected: When) -> None:
    assert when_argument(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x", "not a time or a duration"),
        ("h", "not a time or a duration"),
        ("2026-13-01", "not a time or a duration"),
        ("1.5.5s", "not a time or a duration"),
        ("40000d", "at most 100 years"),
        ("1969-12-31T00:00+00:00", "outside 1970-2199"),
    ],
)
def test_a_time_argument_that_is_neither_is_refused(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        when_argument(text)


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Lets a test set ``TZ``; the process's zone is restored after it."""
    yield monkeypatch
    monkeypatch.undo()
    time.tzset()


def _times() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate(
        [
            1_767_225_600.0 + np.arange(0, 86_400, 7.25),  # a day
            1_774_746_000.0 + np.arange(-7_200, 7_200, 0.5),  # DST start in Europe, 2026
            1_759_500_000.0 + np.arange(0, 200_000, 13.0),  # Lord Howe's half-hour shift
            rng.uniform(0.0, 7.2e9, 2_000),  # 1970-2198
            [0.0, 0.9999996, 1.0000004, 2.5e-7, 1_767_225_599.9999995, 1_767_225_600.0004999],
        ]
    )


@pytest.mark.parametrize(
    ("zone", "january_offset"),
    [
        ("UTC", 0),
        ("Europe/Berlin", 3_600),
        ("Australia/Lord_Howe", 39_600),  # DST +11:00, standard +10:30
        ("America/St_Johns", -12_600),
        ("right/UTC", 0),  # counts leap seconds: localtime is not UTC + offset
    ],
)
def test_fmt_times_writes_what_fmt_time_writes(
    local_zone: pytest.MonkeyPatch, zone: str, january_offset: int
) -> None:
    local_zone.setenv("TZ", zone)
    time.tzset()
    assert time.localtime(1_767_225_600).tm_gmtoff == january_offset  # the zone is in effect
    if zone.startswith("right/"):
        assert time.localtime(1_767_225_600)[:6] == (2025, 12, 31, 23, 59, 33)
    t = _times()
    assert fmt_times(t) == [fmt_time(x) for x in t.tolist()]


def test_fmt_times_beyond_four_digit_years_and_of_nothing() -> None:
    t = np.array([1_767_225_600.5, 3e11])  # the year 11476: sample by sample
    assert fmt_times(t) == [fmt_time(1_767_225_600.5), fmt_time(3e11)]
    assert fmt_times(np.zeros(0)) == []
    with pytest.raises(ValueError, match="NaN"):
        fmt_times(np.array([1.0, np.nan]))  # fmt_time's error


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
