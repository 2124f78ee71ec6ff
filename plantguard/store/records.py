"""Reading and writing device records: basic information, connection history,
maintenance plans and records.

Every write of a batch is one transaction: an import either lands whole or not
at all.  Device information keeps its history: an upsert compares field by
field and journals each change with the user who made it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..model import Device, Site
from ..records.models import DeviceRecord, MaintenancePlan, MaintenanceRecord, Measurement
from .records_schema import (
    connection_events,
    device_changes,
    devices,
    maintenance_plans,
    maintenance_records,
)

__all__ = ["ConnectionEvent", "DeviceChange", "RecordStore", "ReferenceError", "device_record"]

_CHUNK = 500  # ids per IN (...) clause, well below every backend's parameter limit


class ReferenceError(ValueError):
    """A record names a device or plan that does not exist."""


def device_record(site: Site, device: Device) -> DeviceRecord:
    """The basic-information record of a device configured in the site file."""
    info = device.info
    conn = device.connection
    address = ":".join(str(conn[k]) for k in ("host", "port") if k in conn)
    if "unit" in conn:
        address += f" unit {conn['unit']}"
    return DeviceRecord(
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


def _device_from_row(row: sa.Row[Any]) -> DeviceRecord:
    data = dict(row._mapping)
    data.pop("updated_at")
    data["rated"] = json.loads(data["rated"])
    return DeviceRecord.model_validate(data)


def _plan_row(plan: MaintenancePlan) -> dict[str, Any]:
    row = plan.model_dump(mode="python")
    row["kind"] = plan.kind.value
    row["trigger"] = plan.trigger.value
    return row


def _plan_from_row(row: sa.Row[Any]) -> MaintenancePlan:
    return MaintenancePlan.model_validate(dict(row._mapping))


def _record_row(record: MaintenanceRecord) -> dict[str, Any]:
    row = record.model_dump(mode="python")
    row["kind"] = record.kind.value
    row["result"] = record.result.value
    row["performed_at"] = _naive_utc(record.performed_at)
    row["measurements"] = json.dumps([m.model_dump() for m in record.measurements])
    row["parts"] = json.dumps(list(record.parts))
    row["attachments"] = json.dumps(list(record.attachments))
    return row


def _record_from_row(row: sa.Row[Any]) -> MaintenanceRecord:
    data = dict(row._mapping)
    data["performed_at"] = _aware(data["performed_at"])
    data["measurements"] = tuple(
        Measurement.model_validate(m) for m in json.loads(data["measurements"])
    )
    data["parts"] = tuple(json.loads(data["parts"]))
    data["attachments"] = tuple(json.loads(data["attachments"]))
    return MaintenanceRecord.model_validate(data)


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
            existing = {
                row.id: _device_from_row(row)
                for chunk in _chunks(ids)
                for row in conn.execute(sa.select(devices).where(devices.c.id.in_(chunk)))
            }
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
                if record.id in existing:
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
            return [
                _device_from_row(r) for r in conn.execute(sa.select(devices).order_by(devices.c.id))
            ]

    def device(self, device_id: str) -> DeviceRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
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
        query = sa.select(maintenance_plans).order_by(maintenance_plans.c.id)
        if device_id is not None:
            query = query.where(maintenance_plans.c.device_id == device_id)
        with self.engine.connect() as conn:
            return [_plan_from_row(r) for r in conn.execute(query)]

    def add_records(self, records: Sequence[MaintenanceRecord]) -> int:
        """Insert (or replace, by id) maintenance records, all or nothing."""
        with self.engine.begin() as conn:
            self._check_devices(conn, {r.device_id for r in records}, "record")
            plan_ids = {r.plan_id for r in records if r.plan_id is not None}
            known = set(conn.execute(sa.select(maintenance_plans.c.id)).scalars())
            if missing := sorted(plan_ids - known):
                raise ReferenceError(f"records name unknown plans: {', '.join(missing[:10])}")
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
        query = sa.select(maintenance_records).order_by(
            maintenance_records.c.performed_at, maintenance_records.c.id
        )
        if device_id is not None:
            query = query.where(maintenance_records.c.device_id == device_id)
        if plan_id is not None:
            query = query.where(maintenance_records.c.plan_id == plan_id)
        with self.engine.connect() as conn:
            return [_record_from_row(r) for r in conn.execute(query)]

    @staticmethod
    def _check_devices(conn: sa.Connection, device_ids: set[str], what: str) -> None:
        known = set(conn.execute(sa.select(devices.c.id)).scalars())
        if missing := sorted(device_ids - known):
            raise ReferenceError(f"{what}s name unknown devices: {', '.join(missing[:10])}")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)
