"""The records commands as an engineer uses them: import, export, show, record, due."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import ACTOR, add_actor, as_actor

from plantguard.cli import main
from plantguard.cli.records import SCHEMA_FILES, schema_of

DEVICES_CSV = """id,name,category,manufacturer,model,serial_number,area,commissioned,safety_critical,rated
pump7,Feed pump 7,pump,Acme,CP-200,CP-7,utilities,2024-03-01,true,power_kw=11; speed_rpm=2950
tank3,Tank 3,tank,Steelworks,T-50,T-3,storage,,false,
"""

PLANS_JSON = {
    "format": "plantguard/maintenance-plans",
    "version": 1,
    "items": [
        {"id": "pump7-grease", "device_id": "pump7", "title": "Grease bearings", "trigger": "calendar",
         "interval": 30, "lead": 7, "start": "2026-01-01"},
        {"id": "tank3-inspect", "device_id": "tank3", "kind": "inspection", "title": "Wall thickness",
         "trigger": "calendar", "interval": 365, "start": "2099-01-01"},
    ],
}  # fmt: skip


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    target = str(tmp_path / "records.db")
    add_actor(target, monkeypatch)
    return target


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(as_actor(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_import_list_show_export(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text(DEVICES_CSV, encoding="utf-8")
    assert _run(capsys, "devices", "import", str(csv_file), "--db", db)[0] == 0
    code, out, _ = _run(capsys, "devices", "list", "--db", db)
    assert code == 0
    assert out.splitlines()[1].split()[:3] == ["pump7", "pump", "in_service"]
    code, out, _ = _run(capsys, "devices", "show", "pump7", "--db", db, "--json")
    shown = json.loads(out)
    assert shown["device"]["rated"] == {"power_kw": 11.0, "speed_rpm": 2950.0}
    assert {
        "user": ACTOR,
        "field": "serial_number",
        "old": None,
        "new": "CP-7",
    }.items() <= {
        k: v for c in shown["changes"] if c["field"] == "serial_number" for k, v in c.items()
    }.items()
    out_file = tmp_path / "export.json"
    assert _run(capsys, "devices", "export", "--db", db, "--output", str(out_file))[0] == 0
    exported = json.loads(out_file.read_text(encoding="utf-8"))
    assert exported["format"] == "plantguard/devices"
    assert [d["id"] for d in exported["items"]] == ["pump7", "tank3"]
    code, out, _ = _run(capsys, "devices", "export", "--db", db, "--format", "csv")
    assert out.splitlines()[1].startswith("pump7,Feed pump 7,pump,Acme,CP-200,CP-7")
    code, _, err = _run(capsys, "devices", "show", "pump", "--db", db)
    assert code == 2  # an unknown id is a bad argument, with close matches
    assert "unknown device 'pump' (did you mean pump7?)" in err


def test_maintenance_plans_record_due(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "devices.csv").write_text(DEVICES_CSV, encoding="utf-8")
    (tmp_path / "plans.json").write_text(json.dumps(PLANS_JSON), encoding="utf-8")
    _run(capsys, "devices", "import", str(tmp_path / "devices.csv"), "--db", db)
    code, out, _ = _run(
        capsys, "maintenance", "import", str(tmp_path / "plans.json"), "--kind", "plans", "--db", db
    )
    assert (code, out.strip()) == (0, f"imported 2 plans from {tmp_path / 'plans.json'}")

    code, out, _ = _run(
        capsys, "maintenance", "due", "--db", db, "--at", "2025-12-28T00:00:00+00:00", "--json"
    )
    due = json.loads(out)
    assert [(d["plan"], d["state"]) for d in due] == [("pump7-grease", "due_soon")]
    assert due[0]["remaining"] == pytest.approx(4.0)

    code, out, _ = _run(
        capsys, "maintenance", "record", "--db", db, "--device", "pump7", "--plan", "pump7-grease",
        "--performer", "Li Wei", "--at", "2026-01-02T09:00:00+08:00", "--work", "greased",
        "--measurement", "bearing_temp=41.5 °C", "--part", "grease LGHP2", "--id", "r-1",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "recorded r-1 for pump7 (plan pump7-grease)")
    code, out, _ = _run(
        capsys, "maintenance", "due", "--db", db, "--at", "2026-01-10T00:00:00+00:00"
    )
    assert out.strip() == "nothing due"
    # Done on 2026-01-02, every 30 days: 10 days overdue on 2026-02-11 (not "-10d left").
    code, out, _ = _run(
        capsys, "maintenance", "due", "--db", db, "--at", "2026-02-11T01:00:00+00:00"
    )
    assert "overdue by 10d" in out
    assert "left" not in out
    code, out, _ = _run(capsys, "maintenance", "export", "--db", db, "--format", "csv")
    _, row = out.splitlines()
    assert "bearing_temp=41.5 °C" in row
    assert "2026-01-02T01:00:00Z" in row  # stored and exchanged in UTC

    code, _, err = _run(
        capsys, "maintenance", "record", "--db", db, "--device", "ghost", "--performer", "x"
    )
    assert code == 2
    assert "unknown device 'ghost'" in err


def test_bad_import_names_row_and_field_and_changes_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "devices.csv").write_text(DEVICES_CSV, encoding="utf-8")
    _run(capsys, "devices", "import", str(tmp_path / "devices.csv"), "--db", db)
    bad = DEVICES_CSV.replace("tank3,Tank 3,tank", "tank3,Tank 3,tank").replace("false,", "maybe,")
    bad += "new1,New,pump,,,,,,,\n"
    (tmp_path / "bad.csv").write_text(bad, encoding="utf-8")
    code, _, err = _run(capsys, "devices", "import", str(tmp_path / "bad.csv"), "--db", db)
    assert code == 2
    assert f"{tmp_path / 'bad.csv'}: row 3: safety_critical: Input should be a valid boolean" in err
    assert "nothing was imported" in err
    code, out, _ = _run(capsys, "devices", "list", "--db", db, "--json")
    assert [d["id"] for d in json.loads(out)] == ["pump7", "tank3"]  # new1 not half-imported


def test_published_schemas_are_current() -> None:
    """docs/schemas is what `plantguard schemas` generates; regenerate after model changes."""
    root = Path(__file__).resolve().parent.parent / "docs" / "schemas"
    for kind, name in SCHEMA_FILES.items():
        assert json.loads((root / name).read_text(encoding="utf-8")) == schema_of(kind), name


def test_exported_documents_validate_against_the_published_schema(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "devices.csv").write_text(DEVICES_CSV, encoding="utf-8")
    _run(capsys, "devices", "import", str(tmp_path / "devices.csv"), "--db", db)
    _, out, _ = _run(capsys, "devices", "export", "--db", db)
    jsonschema.validate(json.loads(out), schema_of("devices"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"format": "plantguard/devices", "items": [{"id": "1bad"}]}, schema_of("devices")
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "1000000d"), "duration must be positive and at most 100 years"),
        (("--until", "9999-12-31T23:59:59-14:00"), "is outside 1970-2199"),
        (("--until", "0001-01-01T00:00:00+14:00"), "is outside 1970-2199"),
    ],
)
def test_stats_refuses_periods_outside_the_calendar(
    db: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["stats", "--db", db, *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
