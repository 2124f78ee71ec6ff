"""Offline commands act in somebody's name, and the demo keeps out of real stores.

Found: while the gateway held the lease, ``users add --role admin``, ``users remove``,
``devices import`` and ``maintenance record`` succeeded with no credential, and
``plantguard demo --db <a real store>`` silently added the demo users (passwords
equal to their names) to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plantguard.auth import DEMO_USERS, Role, UserRecord, ensure_users, hash_password
from plantguard.cli import main
from plantguard.cli.common import demo_site_text
from plantguard.cli.serve import _not_a_demo_store
from plantguard.config import LoadedSite, parse_site
from plantguard.host import PluginHost
from plantguard.model import Point
from plantguard.store import Store
from plantguard.store.audit import AuditLog
from plantguard.testing import free_tcp_port


@pytest.fixture(scope="module")
def demo_site() -> LoadedSite:
    host = PluginHost()
    host.load_entry_points()
    host.start()
    text = demo_site_text(opcua_port=4840, modbus_port=5020, db="demo.db", scenario="none")
    return parse_site(text, "<demo>", host)


def _demo(db: Path) -> int:
    return main(
        [
            "demo", "--db", str(db), "--duration", "1", "--quiet",
            "--opcua-port", str(free_tcp_port()), "--modbus-port", str(free_tcp_port()),
        ]
    )  # fmt: skip


def test_demo_refuses_a_store_with_real_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "plant.db"
    store = Store(str(db))
    store.users.put_user(UserRecord("li.wei", Role.ADMIN, hash_password("secret")))
    store.close()
    assert _demo(db) == 1
    err = capsys.readouterr().err
    assert "it holds users of a real site (li.wei)" in err
    assert "give the demo its own --db" in err
    store = Store(str(db))
    assert [u.name for u in store.users.list_users()] == ["li.wei"]  # nothing added
    store.close()


def test_demo_refuses_a_demo_user_name_with_a_real_password(
    tmp_path: Path, demo_site: LoadedSite
) -> None:
    store = Store(str(tmp_path / "plant.db"))
    store.users.put_user(UserRecord("operator", Role.OPERATOR, hash_password("not-the-name")))
    assert _not_a_demo_store(store, demo_site) == "its user 'operator' has a password of its own"
    store.close()


def test_demo_refuses_another_sites_points(tmp_path: Path, demo_site: LoadedSite) -> None:
    store = Store(str(tmp_path / "plant.db"))
    store.register_points([Point(id="boiler9.pressure", device_id="boiler9", name="P")])
    refusal = _not_a_demo_store(store, demo_site)
    assert refusal == "it holds another site's points (boiler9.pressure)"
    store.close()


def test_a_new_or_demo_store_is_the_demos(tmp_path: Path, demo_site: LoadedSite) -> None:
    store = Store(str(tmp_path / "demo.db"))
    assert _not_a_demo_store(store, demo_site) is None
    ensure_users(store.users, DEMO_USERS)
    store.register_points(demo_site.site.points)
    assert _not_a_demo_store(store, demo_site) is None
    store.close()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_records_are_written_only_in_a_named_users_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "plant.db")
    store = Store(db)
    for name, role in (("li", Role.OPERATOR), ("wang", Role.VIEWER), ("zhao", Role.ENGINEER)):
        store.users.put_user(UserRecord(name, role, hash_password(f"{name}-pw")))
    store.close()
    devices = tmp_path / "devices.csv"
    devices.write_text("id,name,category\npump7,Feed pump 7,pump\n", encoding="utf-8")
    record = ("maintenance", "record", "--db", db, "--device", "pump7", "--performer", "Li Wei")

    # No name, a viewer, a wrong password: refused, nothing written.
    code, err = _cli(capsys, "devices", "import", str(devices), "--db", db)
    assert (code, err.strip()) == (
        1,
        "plantguard: say who you are: import devices needs --as NAME (a engineer or above)",
    )
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "li-pw")
    code, err = _cli(capsys, "devices", "import", str(devices), "--db", db, "--as", "li")
    assert code == 1
    assert "li (operator) may not import devices: it needs the engineer role" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "zhao-pw")
    assert _cli(capsys, "devices", "import", str(devices), "--db", db, "--as", "zhao")[0] == 0

    monkeypatch.setenv("PLANTGUARD_PASSWORD", "wang-pw")
    code, err = _cli(capsys, *record, "--as", "wang")
    assert "wang (viewer) may not record maintenance: it needs the operator role" in err
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "not-li")
    assert _cli(capsys, *record, "--as", "li") == (1, "plantguard: wrong user name or password\n")
    monkeypatch.setenv("PLANTGUARD_PASSWORD", "li-pw")
    assert _cli(capsys, *record, "--as", "li", "--id", "r-1")[0] == 0

    store = Store(db)
    entries = AuditLog(store.engine).entries()
    records = store.records.records(device_id="pump7")
    store.close()
    assert [r.id for r in records] == ["r-1"]
    assert [(e.user, e.action, e.target) for e in entries] == [
        ("zhao", "devices.import", str(devices)),
        ("li", "maintenance.record", "r-1"),
    ]
