"""Hidden dangers (隐患): the lifecycle, its roles and journal, alarms and candidates.

Runs on a real SQLite file and, with ``PLANTGUARD_TEST_POSTGRES_URL`` set, on the
real PostgreSQL server (``store_target``).  Time is controlled: the CLI's and the
lifecycle's clocks are replaced, the rule is evaluated at chosen instants.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from plantguard.alarms import AlarmManager
from plantguard.auth import Principal, Role, UserRecord, hash_password
from plantguard.build import SettingError
from plantguard.cli import main
from plantguard.model import AlarmDefinition, Finding, Point, Priority
from plantguard.records.models import DeviceRecord, MaintenanceRecord
from plantguard.rules import RuleContext
from plantguard.store import Store
from plantguard.store.risk import HazardConflict, JournalEntry, RiskStore
from plantguard.table import ValueTable
from plantguard_risk import cli as risk_cli
from plantguard_risk.candidates import CandidateSettings, find, open_candidates
from plantguard_risk.lifecycle import HazardRefused, Lifecycle
from plantguard_risk.rules import MAJOR, OVERDUE, HazardRule, HazardRuleSettings, HazardRuleType

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC).timestamp()
DAY = 86400.0
OPERATOR = Principal("op1", Role.OPERATOR)
ENGINEER = Principal("eng1", Role.ENGINEER)
VERIFIER = Principal("ver1", Role.ENGINEER)
VIEWER = Principal("view1", Role.VIEWER)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = Store(store_target)
    yield s
    s.close()


@pytest.fixture
def users(store: Store, store_target: str, monkeypatch: pytest.MonkeyPatch) -> str:
    hashed = hash_password("pw")
    for p in (OPERATOR, ENGINEER, VERIFIER, VIEWER):
        store.users.put_user(UserRecord(p.name, p.role, hashed))
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "pw")
    return store_target


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _table() -> ValueTable:
    return ValueTable([])


# --- the lifecycle through the command line ---------------------------------------------


def test_full_lifecycle_through_the_cli(
    users: str, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(risk_cli, "clock", clock)
    db = ["--db", users]
    code, out, err = _cli(capsys, "hazards", "report", "Guard missing on belt", *db, "--as", "op1")
    assert code == 0, err
    hid = out.strip()
    steps = [
        ("assess", "--grade", "major", "--as", "eng1"),
        ("assign", "--measures", "fit guard", "--assignee", "op1", "--deadline", "7d",
         "--funds", "1200", "--as", "eng1"),
        ("rectify", "--done", "guard fitted", "--evidence", "photo-1", "--as", "op1"),
        ("reject", "--reason", "bolts loose", "--as", "ver1"),
        ("rectify", "--done", "bolts torqued", "--as", "op1"),
        ("verify", "--evidence", "photo-2 and check sheet 7", "--as", "ver1"),
    ]  # fmt: skip
    for step in steps:
        clock.now += 3600
        code, out, err = _cli(capsys, "hazards", step[0], hid, *step[1:], *db)
        assert code == 0, err
    assert "closed" in out
    code, out, _ = _cli(capsys, "hazards", "show", hid, *db, "--json")
    shown = json.loads(out)
    hazard = shown["hazard"]
    assert hazard["state"] == "closed"
    assert hazard["grade"] == "major"
    assert hazard["deadline"] == pytest.approx(T0 + 2 * 3600 + 7 * DAY)
    assert hazard["funds"] == 1200
    assert (hazard["rectified_by"], hazard["verified_by"]) == ("op1", "ver1")
    assert hazard["evidence"] == "photo-2 and check sheet 7"
    journal = [(e["action"], e["user"], e["state_before"], e["state_after"], e["time"])
               for e in shown["journal"]]  # fmt: skip
    assert journal == [
        ("report", "op1", "", "reported", T0),
        ("assess", "eng1", "reported", "assessed", T0 + 3600),
        ("assign", "eng1", "assessed", "assigned", T0 + 2 * 3600),
        ("rectify", "op1", "assigned", "rectified", T0 + 3 * 3600),
        ("reject", "ver1", "rectified", "assigned", T0 + 4 * 3600),
        ("rectify", "op1", "assigned", "rectified", T0 + 5 * 3600),
        ("verify", "ver1", "rectified", "closed", T0 + 6 * 3600),
    ]
    assert shown["journal"][4]["comment"] == "bolts loose"
    code, out, _ = _cli(capsys, "hazards", "list", *db)
    assert hid in out
    assert "closed" in out
    code, out, _ = _cli(capsys, "hazards", "list", "--open", *db)
    assert hid not in out
    code, out, _ = _cli(capsys, "hazards", "show", hid, *db)
    assert "已验收销号" in out
    assert "重大隐患" in out


def test_refusals_say_why_and_journal_nothing(
    users: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    risks = RiskStore(store.engine)
    life = Lifecycle(risks, Clock())
    hid = life.report(OPERATOR, "Leaking flange").id
    db = ["--db", users]

    def journal_size() -> int:
        return len(risks.journal(hid))

    before = journal_size()
    # a role not allowed: an operator may not assess (the CLI refuses before anything)
    code, _, err = _cli(capsys, "hazards", "assess", hid, "--grade", "general", *db, "--as", "op1")
    assert code == 1
    assert "needs the engineer role" in err
    with pytest.raises(HazardRefused, match="needs the engineer role"):
        life.assess(OPERATOR, hid, "general")
    with pytest.raises(HazardRefused, match="needs the operator role"):
        life.report(VIEWER, "anything")
    # a transition not allowed from the current state
    code, _, err = _cli(capsys, "hazards", "verify", hid, "--evidence", "x", *db, "--as", "ver1")
    assert code == 1
    assert "is reported: verify needs it rectified" in err
    with pytest.raises(HazardRefused, match="assign needs it assessed"):
        life.assign(ENGINEER, hid, measures="m", assignee="op1", deadline=T0 + DAY)
    # closing one's own rectification
    life.assess(ENGINEER, hid, "general")
    life.assign(ENGINEER, hid, measures="new gasket", assignee="eng1", deadline=T0 + DAY)
    life.rectify(ENGINEER, hid, "gasket replaced")
    before = journal_size()
    code, _, err = _cli(capsys, "hazards", "verify", hid, "--evidence", "x", *db, "--as", "eng1")
    assert code == 1
    assert "eng1 rectified hidden danger" in err
    assert "someone else" in err
    with pytest.raises(HazardRefused, match="may not reject"):
        life.reject(ENGINEER, hid, "no")
    # empty evidence, unknown hidden danger, a wrong password
    code, _, err = _cli(capsys, "hazards", "verify", hid, "--evidence", " ", *db, "--as", "ver1")
    assert code == 2
    assert "evidence must not be empty" in err
    code, _, err = _cli(capsys, "hazards", "assess", "HD-nope", "--grade", "major", *db,
                        "--as", "eng1")  # fmt: skip
    assert code == 2
    assert "unknown hidden danger" in err
    os.environ["PLANTGUARD_PASSWORD"] = "wrong"
    code, _, err = _cli(capsys, "hazards", "verify", hid, "--evidence", "ok", *db, "--as", "ver1")
    assert code == 1
    assert "wrong user name or password" in err
    assert journal_size() == before
    assert risks.hazard(hid).state == "rectified"  # type: ignore[union-attr]


def test_a_stale_transition_is_refused_whole(store: Store) -> None:
    """Two people acting at once: the second finds the state moved and writes nothing."""
    risks = RiskStore(store.engine)
    life = Lifecycle(risks, Clock())
    hid = life.report(OPERATOR, "Loose railing").id
    life.assess(ENGINEER, hid, "general")
    stale = JournalEntry(hid, T0, "assess", "reported", "assessed", "eng2", "", {"grade": "major"})
    with pytest.raises(HazardConflict):
        risks.transition(stale, {"grade": "major"})
    assert risks.hazard(hid).grade == "general"  # type: ignore[union-attr]
    assert [e.action for e in risks.journal(hid)] == ["report", "assess"]


def test_assign_checks_its_values(store: Store) -> None:
    life = Lifecycle(RiskStore(store.engine), Clock())
    hid = life.report(OPERATOR, "Blocked exit").id
    life.assess(ENGINEER, hid, "general")
    with pytest.raises(Exception, match="funds must be a non-negative"):
        life.assign(ENGINEER, hid, measures="clear", assignee="a", deadline=T0, funds=-1)
    with pytest.raises(Exception, match="grade must be general or major"):
        life.assess(ENGINEER, hid, "huge")
    with pytest.raises(Exception, match="the deadline must be a time"):
        life.assign(ENGINEER, hid, measures="clear", assignee="a", deadline=float("nan"))


# --- alarms through the alarm manager ---------------------------------------------------


def _manager(store: Store, rule: HazardRule, clock: Clock) -> AlarmManager:
    return AlarmManager(store, rule.alarms(), clock=clock)


async def test_major_is_an_alarm_at_once_and_overdue_by_grade(store: Store) -> None:
    clock = Clock()
    risks = RiskStore(store.engine)
    life = Lifecycle(risks, clock)
    settings = HazardRuleSettings(check_every=5, candidates=CandidateSettings(enabled=False))
    rule = HazardRule(store, settings)
    manager = _manager(store, rule, clock)
    table = _table()

    async def scan(now: float) -> None:
        clock.now = now
        await manager.apply_findings(rule.evaluate(table, now))

    await scan(T0)
    assert all(not manager.status[a].process_active for a in (MAJOR, *OVERDUE.values()))
    major = life.report(OPERATOR, "Gas detector bypassed").id
    life.assess(ENGINEER, major, "major")
    await scan(T0 + 5)
    status = manager.status[MAJOR]
    assert status.process_active
    assert major in status.message
    assert status.severity == Priority.URGENT
    general = life.report(OPERATOR, "Missing sign").id
    life.assess(ENGINEER, general, "general")
    life.assign(ENGINEER, general, measures="put sign", assignee="op1", deadline=T0 + DAY)
    life.assign(ENGINEER, major, measures="restore", assignee="op1", deadline=T0 + 2 * DAY)
    await scan(T0 + DAY - 1)
    assert not manager.status[OVERDUE["general"]].process_active
    await scan(T0 + DAY + 10)  # past the general deadline
    assert manager.status[OVERDUE["general"]].process_active
    assert manager.status[OVERDUE["general"]].severity == Priority.HIGH
    assert not manager.status[OVERDUE["major"]].process_active
    await scan(T0 + 2 * DAY + 1)
    assert manager.status[OVERDUE["major"]].severity == Priority.URGENT
    # rectified: no longer overdue; verified: the major alarm clears
    life.rectify(OPERATOR, major, "bypass removed")
    life.rectify(OPERATOR, general, "sign fitted")
    await scan(T0 + 2 * DAY + 10)
    assert not manager.status[OVERDUE["major"]].process_active
    assert not manager.status[OVERDUE["general"]].process_active
    assert manager.status[MAJOR].process_active
    life.verify(VERIFIER, major, "site check")
    await scan(T0 + 2 * DAY + 20)
    assert not manager.status[MAJOR].process_active
    activations = [r.alarm_id for r in store.journal() if r.action == "activate"]
    assert activations == [MAJOR, OVERDUE["general"], OVERDUE["major"]]


async def test_rule_checks_at_its_cadence_and_type_wiring(store: Store) -> None:
    rule_type = HazardRuleType()
    assert rule_type.create_site_rule(RuleContext()) is None
    unused = rule_type.create_site_rule(RuleContext(store=store))
    assert isinstance(unused, HazardRule)
    assert unused.alarms() == []  # a store without hidden dangers or risk points: no alarms
    life = Lifecycle(RiskStore(store.engine), Clock())
    life.open_candidate("only a candidate", "rule", "alarm:a:chattering")
    with_candidate = rule_type.create_site_rule(RuleContext(store=store))
    assert with_candidate is not None
    assert with_candidate.alarms() == []
    life.assess(ENGINEER, life.report(OPERATOR, "x").id, "major")
    assert unused.evaluate(_table(), T0) == []
    rule = rule_type.create_site_rule(RuleContext(store=store))
    assert isinstance(rule, HazardRule)
    assert len(rule.alarms()) == 3
    assert [f.alarm_id for f in rule.evaluate(_table(), T0)] == [MAJOR]
    life.assess(ENGINEER, life.report(OPERATOR, "y").id, "major")
    assert rule.evaluate(_table(), T0 + 1) == []  # within check_every
    (finding,) = rule.evaluate(_table(), T0 + 6)
    assert (finding.alarm_id, finding.value) == (MAJOR, 2)
    no_store = rule_type.create(None, _table(), [], RuleContext())  # type: ignore[arg-type]
    assert no_store.evaluate(_table(), T0) == []
    assert len(no_store.alarms()) == 3
    point = Point(id="pump1.level", device_id="pump1")
    with pytest.raises(SettingError, match="not set on points"):
        rule_type.create(None, _table(), [(point, rule_type.config_model())], RuleContext())  # type: ignore[arg-type]
    settings = HazardRuleSettings(major_priority="high")
    configured = rule_type.create(None, _table(), [], RuleContext(site_config=settings))  # type: ignore[arg-type]
    assert {d.id: d.priority for d in configured.alarms()}[MAJOR] == Priority.HIGH


# --- candidates ---------------------------------------------------------------------------


def _device(store: Store) -> None:
    store.records.upsert_devices(
        [DeviceRecord(id="pump1", name="Pump 1", category="pump", area="utilities")],
        user="test",
    )


def test_candidate_from_a_failed_inspection_is_accepted(store: Store) -> None:
    _device(store)
    record = MaintenanceRecord.model_validate(
        {
            "id": "insp-1",
            "device_id": "pump1",
            "kind": "inspection",
            "performed_at": dt.datetime.fromtimestamp(T0 - DAY, dt.UTC),
            "performer": "inspector",
            "work_done": "pressure relief valve sticks",
            "passed": False,
        }
    )
    store.records.add_records([record])
    risks = RiskStore(store.engine)
    clock = Clock()
    life = Lifecycle(risks, clock)
    settings = CandidateSettings()
    opened = open_candidates(store, life, T0, settings)
    assert [(c.state, c.source, c.source_ref, c.device_id) for c in opened] == [
        ("candidate", "inspection", "inspection:insp-1", "pump1")
    ]
    assert open_candidates(store, life, T0 + 60, settings) == []  # not twice
    hid = opened[0].id
    with pytest.raises(HazardRefused, match="needs the engineer role"):
        life.dismiss(OPERATOR, hid, "not a hazard")
    assert life.accept(OPERATOR, hid).state == "reported"
    assert [(e.action, e.user) for e in risks.journal(hid)] == [
        ("candidate", "system"),
        ("accept", "op1"),
    ]


async def test_candidate_from_a_chattering_alarm_is_dismissed(store: Store) -> None:
    definition = AlarmDefinition(
        id="pump1.level.HI", source_id="pump1.level", device_id="pump1", rule="limit"
    )
    clock = Clock()
    manager = AlarmManager(store, [definition], clock=clock)
    for i in range(3):
        t = T0 + 10 * i
        await manager.apply_findings([Finding(definition.id, True, "H", 500, "hi", 9.0, t)])
        await manager.apply_findings([Finding(definition.id, False, "", 0, "ok", 1.0, t + 5)])
    settings = CandidateSettings()
    found = find(store, T0 + 30, settings)
    assert [f.ref for f in found] == ["alarm:pump1.level.HI:chattering"]
    assert find(store, T0 + 200, settings) == []  # older than the window
    life = Lifecycle(RiskStore(store.engine), clock)
    (candidate,) = open_candidates(store, life, T0 + 30, settings)
    assert candidate.point_id == "pump1.level"
    dismissed = life.dismiss(ENGINEER, candidate.id, "sensor wiring, work order raised")
    assert dismissed.state == "dismissed"
    # dismissed: not opened again within reopen_days, opened again after
    assert open_candidates(store, life, T0 + 31, settings) == []
    clock.now = T0 + 8 * DAY
    for i in range(3):
        t = clock.now + 10 * i
        await manager.apply_findings([Finding(definition.id, True, "H", 500, "hi", 9.0, t)])
        await manager.apply_findings([Finding(definition.id, False, "", 0, "ok", 1.0, t + 5)])
    assert len(open_candidates(store, life, clock.now + 30, settings)) == 1


async def test_candidates_from_standing_and_detection_alarms_and_overdue_plans(
    store: Store,
) -> None:
    _device(store)
    standing = AlarmDefinition(id="a.standing", source_id="pump1.t", device_id="pump1", rule="r")
    drift = AlarmDefinition(
        id="a.drift", source_id="pump1.t", device_id="pump1", rule="drift", kind="deviation"
    )
    manager = AlarmManager(store, [standing, drift], clock=Clock())
    await manager.apply_findings(
        [
            Finding(standing.id, True, "H", 500, "hot", 1.0, T0),
            Finding(drift.id, True, "DRIFT", 500, "drift", 1.0, T0),
        ]
    )
    from plantguard.records.models import MaintenancePlan

    plan = MaintenancePlan.model_validate(
        {"id": "p1", "device_id": "pump1", "title": "inspect", "trigger": "calendar",
         "interval": 30, "start": "2026-01-01"}
    )  # fmt: skip
    store.records.upsert_plans([plan])
    settings = CandidateSettings(detection_minutes=30, standing_hours=24)
    refs = {f.ref for f in find(store, T0 + 3600, settings)}
    assert refs == {"alarm:a.drift:detection", "plan:p1:overdue"}
    refs = {f.ref for f in find(store, T0 + 25 * 3600, settings)}
    assert "alarm:a.standing:standing" in refs


# --- crash safety ----------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, time
    import sqlalchemy as sa
    from plantguard.store import Store
    from plantguard.store.risk import JournalEntry, RiskStore
    from plantguard.store.risk_schema import hazards

    store = Store(sys.argv[1])
    hid, mode = sys.argv[2], sys.argv[3]

    @sa.event.listens_for(store.engine, "after_execute")
    def _pause(conn, clause, *args):
        if mode == "mid" and getattr(clause, "table", None) is hazards:
            print("updated", flush=True)
            time.sleep(60)

    entry = JournalEntry(hid, 1.0, "assess", "reported", "assessed", "eng1", "", {"grade": "major"})
    RiskStore(store.engine).transition(entry, {"grade": "major"})
    print("committed", flush=True)
    time.sleep(60)
    """
)


def _crash(target: str, hid: str, mode: str, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD, encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(script), target, hid, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == ("updated" if mode == "mid" else "committed")
    finally:
        child.kill()  # SIGKILL: no cleanup, no rollback from the client
        child.wait(timeout=30)


def test_hazard_journal_survives_a_crash(store_target: str, tmp_path: Path) -> None:
    store = Store(store_target)
    risks = RiskStore(store.engine)
    hid = Lifecycle(risks, Clock()).report(OPERATOR, "Crash test").id
    store.close()
    _crash(store_target, hid, "mid", tmp_path)  # killed between the update and the journal row
    store = Store(store_target)
    risks = RiskStore(store.engine)
    assert risks.hazard(hid).state == "reported"  # type: ignore[union-attr]
    assert [e.action for e in risks.journal(hid)] == ["report"]
    store.close()
    _crash(store_target, hid, "after", tmp_path)  # killed after the commit
    store = Store(store_target)
    risks = RiskStore(store.engine)
    assert risks.hazard(hid).state == "assessed"  # type: ignore[union-attr]
    assert [e.action for e in risks.journal(hid)] == ["report", "assess"]
    store.close()


# --- the report's hazards section ----------------------------------------------------------


def test_report_section_counts_by_grade_and_draws_the_index(store: Store) -> None:
    from plantguard.reports.data import build_report
    from plantguard.reports.render import render_report

    until = T0 + DAY
    plain = build_report(store, period="day", until=until, generated=until)
    assert plain.hazards is None  # a store without the register: no section
    assert "hazards" not in plain.as_dict()
    clock = Clock(T0 - 10 * DAY)
    life = Lifecycle(RiskStore(store.engine), clock)
    old = life.report(OPERATOR, "old, closed in the period").id
    life.assess(ENGINEER, old, "major")
    life.assign(ENGINEER, old, measures="m", assignee="op1", deadline=T0 - 5 * DAY)
    life.rectify(OPERATOR, old, "done")
    clock.now = T0 + 3600  # closed 10 days and an hour after it was reported
    life.verify(VERIFIER, old, "checked")
    late = life.report(OPERATOR, "opened in the period, overdue at its end").id
    life.assess(ENGINEER, late, "general")
    life.assign(ENGINEER, late, measures="m", assignee="op1", deadline=T0 + 7200)
    life.report(OPERATOR, "not assessed")
    life.open_candidate("a candidate", "rule", "alarm:x:chattering")
    keys = store.register_points(
        [Point(id="safety.index", device_id="safety"), Point(id="safety.level", device_id="safety")]
    )
    times = np.array([T0 + 600, T0 + 7200, T0 + 9000])
    store.write_history(
        np.full(3, keys["safety.index"], dtype=np.int64),
        times,
        np.array([12.0, 44.0, 30.0]),
        np.zeros(3, dtype=np.uint8),
    )
    data = build_report(store, period="day", until=until, generated=until)
    assert data.hazards is not None
    shown = data.as_dict()["hazards"]
    assert shown == {
        "opened": {"general": 1, "": 1},
        "closed": {"major": 1},
        "open_now": {"general": 1, "": 1},
        "overdue_now": {"general": 1},
        "candidates": 1,
        "rectification_days": {
            "mean": pytest.approx(10 + 1 / 24),
            "median": pytest.approx(10 + 1 / 24),
            "max": pytest.approx(10 + 1 / 24),
        },
        "risk_points": {},
        "index": {"point": "safety.index", "first": 12.0, "last": 30.0, "min": 12.0, "max": 44.0},
    }
    html = render_report(data, tz=dt.UTC)
    assert 'id="hazards"' in html
    assert "隐患排查治理" in html
    assert "Rectifications are overdue" in html
    assert "12 / 30" in html
    assert "<svg" in html.split('id="hazards"', 1)[1]
