"""Hostile input to records imports and dates, on a real SQLite file and the real PostgreSQL.

Each finding of the review, reproduced through the command line an engineer
uses: the import is rejected with the documented error (file, row or item,
field; "nothing was imported"; no traceback) and the store is unchanged, table
by table.  And values no import accepts any more, written straight into the
database, do not crash what reads them: ``maintenance due``, ``plans``,
``stats``, the maintenance rule and ``plantguard demo``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import ACTOR, add_actor, as_actor

from plantguard.cli import main
from plantguard.model import AlarmDefinition, Point
from plantguard.records.exchange import MAX_FILE_BYTES, MAX_ITEMS, RecordImportError
from plantguard.records.imports import import_items
from plantguard.records.status import plan_statuses
from plantguard.store import Store
from plantguard.testing import free_tcp_port
from plantguard_maintenance.rule import MaintenanceDueRule

DEVICES_CSV = """id,name,category
pump1,Feed pump 1,pump
tank1,Tank 1,tank
"""
PLANS = [
    {"id": "pump1-grease", "device_id": "pump1", "title": "Grease bearings",
     "trigger": "calendar", "interval": 30, "lead": 7, "start": "2026-01-01"},
    {"id": "pump1-bearings", "device_id": "pump1", "title": "Bearing service",
     "trigger": "runtime", "interval": 2000, "lead": 100, "point": "pump1.running"},
    {"id": "pump1-alignment", "device_id": "pump1", "title": "Check alignment",
     "trigger": "condition", "interval": 2, "alarm": "pump1.vibration.limit"},
]  # fmt: skip
RECORD = {
    "id": "r-1", "device_id": "pump1", "plan_id": "pump1-grease",
    "performed_at": "2026-01-02T01:00:00Z", "performer": "Li Wei", "work_done": "greased",
}  # fmt: skip
TABLES = ("devices", "device_changes", "maintenance_plans", "maintenance_records")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(as_actor(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(target: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the records tables, in a fixed order, as plain values."""
    store = Store(target)
    try:
        with store.engine.connect() as conn:
            return {
                name: sorted(
                    (
                        tuple(repr(v) for v in row)
                        for row in conn.execute(sa.text(f"SELECT * FROM {name}"))
                    ),
                )
                for name in TABLES
            }
    finally:
        store.close()


@pytest.fixture
def db(
    store_target: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A store the gateway has run with: devices, their points and alarms, three plans, a record."""
    add_actor(store_target, monkeypatch)
    store = Store(store_target)
    try:
        store.register_points(
            [
                Point(id="pump1.running", device_id="pump1"),
                Point(id="tank1.level", device_id="tank1"),
            ]
        )
        store.define_alarms(
            [
                AlarmDefinition(
                    id="pump1.vibration.limit",
                    source_id="pump1.vibration",
                    device_id="pump1",
                    rule="limit",
                ),
                AlarmDefinition(
                    id="tank1.level.limit", source_id="tank1.level", device_id="tank1", rule="limit"
                ),
            ]
        )
    finally:
        store.close()
    (tmp_path / "devices.csv").write_text(DEVICES_CSV, encoding="utf-8")
    (tmp_path / "plans.json").write_text(json.dumps(PLANS), encoding="utf-8")
    (tmp_path / "records.json").write_text(json.dumps([RECORD]), encoding="utf-8")
    for name, kind in (
        ("devices.csv", "devices"),
        ("plans.json", "plans"),
        ("records.json", "records"),
    ):
        command = "devices" if kind == "devices" else "maintenance"
        extra = [] if kind == "devices" else ["--kind", kind]
        code, _, err = _cli(
            capsys, command, "import", str(tmp_path / name), *extra, "--db", store_target
        )
        assert code == 0, err
    return store_target


def _rejected(
    capsys: pytest.CaptureFixture[str],
    db: str,
    path: Path,
    kind: str,
    *expected: str,
) -> str:
    """Import ``path``; assert it is rejected with ``expected`` and the store is unchanged."""
    before = _snapshot(db)
    command = (
        ["devices", "import"] if kind == "devices" else ["maintenance", "import", "--kind", kind]
    )
    code, out, err = _cli(capsys, *command, str(path), "--db", db)
    assert code == 2, (out, err)
    assert err.startswith("plantguard: import rejected:\n"), err
    assert err.rstrip().endswith("nothing was imported"), err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert _snapshot(db) == before
    return err


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- (b) files that gave tracebacks -------------------------------------------------------


def test_non_utf8_csv_names_file_line_and_byte(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "latin1.csv", "id,name\npump1,Pumpe für Kühlwasser\n".encode("latin-1"))
    _rejected(capsys, db, path, "devices",
              f"{path}: line 2: not valid UTF-8: byte 0xFC at byte offset 21")  # fmt: skip


def test_cell_over_the_csv_modules_field_limit(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "long.csv", "id,category,name\npump1,pump," + "x" * 131_073 + "\n")
    _rejected(capsys, db, path, "devices",
              f"{path}: row 2: name: a cell longer than 131,072 characters")  # fmt: skip
    path = _write(tmp_path, "long2.csv", 'id,name\npump1,"' + "y" * 70_000 + '"\n')
    _rejected(
        capsys, db, path, "devices", f"{path}: row 2: name: 70,000 characters; at most 65,536"
    )


def test_json_nested_200000_deep(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "deep.json", "[" * 200_000 + "]" * 200_000)
    _rejected(capsys, db, path, "devices", f"{path}: document: nested deeper than 32 levels")
    # Deep, but not deep enough for Python's recursion limit: caught by the depth check.
    inner = "[" * 100 + "1" + "]" * 100
    path = _write(tmp_path, "deep2.json", '[{"id": "pump1", "rated": {"power_kw": ' + inner + "}}]")
    _rejected(capsys, db, path, "devices",
              f"{path}: items[0]: rated.power_kw", "nested deeper than 32 levels")  # fmt: skip


def test_5000_digit_integer(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, "big.json", '[{"id": "pump1", "rated": {"power_kw": ' + "9" * 5000 + "}}]"
    )
    _rejected(capsys, db, path, "devices",
              f"{path}: items[0]: rated.power_kw: an integer of 5,000 digits")  # fmt: skip
    plan = json.dumps({**PLANS[0], "interval": "@"}).replace('"@"', "1" * 5000)
    path = _write(tmp_path, "plan.json", f"[{plan}]")
    _rejected(capsys, db, path, "plans", f"{path}: items[0]: interval: an integer of 5,000 digits")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_nul_and_control_characters_refused_the_same_on_both_stores(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    if fmt == "csv":
        path = _write(tmp_path, "nul.csv", "id,name,category\npump9,Pump\x00nine,pump\n")
        where = "row 2"
    else:
        path = _write(tmp_path, "nul.json", json.dumps([{"id": "pump9", "name": "Pump\x00nine"}]))
        where = "items[0]"
    _rejected(capsys, db, path, "devices",
              f"{path}: {where}: name: Value error, control character U+0000 at position 5")  # fmt: skip
    escape = json.dumps([{**PLANS[0], "title": "Grease \x1b[31mnow"}])
    path = _write(tmp_path, "esc.json", escape)
    _rejected(
        capsys, db, path, "plans", f"{path}: items[0]: title: Value error, control character U+001B"
    )
    surrogate = json.dumps([{**RECORD, "performer": "\ud800"}])
    path = _write(tmp_path, "surrogate.json", surrogate)
    _rejected(
        capsys,
        db,
        path,
        "records",
        f"{path}: items[0]: performer: Input should be a valid string",
    )


def test_text_longer_than_its_column_refused_on_both_stores(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite stored these and PostgreSQL refused them (varchar(200)): now both refuse them."""
    path = _write(tmp_path, "wide.csv", "id,name\npump1," + "n" * 201 + "\n")
    _rejected(
        capsys,
        db,
        path,
        "devices",
        f"{path}: row 2: name: String should have at most 200 characters",
    )


def test_the_acting_user_is_checked(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "devices.csv", DEVICES_CSV)
    before = _snapshot(db)
    code, _, err = _cli(capsys, "devices", "import", str(path), "--db", db, "--as", "nobody")
    assert (code, err.strip()) == (1, "plantguard: wrong user name or password")
    assert _snapshot(db) == before
    store = Store(db)
    try:
        with pytest.raises(RecordImportError, match="user: must be 1 to 128 characters"):
            import_items(store, "devices", DEVICES_CSV, "csv", str(path), user="u" * 129)
        with pytest.raises(RecordImportError, match="user: control character U\\+000A"):
            import_items(store, "devices", DEVICES_CSV, "csv", str(path), user="a\nb")
    finally:
        store.close()
    assert _snapshot(db) == before


def test_file_size_and_item_count_limits(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"id,name\n")
        f.seek(MAX_FILE_BYTES)
        f.write(b"\n")
    _rejected(capsys, db, path, "devices", f"{path}: file: larger than 64 MiB")
    rows = "".join(f"d{i}\n" for i in range(MAX_ITEMS + 1))
    path = _write(tmp_path, "many.csv", "id\n" + rows)
    _rejected(capsys, db, path, "devices", f"{path}: row {MAX_ITEMS + 2}: more than 100,000 rows")
    path = _write(tmp_path, "many.json", "[" + ",".join(["{}"] * (MAX_ITEMS + 1)) + "]")
    _rejected(
        capsys, db, path, "devices", f"{path}: document: items: 100,001 items; at most 100,000"
    )


def test_repeated_json_keys(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "twice.json", '[{"id": "pump1", "name": "a", "name": "b"}]')
    _rejected(capsys, db, path, "devices", f"{path}: items[0]: name: given twice")


# --- (b) accepted though wrong ------------------------------------------------------------


def test_plan_naming_an_unknown_alarm_or_point(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = [
        {**PLANS[2], "id": "p-alarm", "alarm": "pump1.no-such.alarm"},
        {**PLANS[1], "id": "p-point", "point": "pump1.no_such_point"},
    ]
    path = _write(tmp_path, "plans.json", json.dumps(plans))
    _rejected(capsys, db, path, "plans",
              f"{path}: items[0]: alarm: unknown alarm 'pump1.no-such.alarm'",
              f"{path}: items[1]: point: unknown point 'pump1.no_such_point'")  # fmt: skip


def test_plan_naming_another_devices_point_or_alarm(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = [
        {**PLANS[1], "id": "tank1-mixer", "device_id": "tank1"},  # pump1.running
        {**PLANS[2], "id": "tank1-alarm", "device_id": "tank1"},  # pump1.vibration.limit
    ]
    path = _write(tmp_path, "plans.json", json.dumps(plans))
    _rejected(capsys, db, path, "plans",
              f"{path}: items[0]: point: point 'pump1.running' belongs to device 'pump1', not to 'tank1'",
              f"{path}: items[1]: alarm: alarm 'pump1.vibration.limit' belongs to device 'pump1'")  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_record_for_tank1_pointing_at_pump1s_plan(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    if fmt == "json":
        path = _write(
            tmp_path, "r.json", json.dumps([{**RECORD, "id": "r-2", "device_id": "tank1"}])
        )
        where = "items[0]"
    else:
        path = _write(tmp_path, "r.csv", "id,device_id,plan_id,performed_at,performer\n"
                      "r-2,tank1,pump1-grease,2026-01-02T01:00:00Z,Li Wei\n")  # fmt: skip
        where = "row 2"
    _rejected(capsys, db, path, "records",
              f"{path}: {where}: plan_id: plan 'pump1-grease' is a plan of device 'pump1', not of 'tank1'")  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("json", '[{"id": "pump1", "rated": {"power_kw": NaN}}]', "items[0]: rated.power_kw: NaN is not a number"),
        ("json", '[{"id": "pump1", "rated": {"power_kw": -Infinity}}]', "items[0]: rated.power_kw: -Infinity is not a number"),
        ("json", '[{"id": "pump1", "rated": {"power_kw": 1e999}}]', "items[0]: rated.power_kw: '1e999' is too large a number"),
        ("json", '[{"id": "pump1", "rated": {"power_kw": "nan"}}]', "items[0]: rated.power_kw: Input should be a finite number"),
        ("csv", "id,rated\npump1,power_kw=nan; speed=inf\n", "row 2: rated.power_kw: Input should be a finite number"),
        ("csv", "id,rated\npump1,power_kw=Infinity\n", "row 2: rated.power_kw: Input should be a finite number"),
    ],
)  # fmt: skip
def test_nan_and_infinity_in_rated(
    db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    fmt: str,
    content: str,
    expected: str,
) -> None:
    path = _write(tmp_path, f"rated.{fmt}", content)
    _rejected(capsys, db, path, "devices", f"{path}: {expected}")


# --- (a) dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "item", "expected"),
    [
        ("plans", {**PLANS[0], "interval": 3_000_000}, "items[0]: interval: Value error, 3e+06 days is longer than a calendar plan may have (at most 36525 days)"),
        ("plans", {**PLANS[1], "interval": 1e7, "lead": 0}, "items[0]: interval: Value error, 1e+07 hours is longer than a runtime plan may have"),
        ("plans", {**PLANS[0], "start": "9999-12-31"}, "items[0]: start: Value error, date 9999-12-31 is outside 1970-01-01 .. 2199-12-31"),
        ("plans", {**PLANS[0], "start": "1969-12-31"}, "items[0]: start: Value error, date 1969-12-31 is outside"),
        ("records", {**RECORD, "performed_at": "9999-12-31T23:59:59Z"}, "items[0]: performed_at: Value error, time 9999-12-31T23:59:59+00:00 is outside the supported range"),
        ("records", {**RECORD, "performed_at": "0001-01-01T00:00:00+14:00"}, "items[0]: performed_at: Value error, time 0001-01-01T00:00:00+14:00 is outside the supported range"),
        ("records", {**RECORD, "performed_at": "2200-01-01T00:00:00Z"}, "items[0]: performed_at: Value error, time 2200-01-01T00:00:00+00:00 is outside"),
        ("records", {**RECORD, "next_due": "9999-12-31"}, "items[0]: next_due: Value error, date 9999-12-31 is outside"),
        ("records", {**RECORD, "meter_reading": 1e300}, "items[0]: meter_reading: Input should be less than or equal to 1000000000000000"),
        ("devices", {"id": "pump1", "commissioned": "0001-01-01"}, "items[0]: commissioned: Value error, date 0001-01-01 is outside"),
    ],
)  # fmt: skip
def test_dates_and_intervals_out_of_range_are_refused(
    db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    kind: str,
    item: dict[str, Any],
    expected: str,
) -> None:
    path = _write(tmp_path, f"{kind}.json", json.dumps([item]))
    _rejected(capsys, db, path, kind, f"{path}: {expected}")


def test_the_limits_themselves_are_accepted_on_both_stores(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everything at its limit fits both stores' columns (PostgreSQL enforces widths)."""
    device = {"id": "d" * 64, "name": "名" * 200, "category": "c" * 64, "manufacturer": "m" * 200,
              "commissioned": "1970-01-01", "rated": {f"r{i}": 1e308 for i in range(100)}}  # fmt: skip
    path = _write(tmp_path, "devices.json", json.dumps([device]))
    assert _cli(capsys, "devices", "import", str(path), "--db", db)[0] == 0
    plan = {**PLANS[0], "id": "p" * 100, "title": "t" * 4096, "interval": 36_525, "lead": 36_524,
            "start": "2199-12-31", "procedure": "step\n\tone\r\n" * 5_000}  # fmt: skip
    path = _write(tmp_path, "plans.json", json.dumps([plan]))
    code, _, err = _cli(capsys, "maintenance", "import", "--kind", "plans", str(path), "--db", db)
    assert code == 0, err
    records = [
        {**RECORD, "id": "r-early", "plan_id": "p" * 100, "performed_at": "1970-01-01T00:00:00Z",
         "next_due": "2199-12-31"},
        {**RECORD, "id": "r" * 100, "plan_id": "p" * 100, "performed_at": "2199-12-31T23:59:59.999999Z",
         "work_done": "w" * 65_536, "certificate_number": "c" * 100, "performer": "p" * 200,
         "meter_reading": -1e15, "parts": ["x" * 200] * 100},
    ]  # fmt: skip
    path = _write(tmp_path, "records.json", json.dumps(records))
    code, _, err = _cli(capsys, "maintenance", "import", "--kind", "records", str(path), "--db", db)
    assert code == 0, err
    code, out, _ = _cli(capsys, "maintenance", "plans", "--json", "--db", db)
    assert code == 0
    [status] = [s for s in json.loads(out) if s["plan"] == "p" * 100]
    # Done at the last instant accepted, due 36525 days later: reported at the horizon.
    assert status["due_at"] == "2200-01-01T00:00:00+00:00"
    assert status["reason"] == "not due before 2200-01-01 (every 36525 days)"


# --- (a) rows stored around the import --------------------------------------------------------

STRICT_JSON: dict[str, Any] = {"parse_constant": lambda name: pytest.fail(f"{name} in JSON output")}


def _insert(db: str) -> None:
    """Rows no import accepts, written straight into the database."""
    store = Store(db)
    try:
        postgres = store.engine.dialect.name == "postgresql"
        plan = ("INSERT INTO maintenance_plans (id, device_id, kind, title, trigger, interval, lead,"
                " point, alarm, start, overdue_priority, procedure, active) VALUES ")  # fmt: skip
        record = ("INSERT INTO maintenance_records (id, device_id, plan_id, kind, performed_at,"
                  " performer, work_done, result, passed, certificate_number, measurements, parts,"
                  " meter_reading, next_due, attachments) VALUES ")  # fmt: skip
        true = "true" if postgres else "1"
        with store.engine.begin() as conn:
            for values in (
                f"('huge', 'pump1', 'maintenance', 'Huge', 'calendar', 3000000, 0, NULL, NULL, NULL, 'medium', '', {true})",
                f"('negative', 'tank1', 'maintenance', 'Negative', 'calendar', -5, 0, NULL, NULL, NULL, 'medium', '', {true})",
                f"('far-start', 'tank1', 'inspection', 'Far', 'calendar', 30, 0, NULL, NULL, '9999-12-31', 'high', '', {true})",
                f"('huge-cond', 'pump1', 'maintenance', 'Cond', 'condition', 1e300, 0, NULL, 'pump1.vibration.limit', NULL, 'medium', '', {true})",
                f"('huge-meter', 'pump1', 'maintenance', 'Meter', 'counter', 1e308, 0, 'pump1.running', NULL, NULL, 'medium', '', {true})",
            ):  # fmt: skip
                conn.execute(sa.text(plan + values))
            for values in (
                "('r-huge', 'pump1', 'huge', 'maintenance', '2026-01-01 00:00:00', 'x', '', 'completed', NULL, '', '[]', '[]', NULL, NULL, '[]')",
                "('r-9999', 'pump1', 'pump1-grease', 'maintenance', '9999-12-31 23:59:59', 'x', '', 'completed', NULL, '', '[]', '[]', NULL, '9999-12-31', '[]')",
                "('r-year1', 'tank1', 'far-start', 'inspection', '0001-01-01 00:00:00', 'x', '', 'completed', NULL, '', '[]', '[]', 1e300, '0001-01-01', '[]')",
                "('r-meter', 'pump1', 'huge-meter', 'maintenance', '2026-01-01 00:00:00', 'x', '', 'completed', NULL, '', '[{\"name\": \"t\", \"value\": 1}]', 'not json', -1e308, NULL, '[]')",
            ):  # fmt: skip
                conn.execute(sa.text(record + values))
            # Beyond what Python's datetime can hold: year 10000, PostgreSQL's infinity.
            beyond = (
                ("'infinity'", "'10000-06-01 00:00:00'")
                if postgres
                else ("'10000-06-01 00:00:00'",)
            )
            for i, when in enumerate(beyond):
                conn.execute(sa.text(
                    record + f"('r-beyond-{i}', 'tank1', 'negative', 'maintenance', {when}, 'x', '', "
                    f"'completed', NULL, '', '[]', '[]', NULL, {when}, '[]')"
                ))  # fmt: skip
            # Not understood at all: an unknown trigger; a priority no alarm has.
            conn.execute(sa.text(plan + f"('odd-trigger', 'pump1', 'maintenance', 'Odd', 'sometimes', 30, 0, "
                                        f"NULL, NULL, NULL, 'medium', '', {true})"))  # fmt: skip
            conn.execute(sa.text(plan + f"('odd-priority', 'pump1', 'maintenance', 'Odd', 'calendar', 30, 0, "
                                        f"NULL, NULL, '2026-01-01', 'panic', '', {true})"))  # fmt: skip
            if not postgres:  # SQLite keeps any text in a DATETIME column
                conn.execute(sa.text(record + "('r-garbage', 'pump1', 'pump1-grease', 'maintenance', 'yesterday', "
                                              "'x', '', 'completed', NULL, '', '[]', '[]', NULL, 'soon', '[]')"))  # fmt: skip
            if postgres:  # SQLite keeps no NaN (it becomes NULL)
                conn.execute(sa.text(plan + f"('nan', 'tank1', 'maintenance', 'NaN', 'runtime', 'NaN', 'NaN', "
                                            f"'tank1.level', NULL, NULL, 'medium', '', {true})"))  # fmt: skip
            conn.execute(
                sa.text("UPDATE alarms SET active_since = 1e300, state = 'active_unacknowledged' "
                        "WHERE alarm_id = 'pump1.vibration.limit'")
            )  # fmt: skip
        key = store.register_points([])["pump1.running"]
        t = dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()
        # A counter reading of 1e308 after a recorded reading of -1e308: an infinite increase.
        store.write_history(
            np.array([key]), np.array([t]), np.array([1e308]), np.zeros(1, np.uint8)
        )
    finally:
        store.close()


def test_stored_rows_beyond_the_limits_do_not_crash_due_plans_stats(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _insert(db)
    code, out, err = _cli(capsys, "maintenance", "due", "--all", "--json", "--db", db)
    assert code == 0, err
    due = {s["plan"]: s for s in json.loads(out, **STRICT_JSON)}
    assert due["huge"]["state"] == "ok"
    assert due["huge"]["due_at"] == "2200-01-01T00:00:00+00:00"
    assert due["huge"]["reason"] == "not due before 2200-01-01 (every 3e+06 days)"
    # Done at 9999-12-31 (set next due 9999-12-31): not due before the horizon either.
    assert due["pump1-grease"]["due_at"] == "2200-01-01T00:00:00+00:00"
    assert due["far-start"]["state"] == "overdue"  # its last record set next due 0001-01-01
    assert due["huge-cond"]["reason"].startswith("not due before 2200-01-01")
    assert due["negative"]["state"] == "overdue"
    assert due["negative"]["reason"] == "invalid plan: interval -5.0 is not a positive number"
    assert due["huge-meter"]["reason"] == "no usable data from pump1.running"
    assert "odd-trigger" not in due  # left out (with an error in the log)
    assert due["odd-priority"]["state"] == "overdue"  # read with the default priority
    if "nan" in due:
        assert due["nan"]["reason"] == "invalid plan: interval nan is not a positive number"
    for argv in (
        ("maintenance", "due", "--db", db),
        ("maintenance", "due", "--at", "2199-12-31T23:59:59+00:00", "--db", db),
        ("maintenance", "due", "--at", "1970-01-01T00:00:00+00:00", "--json", "--db", db),
        ("maintenance", "plans", "--db", db),
        ("maintenance", "plans", "--json", "--db", db),
        ("maintenance", "export", "--kind", "records", "--db", db),
        ("maintenance", "export", "--kind", "plans", "--format", "csv", "--db", db),
        ("devices", "show", "pump1", "--json", "--db", db),
        ("stats", "--json", "--db", db),
        ("stats", "--since", "36500d", "--db", db),
    ):
        code, out, err = _cli(capsys, *argv)
        assert code == 0, (argv, err)
        if "--json" in argv:
            json.loads(out, **STRICT_JSON)
    # A time outside the calendar is the command line's mistake: a usage error.
    for at in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(SystemExit) as exit_:
            main(["maintenance", "due", "--at", at, "--db", db])
        assert exit_.value.code == 2
        assert "is outside 1970-2199" in capsys.readouterr().err


def test_stored_rows_beyond_the_limits_do_not_crash_the_maintenance_rule(db: str) -> None:
    """What ``run`` and ``demo`` evaluate every minute (and OPC UA publishes)."""
    _insert(db)
    store = Store(db)
    try:
        rule = MaintenanceDueRule(store)
        for now in (dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp(), 1e300, -1e300, math.nan):
            statuses = rule.check(now)
            assert statuses["huge"].reason.startswith("not due before 2200-01-01")
        assert plan_statuses(store, 1e18)["negative"].reason.startswith("invalid plan")
        assert rule.alarms()  # every plan still declares its alarm
    finally:
        store.close()


def test_demo_runs_with_rows_beyond_the_limits(tmp_path: Path, db: str) -> None:
    """The finding: ``plantguard demo`` exited 1 before OPC UA listened."""
    _insert(db)
    store = Store(db)
    store.users.delete_user(ACTOR)  # the demo runs only on a store with no real users
    store.close()
    port = free_tcp_port()
    proc = subprocess.run(
        [sys.executable, "-m", "plantguard", "demo", "--db", db, "--duration", "3",
         "--scenario", "none", "--opcua-port", str(port), "--modbus-port", str(free_tcp_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"OPC UA server on opc.tcp://127.0.0.1:{port}/plantguard" in output
    assert "Traceback" not in output
