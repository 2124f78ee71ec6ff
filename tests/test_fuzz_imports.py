"""Fuzzing the records import: whatever a file holds, the importer answers with
PlantGuard's documented import error (:class:`RecordImportError`, naming the file,
the row or item and the field) or imports it — never another exception — and a
rejected file leaves the store exactly as it was.  On a real SQLite file and,
when configured, the real PostgreSQL (which refuses what SQLite silently keeps:
NUL, over-wide text).

Inputs: arbitrary JSON documents, arbitrary text and bytes as CSV, and — where a
random input would be refused at once — valid documents and rows of each kind
with fields replaced by hostile values (control characters, huge and deep
values, NaN, out-of-range dates, wrong references, CSV separators and quotes).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantguard.model import AlarmDefinition, Point
from plantguard.records.exchange import RecordImportError, dumps
from plantguard.records.imports import import_items
from plantguard.records.models import MODELS, DeviceRecord, MaintenancePlan, MaintenanceRecord
from plantguard.records.status import plan_statuses
from plantguard.store import Store

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the store is checked before and after each example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
KINDS = ("devices", "plans", "records")
FORMATS = {
    "devices": "plantguard/devices",
    "plans": "plantguard/maintenance-plans",
    "records": "plantguard/maintenance-records",
}
TABLES = ("devices", "device_changes", "maintenance_plans", "maintenance_records")

BASES: dict[str, list[dict[str, Any]]] = {
    "devices": [
        {"id": "pump7", "name": "Feed pump 7", "category": "pump", "manufacturer": "Acme 泵业",
         "commissioned": "2024-03-01", "safety_critical": True, "rated": {"power_kw": 11, "rpm": 2950}},
        {"id": "tank3", "status": "standby", "area": "storage"},
    ],
    "plans": [
        {"id": "pump1-oil", "device_id": "pump1", "title": "Change oil", "trigger": "calendar",
         "interval": 180, "lead": 14, "start": "2026-03-01", "procedure": "drain\nrefill"},
        {"id": "pump1-hours", "device_id": "pump1", "title": "Bearing service", "trigger": "runtime",
         "interval": 2000, "lead": 100, "point": "pump1.running"},
        {"id": "pump1-vib", "device_id": "pump1", "kind": "inspection", "title": "Alignment",
         "trigger": "condition", "interval": 2, "alarm": "pump1.vibration.limit"},
    ],
    "records": [
        {"id": "r-10", "device_id": "pump1", "plan_id": "pump1-grease", "performed_at": "2026-01-02T09:00:00+08:00",
         "performer": "Li Wei", "work_done": "greased", "measurements": [{"name": "t", "value": 41.5, "unit": "°C"}],
         "parts": ["grease LGHP2"], "meter_reading": 1234.5, "next_due": "2026-02-01"},
        {"id": "r-11", "device_id": "tank1", "kind": "inspection", "performed_at": "2026-01-03T00:00:00Z",
         "performer": "王芳", "passed": False, "certificate_number": "C-1", "attachments": ["doc:QA-1"]},
    ],
}  # fmt: skip
FIELDS = {kind: list(MODELS[kind].model_fields) for kind in KINDS}  # type: ignore[index]


class Raw:
    """A JSON literal written as is (numbers Python's json would not write)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _dump(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)  # NaN and Infinity as Python writes them


HOSTILE_TEXT = [
    "", " ", "\x00", "pump\x00one", "tail\x00", "\x00head", "\x1b[31mred", "tab\there", "line\nbreak", "cr\r", "\u2028",
    "\x85", "\x7f", "名" * 65, "x" * 201, "y" * 4_097, "z" * 70_000, "a;b", "a=b", "=cmd|' /C calc'!A0",
    '"quoted"', "a,b", "ghost", "pump1", "tank1", "pump1.running", "tank1.level", "pump1.vibration.limit",
    "pump1-grease", "nan", "inf", "-inf", "1e999", "9" * 5000, "true", "maybe",
    "9999-12-31", "0001-01-01", "1969-12-31", "2200-01-01", "2199-12-31", "2026-02-30",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00", "2199-12-31T23:59:59-14:00",
    "1970-01-01T00:00:00Z", "calendar", "runtime", "counter", "condition", "completed", "retired",
]  # fmt: skip
HOSTILE_JSON: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 3_000_000, 36_525, 36_526, 1e12, 2**63, 10**30,
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("9" * 5000), Raw("-" + "1" * 4400),
    Raw("0." + "0" * 400 + "1"), Raw("[" * 40 + "]" * 40), Raw("[" * 3000 + "]" * 3000), [], {}, [[[]]],
    {"a": {"b": {"c": {}}}}, ["x"] * 101, {f"k{i}": 1 for i in range(101)}, {"k\x00": 1}, {"": 1},
    {"power": Raw("NaN")}, [{"name": "m", "value": Raw("Infinity")}], [{"name": "\x00", "value": 1}],
    "\ud800", "\udfff",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_TEXT),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(FIELDS["records"]), children, max_size=4
        )
    ),
    max_leaves=20,
)
#: Text with any character but lone surrogates (control characters included).
any_text = st.text(max_size=30)
hostile_text = st.sampled_from(HOSTILE_TEXT) | any_text
#: Mostly text (most fields are text), else any JSON value.
hostile = st.one_of(hostile_text, hostile_text, st.sampled_from(HOSTILE_JSON), json_values)


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid document of some kind with one to three fields made hostile."""
    kind = draw(st.sampled_from(KINDS))
    items = [dict(b) for b in draw(st.lists(st.sampled_from(BASES[kind]), min_size=1, max_size=3))]
    for i, item in enumerate(items):
        item["id"] = f"{item['id']}-{i}"
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        item = draw(st.sampled_from(items))
        field = draw(st.sampled_from([*FIELDS[kind], "unknown"]))
        if draw(st.integers(0, 9)) == 0:
            item.pop(field, None)
        else:
            item[field] = draw(hostile)
    doc: Any = items
    if draw(st.booleans()):
        doc = {"format": FORMATS[kind], "version": 1, "items": items}
        if draw(st.integers(0, 5)) == 0:
            doc[draw(st.sampled_from(["format", "version", "items", "extra"]))] = draw(hostile)
    return kind, _dump(doc).encode("utf-8", "surrogatepass")


def _valid_rows(kind: str) -> list[list[str]]:
    model = MODELS[kind]  # type: ignore[index]
    items = [model.model_validate(b) for b in BASES[kind]]
    return list(csv.reader(io.StringIO(dumps(kind, items, "csv"))))  # type: ignore[arg-type]


@st.composite
def mutated_csv(draw: st.DrawFn) -> tuple[str, bytes]:
    """Valid CSV rows of some kind with cells made hostile, the header or the quoting broken."""
    kind = draw(st.sampled_from(KINDS))
    header, *rows = _valid_rows(kind)
    rows = [list(r) for r in draw(st.lists(st.sampled_from(rows), min_size=1, max_size=3))]
    for i, row in enumerate(rows):
        row[0] = f"{row[0]}-{i}"
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        what = draw(st.integers(0, 19))
        target = header if what == 0 else draw(st.sampled_from(rows))
        if what == 1:
            target.append(draw(hostile_text))  # one cell too many
        elif what == 2:
            target.pop(draw(st.integers(0, len(target) - 1)))  # one cell short
        else:
            target[draw(st.integers(0, len(target) - 1))] = draw(hostile_text)
    delimiter = draw(st.sampled_from([",", ";"]))
    if draw(st.integers(0, 3)):
        out = io.StringIO()
        csv.writer(
            out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
        ).writerows([header, *rows])
        text = out.getvalue()
    else:  # written by hand, quotes and separators in cells left as they are
        text = "".join(delimiter.join(r) + "\n" for r in [header, *rows])
    data = text.encode("utf-8")
    if draw(st.integers(0, 19)) == 0:  # a stray byte: Latin-1, a cut UTF-8 sequence, a BOM
        at = draw(st.sampled_from([len(data) // 2, len(data) - 1, 0]))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xe6\x97", b"\xef\xbb\xbf", b"\x00"]))
            + data[at:]
        )
    return kind, data


# --- the store and the check ------------------------------------------------------------------


@pytest.fixture
def store(store_target: str) -> Any:
    """A store the gateway has run with: two devices, their points and alarms, one plan."""
    store = Store(store_target)
    store.register_points(
        [Point(id="pump1.running", device_id="pump1"), Point(id="tank1.level", device_id="tank1")]
    )
    store.define_alarms(
        [AlarmDefinition(id="pump1.vibration.limit", source_id="pump1.vibration", device_id="pump1", rule="limit")]
    )  # fmt: skip
    store.records.upsert_devices([DeviceRecord(id="pump1"), DeviceRecord(id="tank1")], user="test")
    store.records.upsert_plans(
        [MaintenancePlan(id="pump1-grease", device_id="pump1", title="Grease", trigger="calendar", interval=30)]
    )  # fmt: skip
    store.records.add_records(
        [MaintenanceRecord(id="r-1", device_id="pump1", plan_id="pump1-grease", performer="t",
                           performed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))]
    )  # fmt: skip
    yield store
    store.close()


def _snapshot(store: Store) -> dict[str, list[tuple[str, ...]]]:
    with store.engine.connect() as conn:
        return {
            name: sorted(tuple(repr(v) for v in row) for row in conn.execute(sa.text(f"SELECT * FROM {name}")))
            for name in TABLES
        }  # fmt: skip


def _import(store: Store, kind: str, data: bytes | str, fmt: str) -> None:
    """Import; only RecordImportError may come out, and then nothing has changed."""
    source = f"fuzz.{fmt}"
    before = _snapshot(store)
    rejected: RecordImportError | None = None
    try:
        import_items(store, kind, data, fmt, source, user="fuzz")  # type: ignore[arg-type]
    except RecordImportError as exc:
        rejected = exc
    if rejected is not None:
        assert rejected.issues
        assert all(issue.where for issue in rejected.issues)
        # Refused by the checks, not by the database: SQLite and PostgreSQL behave the same.
        assert not any("the store refused it" in issue.message for issue in rejected.issues)
        message = str(rejected)
        assert message.startswith(f"{source}: ")
        assert message.endswith("nothing was imported")
        assert _snapshot(store) == before
        return
    # Accepted: what went in reads back and its due status computes.
    store.records.devices()
    store.records.records()
    plan_statuses(store, dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp(), store.records.plans())


# --- the properties ------------------------------------------------------------------------------


@FUZZ
@given(
    kind=st.sampled_from(KINDS),
    value=json_values | st.sampled_from(HOSTILE_JSON),
    wrap=st.booleans(),
)
def test_arbitrary_json_documents(store: Store, kind: str, value: Any, wrap: bool) -> None:
    doc = {"format": FORMATS[kind], "version": 1, "items": value} if wrap else value
    _import(store, kind, _dump(doc).encode("utf-8", "surrogatepass"), "json")


@FUZZ
@given(document=mutated_documents())
def test_valid_json_documents_with_hostile_fields(
    store: Store, document: tuple[str, bytes]
) -> None:
    kind, data = document
    _import(store, kind, data, "json")


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_csv_texts(store: Store, kind: str, data: bytes | str) -> None:
    if isinstance(data, str) and data[:1] not in ("", "\n"):
        data = ",".join(FIELDS[kind][:3]) + "\n" + data  # past the header, some of the time
    _import(store, kind, data, "csv")


@FUZZ
@given(document=mutated_csv())
def test_valid_csv_rows_with_hostile_cells(store: Store, document: tuple[str, bytes]) -> None:
    kind, data = document
    _import(store, kind, data, "csv")


def test_the_generated_bases_import(store: Store) -> None:
    """The valid documents the mutations start from are accepted (so mutations test limits)."""
    for kind in KINDS:
        import_items(store, kind, json.dumps(BASES[kind]), "json", "bases.json")  # type: ignore[arg-type]
        rows = _valid_rows(kind)
        text = "".join(",".join(f'"{c}"' for c in r) + "\n" for r in rows)
        import_items(store, kind, text, "csv", "bases.csv")  # type: ignore[arg-type]
