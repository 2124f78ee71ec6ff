"""Device records in the store: migrations, change history, exchange round trips,
all-or-nothing imports — on SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from plantguard.records.exchange import FileFormat, RecordImportError, dumps, loads
from plantguard.records.models import (
    DeviceRecord,
    MaintenancePlan,
    MaintenanceRecord,
    Measurement,
)
from plantguard.store import Store, migrate
from plantguard.store.schema import metadata

T0 = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC)
TABLES = {
    "points", "history", "alarms", "alarm_journal", "devices", "device_changes",
    "connection_events", "maintenance_plans", "maintenance_records",
}  # fmt: skip


def _devices(n: int = 3) -> list[DeviceRecord]:
    return [
        DeviceRecord(
            id=f"dev{i}",
            name=f"Pump {i}",
            category="pump" if i % 2 else "tank",
            manufacturer="Acme 泵业",
            serial_number=f"SN-{i:04d}",
            firmware_version="1.0.0",
            area="utilities",
            commissioned=dt.date(2020, 1, 1 + i),
            safety_critical=bool(i % 2),
            rated={"power_kw": 11.0 + i},
        )
        for i in range(n)
    ]


def _plans() -> list[MaintenancePlan]:
    return [
        MaintenancePlan(id="p-cal", device_id="dev0", title="Lubricate bearings", trigger="calendar", interval=30, lead=5),
        MaintenancePlan(id="p-insp", device_id="dev1", kind="inspection", title="Pressure test", trigger="calendar", interval=365, lead=30),
    ]  # fmt: skip


def _records(n: int, seed: int = 7) -> list[MaintenanceRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        inspection = i % 3 == 0
        out.append(
            MaintenanceRecord(
                id=f"r{i:05d}",
                device_id=f"dev{i % 2}",
                plan_id="p-insp" if inspection else ("p-cal" if i % 3 == 1 else None),
                kind="inspection" if inspection else "maintenance",
                performed_at=T0 + dt.timedelta(minutes=37 * i, microseconds=rng.randrange(1_000_000)),
                performer=rng.choice(["Li Wei", "J. Smith", "王芳"]),
                work_done=rng.choice(["", "greased, checked seals", 'replaced "O" ring, torqued 25 Nm']),
                result=rng.choice(["completed", "completed", "partial"]),
                passed=(rng.random() > 0.1) if inspection else None,
                certificate_number=f"CERT-{i}" if inspection else "",
                measurements=tuple(
                    Measurement(name=f"m{k}", value=round(rng.uniform(-5, 500), rng.randrange(0, 7)), unit=rng.choice(["", "bar", "°C"]))
                    for k in range(rng.randrange(0, 3))
                ),
                parts=tuple(rng.sample(["seal kit", "bearing 6205", "filter"], rng.randrange(0, 3))),
                meter_reading=rng.choice([None, rng.uniform(0, 1e5)]),
                next_due=rng.choice([None, dt.date(2027, 1, 1)]),
                attachments=("doc:QA-17",) if i % 7 == 0 else (),
            )
        )  # fmt: skip
    return out


def _seed(store: Store) -> None:
    store.records.upsert_devices(_devices(), user="test")
    store.records.upsert_plans(_plans())


def test_migrations_up_and_down(store_target: str) -> None:
    store = Store(store_target)
    try:
        assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        migrate.downgrade(store.engine)
        assert set(sa.inspect(store.engine).get_table_names()) == {"alembic_version"}
        migrate.upgrade(store.engine)
        assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
    finally:
        store.close()


def test_device_changes_are_journalled_with_user(store_target: str) -> None:
    store = Store(store_target)
    try:
        store.records.upsert_devices(_devices(1), user="alice", now=T0)
        changed = DeviceRecord.model_validate(
            {
                **_devices(1)[0].model_dump(),
                "firmware_version": "1.1.0",
                "status": "under_maintenance",
            }
        )
        assert (
            store.records.upsert_devices([changed], user="bob", now=T0 + dt.timedelta(hours=1)) == 2
        )
        assert store.records.upsert_devices([changed], user="bob") == 0  # no change, no entry
        assert store.records.device("dev0") == changed
        history = store.records.device_changes("dev0")
        later = [(c.user, c.field, c.old, c.new) for c in history if c.user == "bob"]
        assert later == [
            ("bob", "firmware_version", "1.0.0", "1.1.0"),
            ("bob", "status", "in_service", "under_maintenance"),
        ]
        first = {c.field: (c.old, c.new) for c in history if c.user == "alice"}
        assert first["serial_number"] == (None, "SN-0000")
        assert history[-1].time == T0 + dt.timedelta(hours=1)
    finally:
        store.close()


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_round_trip_of_10000_records(store_target: str, tmp_path: Path, fmt: FileFormat) -> None:
    records = _records(10_000)
    source, target = Store(store_target), None
    try:
        _seed(source)
        source.records.add_records(records)
        exported = dumps("records", source.records.records(), fmt)
        assert source.records.records() == sorted(records, key=lambda r: (r.performed_at, r.id))
        target = Store(str(tmp_path) + f"/target-{fmt}.db")
        _seed(target)
        items = loads(
            "records",
            exported,
            fmt,
            "export",
            known_devices=["dev0", "dev1", "dev2"],
            known_plans=["p-cal", "p-insp"],
        )
        target.records.add_records(items)
        assert target.records.records() == source.records.records()
        assert dumps("records", target.records.records(), fmt) == exported
    finally:
        source.close()
        if target is not None:
            target.close()


def test_bad_csv_row_rejects_the_whole_file(store_target: str) -> None:
    store = Store(store_target)
    try:
        _seed(store)
        store.records.add_records(_records(5))
        text = dumps("records", _records(40, seed=1), "csv")
        lines = text.splitlines()
        header = lines[0].split(",")
        bad = lines[17].split(",")  # spreadsheet row 18
        bad[header.index("performed_at")] = "2026-13-01T00:00:00+00:00"
        lines[17] = ",".join(bad)
        with pytest.raises(RecordImportError) as info:
            loads(
                "records",
                "\n".join(lines) + "\n",
                "csv",
                "records.csv",
                known_devices=["dev0", "dev1"],
                known_plans=["p-cal", "p-insp"],
            )
        assert [(i.where, i.field) for i in info.value.issues] == [("row 18", "performed_at")]
        assert str(info.value).startswith(
            "records.csv: row 18: performed_at: Input should be a valid datetime"
        )
        assert str(info.value).endswith("nothing was imported")
        assert len(store.records.records()) == 5  # unchanged
    finally:
        store.close()


def test_references_and_duplicates_are_named_at_their_row() -> None:
    rows = _records(4)
    rows[2] = MaintenanceRecord.model_validate({**rows[2].model_dump(), "device_id": "ghost"})
    rows[3] = MaintenanceRecord.model_validate(
        {**rows[3].model_dump(), "id": rows[0].id, "plan_id": "nope"}
    )
    with pytest.raises(RecordImportError) as info:
        loads(
            "records",
            dumps("records", rows, "csv"),
            "csv",
            "x.csv",
            known_devices=["dev0", "dev1"],
            known_plans=["p-cal", "p-insp"],
        )
    assert [str(i) for i in info.value.issues] == [
        "row 4: device_id: unknown device 'ghost'",
        "row 5: plan_id: unknown plan 'nope'",
        "row 5: id: 'r00000' already used at row 2",
    ]


def test_json_errors_name_item_and_field() -> None:
    doc = dumps("plans", _plans(), "json").replace('"interval": 30.0', '"interval": -1')
    with pytest.raises(RecordImportError) as info:
        loads("plans", doc, "json", "plans.json")
    assert [str(i) for i in info.value.issues] == [
        "items[0]: interval: Input should be greater than 0"
    ]
    with pytest.raises(RecordImportError, match="line 1: invalid JSON"):
        loads("plans", "{", "json", "plans.json")
    naive = dumps("records", _records(1), "json").replace('Z"', '"')
    with pytest.raises(
        RecordImportError,
        match=r"items\[0\]: performed_at: Value error, a time must include its UTC offset",
    ):
        loads("records", naive, "json", "r.json")


def test_csv_header_problems() -> None:
    with pytest.raises(RecordImportError, match="row 1: colour: unknown column"):
        loads("devices", "id,colour\nd1,red\n", "csv", "d.csv")
    with pytest.raises(RecordImportError, match="row 3: rated: expected name=value"):
        loads("devices", "id;rated\nd1;power=3\nd2;power\n", "csv", "d.csv")


def test_device_import_rolls_back_on_reference_errors(store_target: str) -> None:
    store = Store(store_target)
    try:
        _seed(store)
        before = store.records.plans()
        bad = [
            *_plans(),
            MaintenancePlan(id="p-x", device_id="ghost", title="x", trigger="calendar", interval=1),
        ]
        with pytest.raises(ValueError, match="unknown devices: ghost"):
            store.records.upsert_plans(bad)
        assert store.records.plans() == before
    finally:
        store.close()
