"""``plantguard devices``, ``maintenance``, ``stats`` and ``schemas``: the device records.

Exports go to standard output unless ``--output FILE`` is given; imports take
the file as an argument and land whole or not at all.  Commands that write
records name their acting user (``--as``: an engineer for imports, an operator
for ``maintenance record``), which the device change history and the store's
audit keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .acting import acting_principal, add_actor_argument
from .common import SubParsers, add_db_argument, did_you_mean, duration_argument, open_store

if TYPE_CHECKING:
    from ..host import PluginHost
    from ..records.due import PlanStatus
    from ..records.models import Measurement, RecordKind
    from ..store import Store

# The record models (pydantic), the store and SQLAlchemy are imported by the handlers,
# so that building the parser for any command costs none of them.

__all__ = ["add_commands", "write_schemas"]

#: The values of :class:`plantguard.records.models.MaintenanceKind` (``--kind``), repeated
#: so that the parser needs no model; tests/test_cli_startup.py keeps them equal.
MAINTENANCE_KINDS = ("maintenance", "inspection", "calibration")

SCHEMA_FILES: dict[RecordKind, str] = {
    "devices": "devices.schema.json",
    "plans": "maintenance-plans.schema.json",
    "records": "maintenance-records.schema.json",
}


def add_commands(sub: SubParsers) -> None:
    devices = sub.add_parser("devices", help="device basic information").add_subparsers(
        dest="devices_command", metavar="ACTION", required=True
    )
    p = devices.add_parser("list", help="list devices")
    _common(p, json_flag=True)
    p.set_defaults(func=_devices_list)
    p = devices.add_parser("show", help="one device: information, change history, plans")
    p.add_argument("device")
    _common(p, json_flag=True)
    p.set_defaults(func=_devices_show)
    p = devices.add_parser("import", help="import devices (JSON or CSV), all or nothing")
    _import_args(p)
    p.set_defaults(func=_import, kind="devices")
    p = devices.add_parser("export", help="export devices")
    _export_args(p)
    p.set_defaults(func=_export, kind="devices")

    maint = sub.add_parser("maintenance", help="maintenance and inspection plans and records")
    actions = maint.add_subparsers(dest="maintenance_command", metavar="ACTION", required=True)
    p = actions.add_parser("plans", help="list plans with their due status")
    p.add_argument("--device")
    _common(p, json_flag=True)
    p.set_defaults(func=_plans)
    p = actions.add_parser("due", help="plans due soon or overdue")
    p.add_argument("--at", type=_aware_time, help="evaluate at this ISO time (default: now)")
    p.add_argument("--all", action="store_true", help="include plans that are not due")
    _common(p, json_flag=True)
    p.set_defaults(func=_due)
    p = actions.add_parser("record", help="record work done or an inspection")
    _record_args(p)
    p.set_defaults(func=_record)
    p = actions.add_parser("import", help="import plans or records (JSON or CSV), all or nothing")
    _import_args(p)
    p.add_argument("--kind", choices=["plans", "records"], default="records")
    p.set_defaults(func=_import)
    p = actions.add_parser("export", help="export plans or records")
    _export_args(p)
    p.add_argument("--kind", choices=["plans", "records"], default="records")
    p.set_defaults(func=_export)

    p = sub.add_parser("stats", help="device statistics over a period")
    p.add_argument("--since", type=duration_argument, default=30 * 86400.0, help="e.g. 24h, 30d")
    p.add_argument("--until", type=_aware_time, help="end of the period (default: now)")
    _common(p, json_flag=True)
    p.set_defaults(func=_stats)

    p = sub.add_parser("schemas", help="write the JSON Schemas of the exchange formats")
    p.add_argument("--output", type=Path, default=Path("docs/schemas"))
    p.set_defaults(func=lambda args, _host: write_schemas(args.output))


def _common(p: argparse.ArgumentParser, *, json_flag: bool) -> None:
    add_db_argument(p, site=True)
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=["json", "csv"], help="default: from the file name")
    add_db_argument(p, site=True)
    add_actor_argument(p, "engineer")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--output", type=Path, help="file to write (default: standard output)")
    add_db_argument(p, site=True)


def _record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", required=True)
    p.add_argument("--plan", help="the plan this work fulfils")
    p.add_argument("--kind", choices=MAINTENANCE_KINDS)
    p.add_argument("--performer", required=True)
    p.add_argument("--at", type=_aware_time, help="when it was done, ISO 8601 (default: now)")
    p.add_argument("--work", default="", help="work done")
    p.add_argument("--result", choices=["completed", "partial", "not_done"], default="completed")
    verdict = p.add_mutually_exclusive_group()
    verdict.add_argument("--passed", dest="passed", action="store_true", default=None)
    verdict.add_argument("--failed", dest="passed", action="store_false")
    p.add_argument("--certificate", default="")
    p.add_argument("--measurement", action="append", default=[], metavar="NAME=VALUE[ UNIT]")
    p.add_argument("--part", action="append", default=[])
    p.add_argument("--attachment", action="append", default=[])
    p.add_argument("--meter-reading", type=float)
    p.add_argument("--next-due", type=dt.date.fromisoformat)
    p.add_argument("--id", help="record id (default: generated)")
    add_db_argument(p, site=True)
    add_actor_argument(p, "operator")


def _aware_time(text: str) -> dt.datetime:
    from ..records.models import EARLIEST_TIME, LATEST_TIME

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    value = value if value.tzinfo else value.astimezone()  # local time if no offset given
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 1970-2199")
    return value


# --- devices ----------------------------------------------------------------------------


def _devices_list(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args) as store:
        devices = store.records.devices()
    if args.json:
        print(
            json.dumps([d.model_dump(mode="json") for d in devices], ensure_ascii=False, indent=1)
        )
        return 0
    rows = [
        (
            d.id,
            d.category,
            d.status.value,
            d.area or "-",
            d.manufacturer,
            d.model,
            d.firmware_version,
        )
        for d in devices
    ]
    _table(("id", "category", "status", "area", "manufacturer", "model", "firmware"), rows)
    return 0


def _devices_show(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.status import plan_statuses

    with open_store(args) as store:
        device = store.records.device(args.device)
        if device is None:
            print(f"plantguard: {_unknown_device(store, args.device)}", file=sys.stderr)
            return 2
        changes = store.records.device_changes(args.device)
        plans = store.records.plans(args.device)
        statuses = plan_statuses(store, time.time(), plans)
    if args.json:
        print(
            json.dumps(
                {
                    "device": device.model_dump(mode="json"),
                    "changes": [
                        {
                            "time": c.time.isoformat(),
                            "user": c.user,
                            "field": c.field,
                            "old": c.old,
                            "new": c.new,
                        }
                        for c in changes
                    ],
                    "plans": [_status_json(s) for s in statuses.values()],
                },
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    for field, value in device.model_dump(mode="json").items():
        print(f"{field:<18} {value if value not in (None, '', {}) else '-'}")
    if plans:
        print("\nplans:")
        for status in statuses.values():
            print(f"  {_status_line(status)}")
    if changes:
        print("\nchanges:")
        for c in changes:
            print(
                f"  {c.time:%Y-%m-%d %H:%M:%S}  {c.user:<12} {c.field}: {c.old or '-'} → {c.new or '-'}"
            )
    return 0


# --- maintenance --------------------------------------------------------------------------


def _unknown_device(store: Store, device_id: str) -> str:
    return did_you_mean("device", device_id, (d.id for d in store.records.devices()))


def _plans(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.status import plan_statuses

    with open_store(args) as store:
        if args.device and store.records.device(args.device) is None:
            print(f"plantguard: {_unknown_device(store, args.device)}", file=sys.stderr)
            return 2
        plans = store.records.plans(args.device)
        statuses = plan_statuses(store, time.time(), plans)
    if args.json:
        print(
            json.dumps([_status_json(statuses[p.id]) for p in plans], ensure_ascii=False, indent=1)
        )
        return 0
    for plan in plans:
        print(_status_line(statuses[plan.id]))
    return 0


def _due(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.status import plan_statuses

    now = args.at.timestamp() if args.at else time.time()
    with open_store(args) as store:
        statuses = plan_statuses(store, now)
    shown = [s for s in statuses.values() if args.all or s.is_due]
    shown.sort(
        key=lambda s: (s.state.value != "overdue", s.remaining if s.remaining is not None else 0)
    )
    if args.json:
        print(json.dumps([_status_json(s) for s in shown], ensure_ascii=False, indent=1))
    else:
        for status in shown:
            print(_status_line(status))
        if not shown:
            print("nothing due")
    return 0


def _record(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.models import MaintenanceKind, MaintenanceRecord
    from ..store.audit import AuditLog
    from ..store.records import UnknownReference

    with open_store(args) as store:
        actor = acting_principal(store, args, "record maintenance").name  # refusals: cli.main
        if store.records.device(args.device) is None:
            print(f"plantguard: {_unknown_device(store, args.device)}", file=sys.stderr)
            return 2
        device_plans = store.records.plans(args.device)
        plan = next((p for p in device_plans if p.id == args.plan), None)
        if args.plan and plan is None:
            known = [p.id for p in device_plans]
            message = did_you_mean("plan", args.plan, known, where=f"device {args.device}")
            other = next((p for p in store.records.plans() if p.id == args.plan), None)
            if other is not None:
                message += f"; plan {args.plan!r} is {other.device_id}'s"
            print(f"plantguard: {message}", file=sys.stderr)
            return 2
        try:
            measurements = [_measurement(m) for m in args.measurement]
            record = MaintenanceRecord(
                id=args.id or f"r-{uuid.uuid4().hex[:12]}",
                device_id=args.device,
                plan_id=args.plan,
                kind=MaintenanceKind(args.kind)
                if args.kind
                else (plan.kind if plan else MaintenanceKind.MAINTENANCE),
                performed_at=args.at or dt.datetime.now(dt.UTC),
                performer=args.performer,
                work_done=args.work,
                result=args.result,
                passed=args.passed,
                certificate_number=args.certificate,
                measurements=tuple(measurements),
                parts=tuple(args.part),
                meter_reading=args.meter_reading,
                next_due=args.next_due,
                attachments=tuple(args.attachment),
            )
            store.records.add_records([record])
        except (ValueError, UnknownReference) as exc:
            print(f"plantguard: record rejected: {exc}", file=sys.stderr)
            return 2
        AuditLog(store.engine).record(
            actor, "maintenance.record", record.id, f"{record.device_id} {record.plan_id or ''}"
        )
    print(
        f"recorded {record.id} for {record.device_id}"
        + (f" (plan {record.plan_id})" if record.plan_id else "")
    )
    return 0


def _measurement(text: str) -> Measurement:
    from ..records.models import Measurement

    name, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"--measurement {text!r}: expected NAME=VALUE[ UNIT]")
    value, _, unit = rest.strip().partition(" ")
    return Measurement(name=name.strip(), value=float(value), unit=unit.strip())


# --- import / export ------------------------------------------------------------------------


def _import(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.exchange import RecordImportError, guess_format, read_file
    from ..records.imports import import_items
    from ..store.audit import AuditLog

    kind: RecordKind = args.kind
    fmt = guess_format(args.file, args.format)
    try:
        data = read_file(args.file)
    except OSError as exc:
        print(f"plantguard: {args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except RecordImportError as exc:
        print(f"plantguard: import rejected:\n{exc}", file=sys.stderr)
        return 2
    with open_store(args) as store:
        actor = acting_principal(store, args, f"import {kind}").name  # refusals: cli.main
        try:
            items = import_items(store, kind, data, fmt, str(args.file), user=actor)
        except RecordImportError as exc:
            print(f"plantguard: import rejected:\n{exc}", file=sys.stderr)
            return 2
        AuditLog(store.engine).record(
            actor, f"{kind}.import", str(args.file), f"{len(items)} {kind}"
        )
    print(f"imported {len(items)} {kind} from {args.file}")
    return 0


def _export(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.exchange import dumps

    kind: RecordKind = args.kind
    with open_store(args) as store:
        items: Sequence[Any]
        if kind == "devices":
            items = store.records.devices()
        elif kind == "plans":
            items = store.records.plans()
        else:
            items = store.records.records()
    text = dumps(kind, items, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"exported {len(items)} {kind} to {args.output}", file=sys.stderr)
    return 0


def write_schemas(directory: Path) -> int:
    """Write the JSON Schema of each exchange document (what ``docs/schemas`` holds)."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind, name in SCHEMA_FILES.items():
        schema = schema_of(kind)
        (directory / name).write_text(
            json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        print(f"wrote {directory / name}")
    return 0


def schema_of(kind: RecordKind) -> dict[str, Any]:
    from ..records.exchange import DOCUMENTS

    schema = DOCUMENTS[kind].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:plantguard:schema:{SCHEMA_FILES[kind].removesuffix('.schema.json')}:1"
    return schema


# --- statistics -------------------------------------------------------------------------------


def _stats(args: argparse.Namespace, host: PluginHost) -> int:
    from ..records.stats import statistics

    end = args.until.timestamp() if args.until else time.time()
    start = end - args.since
    with open_store(args) as store:
        stats = statistics(store, start, end)
    if args.json:
        print(json.dumps(stats.as_dict(), ensure_ascii=False, indent=1))
        return 0
    t0 = dt.datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M")
    t1 = dt.datetime.fromtimestamp(end).strftime("%Y-%m-%d %H:%M")
    print(f"period {t0} … {t1}\n")
    for title, counts in (
        ("devices by category", stats.devices_by_category),
        ("devices by status", stats.devices_by_status),
        ("devices by area", stats.devices_by_area),
        ("alarms by priority", stats.alarms_by_priority),
    ):
        print(f"{title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))
    print()
    _table(
        ("device", "online", "availability", "outages", "MTBF h", "MTTR h"),
        [
            (
                a.device_id,
                f"{a.online_rate:.1%}",
                "-" if a.availability is None else f"{a.availability:.2%}",
                str(a.outages),
                _num(a.mtbf_h),
                _num(a.mttr_h),
            )
            for a in stats.availability
        ],
    )
    print()
    _table(
        ("compliance", "on time", "late", "rate", "overdue now"),
        [
            (
                c.kind,
                str(c.on_time),
                str(c.late),
                "-" if c.rate is None else f"{c.rate:.0%}",
                str(c.overdue_now),
            )
            for c in stats.compliance
        ],
    )
    if stats.counters:
        print("\ndevice counters (since the gateway started):")
        for device_id, counters in stats.counters.items():
            print(f"  {device_id}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0


# --- formatting --------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _status_line(s: PlanStatus) -> str:
    p = s.plan
    due = f"due {s.due_at:%Y-%m-%d %H:%M}Z" if s.due_at else ""
    unit = p.trigger.unit or " counts"
    if s.remaining is None:
        left = ""
    elif s.remaining < 0:
        left = f"overdue by {-s.remaining:.3g}{unit}"
    else:
        left = f"{s.remaining:.4g}{unit} left"
    when = " ".join(part for part in (due, left) if part)
    return (
        f"{s.state.value:<9} {p.id:<24} {p.device_id:<12} {p.kind.value:<12} "
        f"{p.title} — {when or '-'} ({s.reason})"
    )


def _status_json(s: PlanStatus) -> dict[str, Any]:
    return {
        "plan": s.plan.id,
        "device": s.plan.device_id,
        "kind": s.plan.kind.value,
        "title": s.plan.title,
        "trigger": s.plan.trigger.value,
        "state": s.state.value,
        "last_done": s.last_done.isoformat() if s.last_done else None,
        "due_at": s.due_at.isoformat() if s.due_at else None,
        "used": s.used,
        "remaining": s.remaining,
        "unit": s.plan.trigger.unit,
        "reason": s.reason,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
