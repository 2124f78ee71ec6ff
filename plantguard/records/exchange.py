"""The exchange formats of device records: JSON (with a published JSON Schema) and CSV.

JSON document, one per kind (schemas in ``docs/schemas/``)::

    {"format": "plantguard/maintenance-records", "version": 1, "items": [{...}, ...]}

CSV: a header row of field names (any order; unknown columns are an error),
one row per item.  Lists and mappings, which a spreadsheet cell cannot hold,
are written ``a; b`` (parts, attachments), ``name=value; …`` (rated) and
``name=value unit; …`` (measurements).  An empty cell means "not given".

Import validates every row and collects every problem before anything is
written; one bad cell rejects the whole file with its row (the spreadsheet's
row number, header = 1) or item index, and the field.  The file's limits (size,
items, UTF-8, JSON depth and numbers, CSV cell length) are checked here, the
fields' limits in :mod:`plantguard.records.models`; docs/records.md, "Limits",
lists them all.  Hostile input meets only :class:`RecordImportError`: the JSON
parser's recursion, Python's integer-digit limit, NaN and the csv module's field
limit are all turned into issues.

Exceptions::

    RecordImportError      the file is unreadable or a row or field is invalid (.issues)
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import error_message, format_path
from .models import (
    MODELS,
    NOTES_LENGTH,
    DeviceRecord,
    MaintenancePlan,
    MaintenanceRecord,
    RecordKind,
)

__all__ = [
    "DOCUMENTS",
    "MAX_CELL",
    "MAX_FILE_BYTES",
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_LENGTH",
    "ImportIssue",
    "RecordImportError",
    "dumps",
    "guess_format",
    "loads",
    "read_file",
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

#: Limits of one import file (docs/records.md, "Limits"); the limits of each field
#: are in the models (:mod:`plantguard.records.models`).
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 100_000
MAX_JSON_DEPTH = 32
#: Digits of a JSON integer, characters of any JSON number.
MAX_INT_DIGITS = 20
MAX_NUMBER_LENGTH = 64
#: Characters of one CSV cell (the longest field, notes, is this long).
MAX_CELL = NOTES_LENGTH
#: Issues collected before giving up on a file.
_MAX_ISSUES = 1_000


def read_file(path: Path) -> bytes:
    """The bytes of an import file; a file over :data:`MAX_FILE_BYTES` is refused unread.

    Raises :class:`OSError` when the file cannot be read, :class:`RecordImportError`
    when it is too large.
    """
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise RecordImportError(str(path), [_too_large()])
    return data


def _too_large() -> ImportIssue:
    return ImportIssue(
        "file", "", f"larger than {MAX_FILE_BYTES // 2**20} MiB; split it into several files"
    )


def _decode(data: bytes) -> str:
    """UTF-8 text (with or without a byte-order mark), or :class:`_Refused` naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The codec reports offsets after the byte-order mark it removed.
        offset = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
        line = data.count(b"\n", 0, offset) + 1
        raise _Refused(
            ImportIssue(
                f"line {line}",
                "",
                f"not valid UTF-8: byte 0x{data[offset]:02X} at byte offset {offset}; "
                "save the file as UTF-8",
            )
        ) from None


class _Refused(Exception):
    def __init__(self, issue: ImportIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def loads(
    kind: RecordKind,
    text: str | bytes,
    fmt: FileFormat,
    source: str,
    *,
    known_devices: Iterable[str] | None = None,
    known_plans: Iterable[str] | Mapping[str, str] | None = None,
    known_points: Mapping[str, str] | None = None,
    known_alarms: Mapping[str, str] | None = None,
) -> list[Any]:
    """Validate a whole file; return its items or raise :class:`RecordImportError`.

    ``text`` is the file's content, as bytes (UTF-8 is required) or already decoded.
    The limits of :data:`MAX_FILE_BYTES`, :data:`MAX_ITEMS`, :data:`MAX_JSON_DEPTH`
    and of every field are checked before anything else; no other exception
    escapes, whatever the input.

    The ``known_*`` arguments (what is in the store) turn dangling references into
    issues at the row that makes them: ``known_devices`` (device ids),
    ``known_plans`` (plan ids, or plan id → its device id, which also checks that a
    record's plan is a plan of the record's device), ``known_points`` and
    ``known_alarms`` (point / alarm id → its device id: a plan's ``point`` and
    ``alarm`` must belong to the plan's device).
    """
    try:
        if isinstance(text, bytes):
            if len(text) > MAX_FILE_BYTES:
                raise _Refused(_too_large())
            text = _decode(text)
        elif len(text) > MAX_FILE_BYTES:
            raise _Refused(_too_large())
    except _Refused as exc:
        raise RecordImportError(source, [exc.issue]) from None
    if fmt == "json":
        items, issues, places = _load_json(kind, text)
    else:
        items, issues, places = _load_csv(kind, text)
    if not issues:
        issues = _check_references(
            items,
            places,
            known_devices=known_devices,
            known_plans=known_plans,
            known_points=known_points,
            known_alarms=known_alarms,
        )
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


# --- JSON -------------------------------------------------------------------------------


class _Rejected:
    """A JSON value the parser met and PlantGuard refuses (reported with its path)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Object(dict[str, Any]):
    """A JSON object that remembers keys given twice (json keeps the last silently)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.duplicates: list[str] = []
        if len(self) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key not in self.duplicates:
                    self.duplicates.append(key)
                seen.add(key)


def _json_int(text: str) -> int | _Rejected:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Rejected(f"an integer of {digits:,} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _json_float(text: str) -> float | _Rejected:
    if len(text) > MAX_NUMBER_LENGTH:
        return _Rejected(
            f"a number of {len(text):,} characters; at most {MAX_NUMBER_LENGTH} are accepted"
        )
    value = float(text)
    if not math.isfinite(value):
        return _Rejected(f"{_show(text)} is too large a number")
    return value


def _json_constant(name: str) -> _Rejected:
    return _Rejected(f"{name} is not a number; numbers must be finite")


def _parse_json(text: str) -> Any:
    """``json.loads`` that refuses what PlantGuard does not accept instead of raising."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
        )
    except json.JSONDecodeError as exc:
        raise _Refused(ImportIssue(f"line {exc.lineno}", "", f"invalid JSON: {exc.msg}")) from None
    except RecursionError:
        raise _Refused(
            ImportIssue("document", "", f"nested deeper than {MAX_JSON_DEPTH} levels")
        ) from None
    except ValueError as exc:  # a number Python cannot convert
        raise _Refused(ImportIssue("document", "", f"invalid JSON: {exc}")) from None


def _scan_json(data: Any) -> list[ImportIssue]:
    """Depth, refused numbers and repeated keys, each with its path (no recursion)."""
    issues: list[ImportIssue] = []
    too_deep = False
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(data, ())]
    while stack and len(issues) < _MAX_ISSUES:
        value, path = stack.pop()
        if isinstance(value, _Rejected):
            issues.append(_json_issue(path, value.message))
            continue
        if not isinstance(value, dict | list):
            continue
        if len(path) >= MAX_JSON_DEPTH:
            if not too_deep:
                issues.append(_json_issue(path, f"nested deeper than {MAX_JSON_DEPTH} levels"))
            too_deep = True
            continue
        if isinstance(value, _Object):
            issues += [_json_issue((*path, k), "given twice") for k in value.duplicates]
        children = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend(((child, (*path, key)) for key, child in children))
    return sorted(issues, key=lambda i: (_item_index(i.where), i.field))


def _item_index(where: str) -> int:
    return int(where[6:-1]) if where.startswith("items[") else -1


def _json_issue(path: tuple[int | str, ...], message: str) -> ImportIssue:
    where, field = _json_place(path)
    return ImportIssue(where, field, message)


def _load_json(kind: RecordKind, text: str) -> tuple[list[Any], list[ImportIssue], list[str]]:
    try:
        data = _parse_json(text)
    except _Refused as exc:
        return [], [exc.issue], []
    if isinstance(data, list):  # a bare array of items is accepted too
        data = {"items": data}
    if not isinstance(data, dict):
        return [], [ImportIssue("document", "", "expected an object with 'items'")], []
    if issues := _scan_json(data):
        return [], issues, []
    if isinstance(data.get("items"), list) and len(data["items"]) > MAX_ITEMS:
        return [], [ImportIssue("document", "items", _too_many(len(data["items"])))], []
    try:
        doc = DOCUMENTS[kind].model_validate(data)
    except ValidationError as exc:
        return [], _issues(exc, _json_place), []
    items: list[Any] = list(getattr(doc, "items"))  # noqa: B009 - typed per subclass
    return items, [], [f"items[{i}]" for i in range(len(items))]


def _too_many(count: int) -> str:
    return f"{count:,} items; at most {MAX_ITEMS:,} per file (split the file)"


def _json_place(loc: tuple[int | str, ...]) -> tuple[str, str]:
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        return f"items[{loc[1]}]", _path(loc[2:])
    return "document", _path(loc)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")


def _path(loc: Iterable[int | str]) -> str:
    """A field path for a message; keys from the file are shown quoted and cut if odd."""
    return format_path(
        part if isinstance(part, int) or _PLAIN_KEY.fullmatch(part) else _show(part) for part in loc
    )


def _show(text: str, width: int = 40) -> str:
    shown = repr(text[:width])
    return shown if len(text) <= width else shown + "…"


# --- CSV --------------------------------------------------------------------------------


def _load_csv(kind: RecordKind, text: str) -> tuple[list[Any], list[ImportIssue], list[str]]:
    model = MODELS[kind]
    end_of_first = text.find("\n")
    first = text if end_of_first < 0 else text[:end_of_first]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], [ImportIssue("row 1", "", "the file is empty: expected a header row")], []
    except csv.Error as exc:
        return [], [_csv_issue(exc, text, 1, delimiter, [])], []
    issues = [
        ImportIssue(
            "row 1",
            _path((h,)),
            f"unknown column (expected some of: {', '.join(model.model_fields)})",
        )
        for h in header
        if h not in model.model_fields
    ][:_MAX_ISSUES]
    if dupes := sorted({h for h in header if header.count(h) > 1}):
        issues += [ImportIssue("row 1", h, "column appears twice") for h in dupes]
    if issues:
        return [], issues, []
    items: list[Any] = []
    places: list[str] = []
    rows = iter(reader)
    count = 0
    while len(issues) < _MAX_ISSUES:
        start = reader.line_num + 1
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            issues.append(_csv_issue(exc, text, start, delimiter, header))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {line}"
        count += 1
        if count > MAX_ITEMS:
            issues.append(ImportIssue(where, "", f"more than {MAX_ITEMS:,} rows (split the file)"))
            break
        item, problems = _csv_item(model, header, row, where)
        issues += problems
        if item is not None:
            items.append(item)
            places.append(where)
    return items, issues, places


def _csv_item(
    model: type[BaseModel], header: Sequence[str], row: Sequence[str], where: str
) -> tuple[Any, list[ImportIssue]]:
    """One data row as an item, or the problems of its cells."""
    if len(row) != len(header):
        return None, [ImportIssue(where, "", f"{len(row)} cells, the header has {len(header)}")]
    issues: list[ImportIssue] = []
    data: dict[str, Any] = {}
    too_long = False
    for field, raw in zip(header, row, strict=True):
        cell = raw.strip()
        if cell == "":
            continue
        if len(cell) > MAX_CELL:
            message = f"{len(cell):,} characters; at most {MAX_CELL:,} in a cell"
            issues.append(ImportIssue(where, field, message))
            too_long = True
            continue
        try:
            data[field] = _parse_cell(field, cell)
        except ValueError as exc:
            issues.append(ImportIssue(where, field, str(exc)))
    if too_long:
        return None, issues
    try:
        return model.model_validate(data), issues
    except ValidationError as exc:
        return None, issues + _issues(exc, lambda loc: (where, _path(loc)))


def _csv_issue(
    exc: csv.Error, text: str, start: int, delimiter: str, header: Sequence[str]
) -> ImportIssue:
    """The csv module's complaint about the record starting at line ``start``.

    The one a hostile file meets first is the module's field size limit: name the
    column that exceeds it.
    """
    limit = csv.field_size_limit()
    if "field larger than field limit" in str(exc):
        column = _long_cell(text, _line_offset(text, start), delimiter, limit)
        field = header[column] if column is not None and column < len(header) else ""
        return ImportIssue(
            f"row {start}", field, f"a cell longer than {limit:,} characters; at most {MAX_CELL:,}"
        )
    return ImportIssue(f"row {start}", "", f"invalid CSV: {exc}")


def _line_offset(text: str, line: int) -> int:
    """Where line ``line`` (1-based, as the csv reader counts them) begins in ``text``."""
    offset = 0
    for _ in range(line - 1):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def _long_cell(text: str, offset: int, delimiter: str, limit: int) -> int | None:
    """The column of the first cell longer than ``limit`` in the record at ``offset``."""
    column = length = 0
    quoted = False
    i, end = offset, len(text)
    while i < end:
        char = text[i]
        if quoted:
            if char == '"' and text[i + 1 : i + 2] == '"':
                i += 1
                length += 1
            elif char == '"':
                quoted = False
            else:
                length += 1
        elif char == '"':
            quoted = True
        elif char == delimiter:
            column, length = column + 1, 0
        elif char in "\r\n":
            return None
        else:
            length += 1
        if length > limit:
            return column
        i += 1
    return None


def _parse_cell(field: str, cell: str) -> Any:
    if field in ("parts", "attachments"):
        return [p.strip() for p in cell.split(";") if p.strip()]
    if field == "rated":
        rated: dict[str, str] = {}
        for part in cell.split(";"):
            if not part.strip():
                continue
            name, value = _pair(part)
            if name in rated:
                raise ValueError(f"{_show(name)} is given twice")
            rated[name] = value
        return rated
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
        raise ValueError(f"expected name=value, got {_show(part.strip())}")
    return name.strip(), value.strip()


def _issues(exc: ValidationError, place: Any) -> list[ImportIssue]:
    issues = []
    for err in exc.errors(include_input=False, include_url=False)[:_MAX_ISSUES]:
        where, field = place(tuple(err["loc"]))
        issues.append(ImportIssue(where, field, error_message(err)))
    return issues


# --- references -------------------------------------------------------------------------


def _check_references(
    items: Sequence[Any],
    places: Sequence[str],
    *,
    known_devices: Iterable[str] | None,
    known_plans: Iterable[str] | Mapping[str, str] | None,
    known_points: Mapping[str, str] | None,
    known_alarms: Mapping[str, str] | None,
) -> list[ImportIssue]:
    devices = set(known_devices) if known_devices is not None else None
    plans: Mapping[str, str | None] | None
    if known_plans is None or isinstance(known_plans, Mapping):
        plans = known_plans
    else:
        plans = dict.fromkeys(known_plans)  # ids only: the plan's device is not checked
    issues = []
    for item, where in zip(items, places, strict=True):
        device_id = getattr(item, "device_id", None)
        if devices is not None and device_id is not None and device_id not in devices:
            issues.append(ImportIssue(where, "device_id", f"unknown device {device_id!r}"))
        if isinstance(item, MaintenancePlan):
            issues += _plan_targets(item, where, known_points, known_alarms)
        plan_id = getattr(item, "plan_id", None)
        if plans is not None and plan_id is not None:
            issues += _plan_of_record(plan_id, device_id, where, plans)
    return issues


def _plan_targets(
    plan: MaintenancePlan,
    where: str,
    known_points: Mapping[str, str] | None,
    known_alarms: Mapping[str, str] | None,
) -> list[ImportIssue]:
    """A plan's point and alarm: known to the store, and of the plan's own device."""
    issues = []
    for field, ref, known in (
        ("point", plan.point, known_points),
        ("alarm", plan.alarm, known_alarms),
    ):
        if ref is None or known is None:
            continue
        owner = known.get(ref)
        if owner is None:
            message = (
                f"unknown {field} {_show(ref)}: the store has no such {field} "
                "(it learns the site's points and alarms when the gateway runs)"
            )
            issues.append(ImportIssue(where, field, message))
        elif owner != plan.device_id:
            message = f"{field} {ref!r} belongs to device {owner!r}, not to {plan.device_id!r}"
            issues.append(ImportIssue(where, field, message))
    return issues


def _plan_of_record(
    plan_id: str, device_id: str | None, where: str, plans: Mapping[str, str | None]
) -> list[ImportIssue]:
    """A record's plan: known, and a plan of the record's own device."""
    if plan_id not in plans:
        return [ImportIssue(where, "plan_id", f"unknown plan {plan_id!r}")]
    owner = plans[plan_id]
    if owner is not None and owner != device_id:
        message = f"plan {plan_id!r} is a plan of device {owner!r}, not of {device_id!r}"
        return [ImportIssue(where, "plan_id", message)]
    return []


def _check_duplicates(items: Sequence[Any], places: Sequence[str]) -> list[ImportIssue]:
    first: dict[str, str] = {}
    issues = []
    for item, where in zip(items, places, strict=True):
        if item.id in first:
            issues.append(ImportIssue(where, "id", f"{item.id!r} already used at {first[item.id]}"))
        else:
            first[item.id] = where
    return issues
