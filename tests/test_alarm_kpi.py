"""Alarm KPIs from the journal, and the ``plantguard alarms`` commands on a real store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from plantguard.alarms import AlarmManager, AlarmStatus, Shelving
from plantguard.auth import (
    DEMO_USERS,
    Role,
    authenticate,
    ensure_users,
    hash_password,
    verify_password,
)
from plantguard.cli import main
from plantguard.kpi import JournalEntry, compute_kpis, parse_duration
from plantguard.model import AlarmDefinition, Finding, Priority
from plantguard.store import Store
from plantguard.store.audit import AuditLog


def test_parse_duration() -> None:
    assert [parse_duration(x) for x in ("90", "90s", "10m", "24h", "7d", "1h30m")] == [
        90, 90, 600, 86400, 604800, 5400,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_kpis_rates_flood_priorities_bad_actors_chattering_stale_lists() -> None:
    j: list[JournalEntry] = []
    # a flood: 12 activations of different alarms within 2 minutes, from t=1000
    j += [JournalEntry(1000 + 10 * i, f"a{i}", "activate") for i in range(12)]
    # a chattering alarm: 3 activations within 60 s
    j += [JournalEntry(3000 + 20 * i, "chatty", "activate") for i in range(3)]
    # shelved activations do not count
    j += [JournalEntry(3500, "quiet", "shelve"), JournalEntry(3600, "quiet", "activate")]
    j += [JournalEntry(3700, "quiet", "unshelve"), JournalEntry(3800, "quiet", "activate")]
    priorities = {"chatty": int(Priority.HIGH)}
    now = 1000 + 3600.0
    statuses = {
        "old": AlarmStatus(
            "old",
            state=AlarmStatus("x").state.__class__("active_acknowledged"),
            active_since=now - 90000,
        ),
        "sh": AlarmStatus("sh", shelving=Shelving.TIMED, shelved_until=now + 60, last_user="erik"),
        "oos": AlarmStatus("oos", out_of_service=True, last_user="erik"),
    }
    r = compute_kpis(j, statuses, priorities, since=1000, until=now)
    assert r.activations == 12 + 3 + 1
    assert r.per_10_min == pytest.approx(16 / 6)
    assert (r.peak_10_min, r.peak_1_min) == (12, 6)
    # >10 in the preceding 10 min from the 11th activation (t=1100) until the 2nd leaves (t=1610)
    assert r.flood_seconds == pytest.approx(510)
    assert r.priority_percent == {"medium": pytest.approx(81.2), "high": pytest.approx(18.8)}
    assert r.bad_actors[0][:2] == ("chatty", 3)
    assert r.chattering == [("chatty", 3)]
    assert [s[0] for s in r.stale] == ["old"]
    assert [s["alarm"] for s in r.shelved] == ["sh"]
    assert r.shelved[0]["by"] == "erik"
    assert [s["alarm"] for s in r.out_of_service] == ["oos"]
    assert json.dumps(r.as_dict())


def test_passwords_are_salted_scrypt_hashes() -> None:
    h1, h2 = hash_password("secret"), hash_password("secret")
    assert h1 != h2
    assert h1.startswith("scrypt$")
    assert "secret" not in h1
    assert verify_password("secret", h1)
    assert not verify_password("Secret", h1)
    assert not verify_password("secret", "garbage")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_list_ack_shelve_journal_kpi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "cli.db")
    store = Store(db)
    assert ensure_users(store.users, DEMO_USERS) == ["viewer", "operator", "engineer"]
    assert ensure_users(store.users, DEMO_USERS) == []
    assert authenticate(store.users, "operator", "operator") is not None
    assert authenticate(store.users, "operator", "wrong") is None
    assert store.users.get_user("engineer").role is Role.ENGINEER  # type: ignore[union-attr]
    definition = AlarmDefinition(
        id="t.level.limit", source_id="t.level", device_id="t", rule="limit"
    )
    manager = AlarmManager(store, [definition])
    now = time.time()
    asyncio.run(
        manager.apply_findings([Finding("t.level.limit", True, "HH", 700, "Level HH", 95.0, now)])
    )
    store.close()

    monkeypatch.setenv("PLANTGUARD_PASSWORD", "viewer")
    code, _, err = run(capsys, "alarms", "ack", "t.level.limit", "--db", db, "--user", "viewer")
    assert code == 1
    assert "may not acknowledge" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "nope")
    code, _, err = run(capsys, "alarms", "ack", "t.level.limit", "--db", db, "--user", "operator")
    assert code == 1
    assert "wrong user name or password" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "operator")
    code, out, _ = run(
        capsys,
        "alarms",
        "ack",
        "t.level.limit",
        "--db",
        db,
        "--user",
        "operator",
        "--comment",
        "on my way",
    )
    assert code == 0
    assert "acknowledge by operator" in out
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "engineer")
    code, out, _ = run(
        capsys,
        "alarms",
        "shelve",
        "t.level.limit",
        "--db",
        db,
        "--user",
        "engineer",
        "--for",
        "30m",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["shelving"] == "timed"

    code, out, _ = run(capsys, "alarms", "list", "--db", db, "--json")
    [status] = json.loads(out)
    assert (status["state"], status["shelving"], status["last_user"]) == (
        "active_acknowledged",
        "timed",
        "engineer",
    )
    code, out, _ = run(capsys, "alarms", "--db", db)  # the old form still lists
    assert "t.level.limit" in out
    assert "shelved(timed)" in out
    code, out, _ = run(capsys, "alarms", "journal", "--db", db, "--json")
    entries: list[dict[str, Any]] = json.loads(out)
    assert [(e["action"], e["user"], e["comment"]) for e in entries] == [
        ("activate", "", ""),
        ("acknowledge", "operator", "on my way"),
        ("shelve", "engineer", ""),
    ]
    assert entries[1]["transition"] == "active_unacknowledged -> active_acknowledged"
    assert entries[0]["time"].endswith("+00:00")
    code, out, _ = run(capsys, "alarms", "kpi", "--db", db, "--since", "1h", "--json")
    kpi = json.loads(out)
    assert kpi["activations"] == 1
    assert kpi["shelved"][0]["alarm"] == "t.level.limit"
    code, out, _ = run(capsys, "alarms", "kpi", "--db", db, "--since", "1h")
    assert "alarms per 10 min" in out
    assert "t.level.limit" in out


def test_cli_users_add_list_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "users.db")
    Store(db).close()  # `plantguard db init`: users add creates no store
    # The first administrator of a store needs nobody's word; every change after it does.
    monkeypatch.setenv("PLANTGUARD_NEW_PASSWORD", "root-pw")
    assert run(capsys, "users", "add", "root", "--role", "admin", "--db", db)[0] == 0
    monkeypatch.setenv("PLANTGUARD_NEW_PASSWORD", "s3cret")
    code, _, err = run(capsys, "users", "add", "li", "--role", "engineer", "--db", db)
    assert code == 1
    assert "needs --as NAME (a admin or above)" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "root-pw")
    add = ("users", "add", "li", "--role", "engineer", "--db", db, "--as", "root")
    assert run(capsys, *add)[0] == 0
    assert run(capsys, "users", "list", "--db", db)[1].split() == [
        "li",
        "engineer",
        "root",
        "admin",
    ]
    store = Store(db)
    principal = authenticate(store.users, "li", "s3cret")
    store.close()
    assert principal is not None
    assert principal.role is Role.ENGINEER
    # An engineer may not manage users; a wrong password is refused.
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "s3cret")
    code, _, err = run(capsys, "users", "remove", "root", "--db", db, "--as", "li")
    assert code == 1
    assert "li (engineer) may not remove users: it needs the admin role" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "wrong")
    assert run(capsys, "users", "remove", "li", "--db", db, "--as", "root")[0] == 1
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "root-pw")
    assert run(capsys, "users", "remove", "li", "--db", db, "--as", "root")[0] == 0
    assert run(capsys, "users", "remove", "li", "--db", db, "--as", "root")[0] == 1
    store = Store(db)
    entries = AuditLog(store.engine).entries()
    store.close()
    assert [(e.user, e.action, e.target) for e in entries] == [
        ("(first administrator)", "users.add", "root"),
        ("root", "users.add", "li"),
        ("root", "users.remove", "li"),
    ]


def test_alarm_list_columns_fit_long_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "long.db")
    store = Store(db)
    long_id = "boilerhouse_feedwater_pump_2.discharge_pressure.limit"
    store.define_alarms(
        [
            AlarmDefinition(id="t.level.limit", source_id="t.level", device_id="t", rule="limit"),
            AlarmDefinition(
                id=long_id,
                source_id="boilerhouse_feedwater_pump_2.discharge_pressure",
                device_id="boilerhouse_feedwater_pump_2",
                rule="limit",
            ),
        ]
    )
    store.close()
    code, out, _ = run(capsys, "alarms", "list", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    # The state column starts at the same place on every line, after the longest id.
    assert {line.index("normal") for line in lines} == {len(long_id) + 2}
