"""Reading and writing device records: basic information, connection history,
maintenance plans and records.

Every write of a batch is one transaction: an import either lands whole or not
at all.  Device information keeps its history: an upsert compares field by
field and journals each change with the user who made it.

Reading is forgiving where writing is strict: a row outside the limits of the
models (written by an older PlantGuard, or straight into the database) is read
as stored, with a warning in the log, so that the gateway and the CLI keep
working and the due computation (which copes with any value) can flag it; a row
that cannot be understood at all (an unknown trigger, a time that is not a
time) is left out, with an error in the log.  Dates and times are read as text
and parsed here, so a year beyond 9999 or PostgreSQL's ``infinity`` is read as
the far future instead of failing the whole query.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects import postgresql, sqlite

from ..model import PRIORITY_BY_NAME, Device, DeviceStatus, Site
from ..records.models import (
    DeviceRecord,
    MaintenanceKind,
    MaintenancePlan,
    MaintenanceRecord,
    Measurement,
    RecordResult,
    Trigger,
)
from .records_schema import (
    connection_events,
    device_changes,
    device_counters,
    devices,
    maintenance_plans,
    maintenance_records,
)
from .schema import alarms, points

__all__ = [
    "ConnectionEvent",
    "DeviceChange",
    "RecordStore",
    "References",
    "UnknownReference",
    "device_record",
]

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) clause, well below every backend's parameter limit


class UnknownReference(ValueError):
    """A record names a device or plan that does not exist."""


class References(NamedTuple):
    """What records may refer to, as the store knows it (for checking an import)."""

    devices: set[str]
    #: plan id → its device
    plans: dict[str, str]
    #: point id → its device (points are registered when the gateway runs a site)
    points: dict[str, str]
    #: alarm id → its device (alarms are defined when the gateway runs a site)
    alarms: dict[str, str]


def device_record(site: Site, device: Device) -> DeviceRecord:
    """The basic-information record of a device configured in the site file.

    The site file was validated by its own loader; a field it accepts beyond the
    limits of an import (a longer name, say) is kept as configured, with a warning.
    """
    info = device.info
    conn = device.connection
    address = ":".join(str(conn[k]) for k in ("host", "port") if k in conn)
    if "unit" in conn:
        address += f" unit {conn['unit']}"
    fields: dict[str, Any] = dict(  # noqa: C408 - the field names, as in the model
        id=device.id,
        name=device.name,
        category=device.category,
        manufacturer=info.manufacturer,
        model=info.model,
        serial_number=info.serial_number,
        hardware_version=info.hardware_version,
        firmware_version=info.firmware_version,
        protocol=device.driver,
        address=address,
        site=site.id,
        area=device.area_id,
        position=info.location.position,
        commissioned=info.commissioned,
        responsible=info.responsible,
        safety_critical=info.safety_critical,
        status=info.status,
        rated=dict(info.rated),
    )
    try:
        return DeviceRecord.model_validate(fields)
    except ValidationError as exc:
        log.warning(
            "device %s of the site file: %s; recorded as configured", device.id, _brief(exc)
        )
        return DeviceRecord.model_construct(**fields)


class DeviceChange(NamedTuple):
    """One field of one device's basic information changed."""

    time: dt.datetime
    user: str
    field: str
    old: str | None
    new: str | None


class ConnectionEvent(NamedTuple):
    device_id: str
    time: float  # epoch seconds
    state: str  # online | offline | unknown


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def _device_row(record: DeviceRecord, now: dt.datetime) -> dict[str, Any]:
    row = record.model_dump(mode="python")
    row["status"] = record.status.value
    row["rated"] = json.dumps(record.rated, sort_keys=True)
    row["updated_at"] = _naive_utc(now)
    return row


def _plan_row(plan: MaintenancePlan) -> dict[str, Any]:
    row = plan.model_dump(mode="python")
    row["kind"] = plan.kind.value
    row["trigger"] = plan.trigger.value
    return row


def _record_row(record: MaintenanceRecord) -> dict[str, Any]:
    row = record.model_dump(mode="python")
    row["kind"] = record.kind.value
    row["result"] = record.result.value
    row["performed_at"] = _naive_utc(record.performed_at)
    row["measurements"] = json.dumps([m.model_dump() for m in record.measurements])
    row["parts"] = json.dumps(list(record.parts))
    row["attachments"] = json.dumps(list(record.attachments))
    return row


# --- reading rows, whatever they hold ---------------------------------------------------------

#: What a stored time beyond Python's range (year > 9999, ``infinity``) is read as.
FAR_FUTURE = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
FAR_PAST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_YEAR = re.compile(r"\s*(-?\d+)-")

_Model = TypeVar("_Model", bound=BaseModel)
_warned: set[tuple[str, str]] = set()


def _stored_time(value: object) -> dt.datetime:
    """A stored naive-UTC time (read as text) as an aware datetime; clamped, never failing
    on a year Python cannot hold.  Raises ValueError on text that is no time at all."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    text = str(value).strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return _out_of_range(text, FAR_PAST, FAR_FUTURE)
    if parsed.tzinfo is not None:
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            return FAR_PAST if parsed.year < 2 else FAR_FUTURE
    return parsed.replace(tzinfo=dt.UTC)


def _stored_date(value: object) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10] if len(text) > 10 and text[10] in " T" else text)
    except ValueError:
        return _out_of_range(text, FAR_PAST, FAR_FUTURE).date()


def _out_of_range(text: str, past: dt.datetime, future: dt.datetime) -> dt.datetime:
    lowered = text.lower()
    if lowered == "-infinity" or lowered.endswith(" bc"):
        return past
    if lowered == "infinity":
        return future
    if (match := _YEAR.match(lowered)) is not None:
        return past if int(match[1]) < 1 else future
    raise ValueError(f"not a date or time: {text[:40]!r}")


def _stored_json(text: object, default: Any) -> Any:
    try:
        return json.loads(str(text))
    except (ValueError, RecursionError):
        return default


def _stored_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _brief(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(whole record)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _lenient(
    model: type[_Model], data: dict[str, Any], enums: Mapping[str, type[enum.Enum]]
) -> _Model | None:
    """``data`` as ``model``: validated if it passes, else as stored (logged); None if
    not even its enumerations can be read."""
    what = f"{model.__name__} {str(data.get('id'))[:100]!r}"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        if (model.__name__, str(data.get("id"))) not in _warned:
            _warned.add((model.__name__, str(data.get("id"))))
            log.warning(
                "%s in the store is outside the limits: %s; read as stored", what, _brief(exc)
            )
    try:
        for field, kind in enums.items():
            data[field] = kind(data[field])
    except (KeyError, ValueError) as exc:
        log.error("%s in the store cannot be read, left out: %s", what, exc)
        return None
    return model.model_construct(**data)


def _device_from_row(row: sa.Row[Any]) -> DeviceRecord | None:
    data = dict(row._mapping)
    data.pop("updated_at", None)
    try:
        data["commissioned"] = _stored_date(data["commissioned"])
    except ValueError:
        data["commissioned"] = None
    data["rated"] = _stored_json(data["rated"], {})
    return _lenient(DeviceRecord, data, {"status": DeviceStatus})


def _plan_from_row(row: sa.Row[Any]) -> MaintenancePlan | None:
    data = dict(row._mapping)
    try:
        data["start"] = _stored_date(data["start"])
    except ValueError:
        data["start"] = None
    data["interval"] = _stored_float(data["interval"])
    data["lead"] = _stored_float(data["lead"])
    if data["overdue_priority"] not in PRIORITY_BY_NAME:  # the due alarm needs a priority
        data["overdue_priority"] = "medium"
    return _lenient(MaintenancePlan, data, {"kind": MaintenanceKind, "trigger": Trigger})


def _record_from_row(row: sa.Row[Any]) -> MaintenanceRecord | None:
    data = dict(row._mapping)
    try:
        data["performed_at"] = _stored_time(data["performed_at"])
    except ValueError as exc:
        log.error(
            "maintenance record %r in the store cannot be read, left out: %s", data["id"], exc
        )
        return None
    try:
        data["next_due"] = _stored_date(data["next_due"])
    except ValueError:
        data["next_due"] = None
    measurements = _stored_json(data["measurements"], [])
    data["measurements"] = tuple(
        m
        for m in (
            _lenient(Measurement, dict(m), {})
            for m in (measurements if isinstance(measurements, list) else [])
            if isinstance(m, dict)
        )
        if m is not None
    )
    for field in ("parts", "attachments"):
        entries = _stored_json(data[field], [])
        data[field] = tuple(str(e) for e in entries) if isinstance(entries, list) else ()
    if data["meter_reading"] is not None:
        data["meter_reading"] = _stored_float(data["meter_reading"])
    return _lenient(MaintenanceRecord, data, {"kind": MaintenanceKind, "result": RecordResult})


#: Date and time columns are read as text (see the module's docstring).
_TEXT_COLUMNS = {"commissioned", "updated_at", "start", "performed_at", "next_due"}


def _select(table: sa.Table) -> sa.Select[Any]:
    return sa.select(
        *(
            sa.cast(column, sa.Text).label(column.name) if column.name in _TEXT_COLUMNS else column
            for column in table.c
        )
    )


def _read(conn: sa.Connection, query: sa.Select[Any]) -> sa.Result[Any]:
    if (
        conn.dialect.name == "postgresql"
    ):  # the text of a timestamp is ISO 8601 whatever the server says
        conn.execute(sa.text("SET LOCAL DateStyle = 'ISO, YMD'"))
    return conn.execute(query)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


class RecordStore:
    """The records part of the store (``Store.records``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # --- devices ----------------------------------------------------------------------

    def upsert_devices(
        self, records: Sequence[DeviceRecord], *, user: str, now: dt.datetime | None = None
    ) -> int:
        """Insert or update devices in one transaction; journal every changed field.

        Returns the number of fields changed (a new device counts its non-empty fields).
        """
        now = now or dt.datetime.now(dt.UTC)
        changes = 0
        with self.engine.begin() as conn:
            ids = [r.id for r in records]
            stored = {
                row.id: _device_from_row(row)
                for chunk in _chunks(ids)
                for row in _read(conn, _select(devices).where(devices.c.id.in_(chunk)))
            }
            existing = {key: device for key, device in stored.items() if device is not None}
            journal: list[dict[str, Any]] = []
            for record in records:
                new = record.model_dump(mode="json")
                old = existing[record.id].model_dump(mode="json") if record.id in existing else {}
                for field, value in new.items():
                    if field == "id" or old.get(field) == value:
                        continue
                    if not old and value in ("", None, {}, False):
                        continue
                    journal.append(
                        {
                            "device_id": record.id,
                            "time": _naive_utc(now),
                            "user": user,
                            "field": field,
                            "old": None if not old else _text(old.get(field)),
                            "new": _text(value),
                        }
                    )
                row = _device_row(record, now)
                if record.id in stored:
                    if new != old:
                        conn.execute(devices.update().where(devices.c.id == record.id).values(row))
                else:
                    conn.execute(devices.insert().values(row))
            if journal:
                conn.execute(device_changes.insert(), journal)
            changes = len(journal)
        return changes

    def sync_site(self, site: Site, *, user: str = "site file") -> int:
        """Bring the store's basic information in line with the site file."""
        return self.upsert_devices([device_record(site, d) for d in site.devices], user=user)

    def devices(self) -> list[DeviceRecord]:
        with self.engine.connect() as conn:
            rows = _read(conn, _select(devices).order_by(devices.c.id))
            return [d for d in map(_device_from_row, rows) if d is not None]

    def device(self, device_id: str) -> DeviceRecord | None:
        with self.engine.connect() as conn:
            row = _read(conn, _select(devices).where(devices.c.id == device_id)).first()
        return None if row is None else _device_from_row(row)

    def device_changes(self, device_id: str) -> list[DeviceChange]:
        query = (
            sa.select(
                device_changes.c.time,
                device_changes.c.user,
                device_changes.c.field,
                device_changes.c.old,
                device_changes.c.new,
            )
            .where(device_changes.c.device_id == device_id)
            .order_by(device_changes.c.seq)
        )
        with self.engine.connect() as conn:
            return [DeviceChange(_aware(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(query)]

    # --- connection history -----------------------------------------------------------

    def record_connection(self, device_ids: Sequence[str], time: float, state: str) -> None:
        """Journal a connection state (``online``/``offline``/``unknown``) of devices."""
        if not device_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                connection_events.insert(),
                [{"device_id": d, "time": time, "state": state} for d in device_ids],
            )

    def connection_events(self, until: float | None = None) -> list[ConnectionEvent]:
        query = sa.select(
            connection_events.c.device_id, connection_events.c.time, connection_events.c.state
        ).order_by(connection_events.c.time, connection_events.c.seq)
        if until is not None:
            query = query.where(connection_events.c.time < until)
        with self.engine.connect() as conn:
            return [ConnectionEvent(r[0], r[1], r[2]) for r in conn.execute(query)]

    # --- driver counters --------------------------------------------------------------

    def record_counters(
        self, device_id: str, counters: Mapping[str, int], *, since: float, now: float
    ) -> None:
        """Upsert what ``device_id``'s driver counted since ``since`` (one transaction).

        A counter the driver no longer reports keeps its last row; a new start
        (a later ``since``) overwrites the values, as a driver's counts restart too.
        """
        if not counters:
            return
        rows = [
            {"device_id": device_id, "name": name, "value": int(value), "since": since,
             "updated_at": now}
            for name, value in counters.items()
        ]  # fmt: skip
        with self.engine.begin() as conn:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
                device_counters
            )
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[device_counters.c.device_id, device_counters.c.name],
                    set_={
                        "value": insert.excluded.value,
                        "since": insert.excluded.since,
                        "updated_at": insert.excluded.updated_at,
                    },
                ),
                rows,
            )

    def device_counters(self) -> dict[str, dict[str, int]]:
        """Every device's stored counters: device id → counter name → value, sorted."""
        query = sa.select(
            device_counters.c.device_id, device_counters.c.name, device_counters.c.value
        ).order_by(device_counters.c.device_id, device_counters.c.name)
        result: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for device_id, name, value in conn.execute(query):
                result.setdefault(str(device_id), {})[str(name)] = int(value)
        return result

    # --- maintenance ------------------------------------------------------------------

    def upsert_plans(self, plans: Sequence[MaintenancePlan]) -> int:
        with self.engine.begin() as conn:
            self._check_devices(conn, {p.device_id for p in plans}, "plan")
            ids = [p.id for p in plans]
            for chunk in _chunks(ids):
                conn.execute(maintenance_plans.delete().where(maintenance_plans.c.id.in_(chunk)))
            if plans:
                conn.execute(maintenance_plans.insert(), [_plan_row(p) for p in plans])
        return len(plans)

    def plans(self, device_id: str | None = None) -> list[MaintenancePlan]:
        query = _select(maintenance_plans).order_by(maintenance_plans.c.id)
        if device_id is not None:
            query = query.where(maintenance_plans.c.device_id == device_id)
        with self.engine.connect() as conn:
            return [p for p in map(_plan_from_row, _read(conn, query)) if p is not None]

    def add_records(self, records: Sequence[MaintenanceRecord]) -> int:
        """Insert (or replace, by id) maintenance records, all or nothing."""
        with self.engine.begin() as conn:
            self._check_devices(conn, {r.device_id for r in records}, "record")
            plan_ids = {r.plan_id for r in records if r.plan_id is not None}
            known = set(conn.execute(sa.select(maintenance_plans.c.id)).scalars())
            if missing := sorted(plan_ids - known):
                raise UnknownReference(f"records name unknown plans: {', '.join(missing[:10])}")
            ids = [r.id for r in records]
            for chunk in _chunks(ids):
                conn.execute(
                    maintenance_records.delete().where(maintenance_records.c.id.in_(chunk))
                )
            if records:
                conn.execute(maintenance_records.insert(), [_record_row(r) for r in records])
        return len(records)

    def records(
        self, *, device_id: str | None = None, plan_id: str | None = None
    ) -> list[MaintenanceRecord]:
        query = _select(maintenance_records).order_by(
            maintenance_records.c.performed_at, maintenance_records.c.id
        )
        if device_id is not None:
            query = query.where(maintenance_records.c.device_id == device_id)
        if plan_id is not None:
            query = query.where(maintenance_records.c.plan_id == plan_id)
        with self.engine.connect() as conn:
            return [r for r in map(_record_from_row, _read(conn, query)) if r is not None]

    def references(self) -> References:
        """Every device, plan, point and alarm id the store knows, with its device."""
        with self.engine.connect() as conn:
            return References(
                devices=set(conn.execute(sa.select(devices.c.id)).scalars()),
                plans=_pairs(conn, maintenance_plans.c.id, maintenance_plans.c.device_id),
                points=_pairs(conn, points.c.point_id, points.c.device_id),
                alarms=_pairs(conn, alarms.c.alarm_id, alarms.c.device_id),
            )

    @staticmethod
    def _check_devices(conn: sa.Connection, device_ids: set[str], what: str) -> None:
        known = set(conn.execute(sa.select(devices.c.id)).scalars())
        if missing := sorted(device_ids - known):
            raise UnknownReference(f"{what}s name unknown devices: {', '.join(missing[:10])}")


def _pairs(conn: sa.Connection, key: sa.Column[Any], value: sa.Column[Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute(sa.select(key, value))}


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
