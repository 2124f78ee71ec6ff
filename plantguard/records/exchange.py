"""The exchange formats of device records: JSON (with a published JSON Schema) and CSV.

JSON document, one per kind (schemas in ``docs/schemas/``)::

    {"format": "plantguard/maintenance-records", "version": 1, "items": [{...}, ...]}

CSV: a header row of field names (any order; unknown columns are an error),
one row per item.  Lists and mappings, which a spreadsheet cell cannot hold,
are written ``a; b`` (parts, attachments), ``name=value; …`` (rated) and
``name=value unit; …`` (measurements).  An empty cell means "not given".

Import validates every row and collects every problem before anything is
written; one bad cell rejects the whole file with its row (the spreadsheet's
row number, header = 1) or item index, and the field.

Exceptions::

    RecordImportError      the file is unreadable or a row or field is invalid (.issues)
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import error_message, format_path
from .models import MODELS, DeviceRecord, MaintenancePlan, MaintenanceRecord, RecordKind

__all__ = [
    "DOCUMENTS",
    "ImportIssue",
    "RecordImportError",
    "dumps",
    "loads",
]

FileFormat = Literal["json", "csv"]
VERSION = 1

AnyRecord = DeviceRecord | MaintenancePlan | MaintenanceRecord


@dataclass(frozen=True, slots=True)
class ImportIssue:
    where: str  # "row 17" or "items[16]"
    field: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.field}: {self.message}"
            if self.field
            else f"{self.where}: {self.message}"
        )


class RecordImportError(Exception):
    """The file was rejected whole; :attr:`issues` says where and why."""

    def __init__(self, source: str, issues: Sequence[ImportIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        shown = "\n".join(f"{source}: {i}" for i in self.issues[:50])
        more = f"\n… and {len(self.issues) - 50} more" if len(self.issues) > 50 else ""
        super().__init__(f"{shown}{more}\nnothing was imported")


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1


class DeviceDocument(_Document):
    """PlantGuard exchange document: device basic information."""

    format: Literal["plantguard/devices"] = "plantguard/devices"
    items: list[DeviceRecord]


class MaintenancePlanDocument(_Document):
    """PlantGuard exchange document: maintenance and inspection plans."""

    format: Literal["plantguard/maintenance-plans"] = "plantguard/maintenance-plans"
    items: list[MaintenancePlan]


class MaintenanceRecordDocument(_Document):
    """PlantGuard exchange document: maintenance, inspection and calibration records."""

    format: Literal["plantguard/maintenance-records"] = "plantguard/maintenance-records"
    items: list[MaintenanceRecord]


DOCUMENTS: dict[RecordKind, type[_Document]] = {
    "devices": DeviceDocument,
    "plans": MaintenancePlanDocument,
    "records": MaintenanceRecordDocument,
}


# --- writing ----------------------------------------------------------------------------


def dumps(kind: RecordKind, items: Sequence[AnyRecord], fmt: FileFormat) -> str:
    if fmt == "json":
        doc = {
            "format": _format(kind),
            "version": VERSION,
            "items": [item.model_dump(mode="json") for item in items],
        }
        return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    fields = list(MODELS[kind].model_fields)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for item in items:
        data = item.model_dump(mode="json")
        writer.writerow([_cell(field, data[field]) for field in fields])
    return out.getvalue()


def _cell(field: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if field == "measurements":
        return "; ".join(
            f"{m['name']}={m['value']!r}" + (f" {m['unit']}" if m["unit"] else "") for m in value
        )
    if field == "rated":
        return "; ".join(f"{k}={v!r}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


# --- reading ----------------------------------------------------------------------------


def loads(
    kind: RecordKind,
    text: str,
    fmt: FileFormat,
    source: str,
    *,
    known_devices: Iterable[str] | None = None,
    known_plans: Iterable[str] | None = None,
) -> list[Any]:
    """Validate a whole file; return its items or raise :class:`RecordImportError`.

    ``known_devices`` / ``known_plans`` (ids already in the store) turn dangling
    references into issues at the row that makes them.
    """
    if fmt == "json":
        items, issues, places = _load_json(kind, text)
    else:
        items, issues, places = _load_csv(kind, text)
    if not issues:
        issues = _check_references(items, places, known_devices, known_plans)
        issues += _check_duplicates(items, places)
    if issues:
        raise RecordImportError(source, issues)
    return items


def _format(kind: RecordKind) -> str:
    default: str = DOCUMENTS[kind].model_fields["format"].default
    return default


def guess_format(path: Path, explicit: str | None) -> FileFormat:
    if explicit in ("json", "csv"):
        return explicit  # type: ignore[return-value]
    return "csv" if path.suffix.lower() in (".csv", ".txt") else "json"


def _load_json(kind: RecordKind, text: str) -> tuple[list[Any], list[ImportIssue], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [ImportIssue(f"line {exc.lineno}", "", f"invalid JSON: {exc.msg}")], []
    if isinstance(data, list):  # a bare array of items is accepted too
        data = {"items": data}
    if not isinstance(data, dict):
        return [], [ImportIssue("document", "", "expected an object with 'items'")], []
    try:
        doc = DOCUMENTS[kind].model_validate(data)
    except ValidationError as exc:
        return [], _issues(exc, _json_place), []
    items: list[Any] = list(getattr(doc, "items"))  # noqa: B009 - typed per subclass
    return items, [], [f"items[{i}]" for i in range(len(items))]


def _json_place(loc: tuple[int | str, ...]) -> tuple[str, str]:
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        return f"items[{loc[1]}]", format_path(loc[2:])
    return "document", format_path(loc)


def _load_csv(kind: RecordKind, text: str) -> tuple[list[Any], list[ImportIssue], list[str]]:
    model = MODELS[kind]
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], [ImportIssue("row 1", "", "the file is empty: expected a header row")], []
    issues = [
        ImportIssue(
            "row 1", h, f"unknown column (expected some of: {', '.join(model.model_fields)})"
        )
        for h in header
        if h not in model.model_fields
    ]
    if dupes := sorted({h for h in header if header.count(h) > 1}):
        issues += [ImportIssue("row 1", h, "column appears twice") for h in dupes]
    if issues:
        return [], issues, []
    items: list[Any] = []
    places: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {line}"
        if len(row) != len(header):
            issues.append(ImportIssue(where, "", f"{len(row)} cells, the header has {len(header)}"))
            continue
        data: dict[str, Any] = {}
        for field, raw in zip(header, row, strict=True):
            cell = raw.strip()
            if cell == "":
                continue
            try:
                data[field] = _parse_cell(field, cell)
            except ValueError as exc:
                issues.append(ImportIssue(where, field, str(exc)))
        try:
            items.append(model.model_validate(data))
            places.append(where)
        except ValidationError as exc:
            issues += _issues(exc, lambda loc, w=where: (w, format_path(loc)))
    return items, issues, places


def _parse_cell(field: str, cell: str) -> Any:
    if field in ("parts", "attachments"):
        return [p.strip() for p in cell.split(";") if p.strip()]
    if field == "rated":
        return dict(_pair(p) for p in cell.split(";") if p.strip())
    if field == "measurements":
        out = []
        for part in cell.split(";"):
            if not part.strip():
                continue
            name, rest = _pair(part)
            value, _, unit = rest.partition(" ")
            out.append({"name": name, "value": value, "unit": unit.strip()})
        return out
    return cell


def _pair(part: str) -> tuple[str, str]:
    name, sep, value = part.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"expected name=value, got {part.strip()!r}")
    return name.strip(), value.strip()


def _issues(exc: ValidationError, place: Any) -> list[ImportIssue]:
    issues = []
    for err in exc.errors():
        where, field = place(tuple(err["loc"]))
        issues.append(ImportIssue(where, field, error_message(err)))
    return issues


def _check_references(
    items: Sequence[Any],
    places: Sequence[str],
    known_devices: Iterable[str] | None,
    known_plans: Iterable[str] | None,
) -> list[ImportIssue]:
    issues = []
    devices = set(known_devices) if known_devices is not None else None
    plans = set(known_plans) if known_plans is not None else None
    for item, where in zip(items, places, strict=True):
        device_id = getattr(item, "device_id", None)
        if devices is not None and device_id is not None and device_id not in devices:
            issues.append(ImportIssue(where, "device_id", f"unknown device {device_id!r}"))
        plan_id = getattr(item, "plan_id", None)
        if plans is not None and plan_id is not None and plan_id not in plans:
            issues.append(ImportIssue(where, "plan_id", f"unknown plan {plan_id!r}"))
    return issues


def _check_duplicates(items: Sequence[Any], places: Sequence[str]) -> list[ImportIssue]:
    first: dict[str, str] = {}
    issues = []
    for item, where in zip(items, places, strict=True):
        if item.id in first:
            issues.append(ImportIssue(where, "id", f"{item.id!r} already used at {first[item.id]}"))
        else:
            first[item.id] = where
    return issues
