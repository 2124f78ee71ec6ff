"""The risk register (安全风险分级管控): grading, import/export validated whole, change history.

Runs on a real SQLite file and, with ``PLANTGUARD_TEST_POSTGRES_URL`` set, on the
real PostgreSQL server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from plantguard.auth import Principal, Role, UserRecord, hash_password
from plantguard.cli import main
from plantguard.records.models import DeviceRecord, MaintenancePlan
from plantguard.store import Store
from plantguard.store.risk import RiskStore
from plantguard_risk import cli as risk_cli
from plantguard_risk.exchange import SCHEMA_FILES, schema_of
from plantguard_risk.grading import assess, grade_of
from plantguard_risk.lifecycle import Lifecycle

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_790_000_000.0

RISKS: dict[str, Any] = {
    "format": "plantguard/risk-points",
    "version": 1,
    "items": [
        {"id": "R-boiler", "name": "Boiler overpressure", "area": "utilities",
         "device_id": "boiler1", "hazards": ["explosion", "scalding"], "method": "lec",
         "factors": {"L": 3, "E": 6, "C": 40}, "grade": "red",
         "measures": ["relief valve tested yearly", "pressure interlock"], "level": "company",
         "responsible": "Wang Wei", "plans": ["boiler1-valve"]},
        {"id": "R-forklift", "name": "Forklift traffic", "area": "utilities",
         "hazards": ["collision"], "method": "matrix", "factors": {"L": 3, "S": 4},
         "measures": ["marked walkways"], "level": "team", "responsible": "Li Na"},
    ],
}  # fmt: skip


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = Store(store_target)
    s.records.upsert_devices(
        [DeviceRecord(id="boiler1", name="Boiler", category="boiler", area="utilities")],
        user="test",
    )
    plan = MaintenancePlan.model_validate(
        {"id": "boiler1-valve", "device_id": "boiler1", "kind": "inspection",
         "title": "relief valve test", "trigger": "calendar", "interval": 365,
         "start": "2026-01-01"}
    )  # fmt: skip
    s.records.upsert_plans([plan])
    hashed = hash_password("pw")
    s.users.put_user(UserRecord("eng1", Role.ENGINEER, hashed))
    s.users.put_user(UserRecord("op1", Role.OPERATOR, hashed))
    yield s
    s.close()


@pytest.fixture
def db(store: Store, store_target: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "pw")
    return ["--db", store_target]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _file(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("method", "factors", "score", "grade"),
    [
        ("lec", {"L": 3, "E": 6, "C": 40}, 720, "red"),
        ("lec", {"L": 1, "E": 8, "C": 40}, 320, "orange"),  # bounds are exclusive
        ("lec", {"L": 6, "E": 3, "C": 15}, 270, "orange"),
        ("lec", {"L": 1, "E": 2, "C": 80}, 160, "yellow"),
        ("lec", {"L": 1, "E": 7, "C": 10}, 70, "blue"),
        ("matrix", {"L": 4, "S": 5}, 20, "red"),
        ("matrix", {"L": 3, "S": 5}, 15, "orange"),
        ("matrix", {"L": 3, "S": 3}, 9, "yellow"),
        ("matrix", {"L": 2, "S": 4}, 8, "blue"),
    ],
)
def test_assessment_and_four_colours(
    method: str, factors: dict[str, float], score: float, grade: str
) -> None:
    assert assess(method, factors) == (score, grade)  # type: ignore[arg-type]
    assert grade_of(method, score) == grade  # type: ignore[arg-type]


def test_assessment_refuses_bad_factors() -> None:
    with pytest.raises(ValueError, match="missing C"):
        assess("lec", {"L": 1, "E": 1})
    with pytest.raises(ValueError, match="unknown X"):
        assess("matrix", {"L": 1, "S": 1, "X": 2})
    with pytest.raises(ValueError, match="factor S = 6 is outside 1–5"):
        assess("matrix", {"L": 1, "S": 6})


def test_import_list_show_change_history_export(
    db: list[str], store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "risks.json", RISKS)
    code, out, err = _cli(capsys, "risks", "import", path, *db, "--as", "eng1")
    assert (code, out.strip()) == (0, "imported 2 risk points"), err
    code, out, _ = _cli(capsys, "risks", "list", *db, "--json")
    listed = {r["id"]: r for r in json.loads(out)}
    assert listed["R-boiler"]["score"] == 720
    assert listed["R-boiler"]["grade"] == "red"
    assert listed["R-forklift"]["score"] == 12
    assert listed["R-forklift"]["grade"] == "yellow"
    assert listed["R-boiler"]["plans"] == ["boiler1-valve"]
    # a second import changes the assessment: the change history keeps who and what
    changed = json.loads(json.dumps(RISKS))
    changed["items"][0]["factors"] = {"L": 1, "E": 6, "C": 40}
    changed["items"][0]["grade"] = "orange"
    path = _file(tmp_path, "risks2.json", changed)
    assert _cli(capsys, "risks", "import", path, *db, "--as", "eng1")[0] == 0
    code, out, _ = _cli(capsys, "risks", "show", "R-boiler", *db, "--json")
    shown = json.loads(out)
    fields = [(c["field"], c["user"], c["old"], c["new"]) for c in shown["changes"]]
    assert fields[0] == ("created", "eng1", None, "Boiler overpressure")
    assert ("grade", "eng1", "red", "orange") in fields
    assert ("score", "eng1", "720.0", "240.0") in fields
    assert shown["risk"]["grade"] == "orange"
    code, out, _ = _cli(capsys, "risks", "show", "R-boiler", *db)
    assert "较大风险" in out
    assert "relief valve tested yearly" in out
    code, out, _ = _cli(capsys, "risks", "list", *db)
    assert out.splitlines()[1].split()[:2] == ["R-boiler", "orange"]
    # CSV round trip: export, import into the same store changes nothing
    csv_path = tmp_path / "risks.csv"
    assert (
        _cli(capsys, "risks", "export", "--format", "csv", "--output", str(csv_path), *db)[0] == 0
    )
    before = len(RiskStore(store.engine).risk_changes("R-boiler"))
    assert _cli(capsys, "risks", "import", str(csv_path), *db, "--as", "eng1")[0] == 0
    assert len(RiskStore(store.engine).risk_changes("R-boiler")) == before
    code, out, _ = _cli(capsys, "risks", "export", *db)
    document = json.loads(out)
    jsonschema.validate(document, json.loads(schema_of("risks")))
    assert [i["id"] for i in document["items"]] == ["R-boiler", "R-forklift"]


def test_a_bad_import_is_refused_whole_with_every_problem(
    db: list[str], store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.loads(json.dumps(RISKS))
    bad["items"][0]["device_id"] = "boiler9"
    bad["items"][0]["plans"] = ["nope"]
    bad["items"][1]["factors"] = {"L": 3, "S": 9}
    bad["items"].append({**bad["items"][1], "factors": {"L": 3, "S": 4}, "grade": "red"})
    bad["items"].append({"id": "R-x", "name": "nowhere", "method": "lec",
                         "factors": {"L": 1, "E": 1, "C": 1}})  # fmt: skip
    path = _file(tmp_path, "bad.json", bad)
    code, _, err = _cli(capsys, "risks", "import", path, *db, "--as", "eng1")
    assert code == 2
    assert "items[0]: device_id: unknown device 'boiler9'" in err
    assert "items[0]: plans: unknown maintenance plan 'nope'" in err
    assert "items[1]: factor S = 9 is outside 1–5" in err
    assert "items[2]: grade red does not match the assessment (yellow)" in err
    assert "items[3]: a risk point needs an area, a device or a point" in err
    assert "nothing was imported" in err
    assert RiskStore(store.engine).risks() == []
    csv_text = "id,name,area,method,factors,colour\nR1,x,utilities,lec,L=1; E=1; C=1,red\n"
    code, _, err = _cli(capsys, "risks", "import", _file(tmp_path, "b.csv", csv_text), *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    assert "row 1: colour: unknown column" in err
    csv_text = "id,name,area,method,factors\nR1,x,utilities,lec,L=1; E=1; C=1\nR1,y,utilities,lec,L=1; E=1; C=1\n"
    code, _, err = _cli(capsys, "risks", "import", _file(tmp_path, "c.csv", csv_text), *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    assert "row 3: id: 'R1' is also at row 2" in err
    for text, message in [
        ("{", "not JSON"),
        ('{"format": "plantguard/devices", "items": []}', "expected 'plantguard/risk-points'"),
        ('{"format": "plantguard/risk-points", "version": 2, "items": []}', "version 1"),
        ('{"format": "plantguard/risk-points", "version": 1, "items": {}}', "expected a list"),
    ]:
        code, _, err = _cli(capsys, "risks", "import", _file(tmp_path, "d.json", text), *db,
                            "--as", "eng1")  # fmt: skip
        assert code == 2
        assert message in err
    (tmp_path / "latin.json").write_bytes(b"\xff\xfe")
    code, _, err = _cli(capsys, "risks", "import", str(tmp_path / "latin.json"), *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    assert "not UTF-8" in err
    code, _, err = _cli(capsys, "risks", "import", str(tmp_path / "missing.json"), *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    # an operator may not change the register
    code, _, err = _cli(capsys, "risks", "import", _file(tmp_path, "r.json", RISKS), *db,
                        "--as", "op1")  # fmt: skip
    assert code == 1
    assert "needs the engineer role" in err
    assert RiskStore(store.engine).risks() == []
    code, _, err = _cli(capsys, "risks", "show", "R-none", *db)
    assert code == 2
    assert "unknown risk point" in err


def test_hazards_export_import_round_trip_with_references_checked(
    db: list[str],
    store: Store,
    tmp_path: Path,
    *,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(risk_cli, "clock", lambda: T0)
    assert (
        _cli(capsys, "risks", "import", _file(tmp_path, "r.json", RISKS), *db, "--as", "eng1")[0]
        == 0
    )
    life = Lifecycle(RiskStore(store.engine), lambda: T0)
    op, eng = Principal("op1", Role.OPERATOR), Principal("eng1", Role.ENGINEER)
    hid = life.report(op, "Relief valve corroded", risk_id="R-boiler", device_id="boiler1").id
    life.assess(eng, hid, "major")
    life.assign(eng, hid, measures="replace valve", assignee="op1", deadline=T0 + 86400, funds=800)
    code, out, _ = _cli(capsys, "hazards", "export", *db)
    document = json.loads(out)
    jsonschema.validate(document, json.loads(schema_of("hazards")))
    (item,) = document["items"]
    assert item["deadline"].endswith("Z") or item["deadline"].endswith("+00:00")
    # import into the same store: the id is taken
    path = _file(tmp_path, "h.json", document)
    code, _, err = _cli(capsys, "hazards", "import", path, *db, "--as", "eng1")
    assert code == 2
    assert "already in the store" in err
    # a new id imports, journalled as an import by the acting user
    document["items"][0]["id"] = "HD-imported-1"
    path = _file(tmp_path, "h2.json", document)
    code, out, err = _cli(capsys, "hazards", "import", path, *db, "--as", "eng1")
    assert code == 0, err
    risks = RiskStore(store.engine)
    imported = risks.hazard("HD-imported-1")
    assert imported is not None
    assert imported.deadline == T0 + 86400
    assert imported.funds == 800
    assert [(e.action, e.user, e.state_after) for e in risks.journal("HD-imported-1")] == [
        ("import", "eng1", "assigned")
    ]
    # CSV export and a bad import: unknown risk point, inconsistent states
    csv_path = tmp_path / "h.csv"
    assert (
        _cli(capsys, "hazards", "export", "--format", "csv", "--output", str(csv_path), *db)[0] == 0
    )
    assert "HD-imported-1" in csv_path.read_text(encoding="utf-8")
    bad = json.loads(json.dumps(document))
    bad["items"][0].update(id="HD-bad", risk_id="R-none")
    bad["items"].append({**document["items"][0], "id": "HD-bad2", "state": "closed"})
    bad["items"].append(
        {**document["items"][0], "id": "HD-bad3", "reported_at": "2026-01-01T00:00:00"}
    )
    code, _, err = _cli(capsys, "hazards", "import", _file(tmp_path, "bad.json", bad), *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    assert "items[0]: risk_id: unknown risk point 'R-none'" in err
    assert "items[1]: a closed hidden danger needs verified_by, evidence and closed_at" in err
    assert "items[2]: reported_at needs a time zone" in err
    assert risks.hazard("HD-bad") is None
    # reporting checks references too
    code, _, err = _cli(capsys, "hazards", "report", "x", "--risk", "R-none", *db, "--as", "op1")
    assert code == 2
    assert "unknown risk point 'R-none'" in err
    # a near miss is named, as for every unknown id
    code, _, err = _cli(capsys, "risks", "show", "R-boilr", *db)
    assert code == 2
    assert "unknown risk point 'R-boilr' (did you mean R-boiler?)" in err


def test_published_schemas_are_current() -> None:
    for kind, name in SCHEMA_FILES.items():
        assert (ROOT / "docs" / "schemas" / name).read_text(encoding="utf-8") == schema_of(kind)


def test_schemas_command_writes_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(capsys, "risks", "schemas", "--output", str(tmp_path))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SCHEMA_FILES.values())
