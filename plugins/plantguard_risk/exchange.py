"""JSON and CSV exchange of risk points and hidden dangers, validated whole.

The documents have the shape of the device-record documents
(``{"format": …, "version": 1, "items": […]}``) and their JSON Schemas are
written to ``docs/schemas/`` (``plantguard risks schemas``).  In CSV, list
fields are ``;``-separated and the assessment factors are ``L=3; E=6; C=15``.

An import is checked in full before anything is written — every item against
its model, the assessment against the method, and every reference (risk point →
area, device, point and maintenance plan; hidden danger → risk point, device,
point) against the store — and every problem is reported with its row or item
and field.  One problem and nothing is imported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plantguard.plugin import ConfigurationError, HazardRow, ImportIssue, RiskPointRow

from .grading import Method, assess

__all__ = [
    "HazardDocument",
    "HazardItem",
    "ImportRefused",
    "Issue",
    "References",
    "RiskPointDocument",
    "RiskPointItem",
    "dump_hazards",
    "dump_risks",
    "load_hazards",
    "load_risks",
    "schema_of",
]

Kind = Literal["risks", "hazards"]
Format = Literal["json", "csv"]
_ID = r"^[A-Za-z][A-Za-z0-9_\-\.]*$"
Id = Annotated[str, Field(pattern=_ID, max_length=100)]
Short = Annotated[str, Field(max_length=200)]
MAX_BYTES = 20 * 1024 * 1024


#: A place in an imported file and what is wrong there: the records import's type.
Issue = ImportIssue


class ImportRefused(ConfigurationError):
    """A file rejected whole; :attr:`issues` says where and why."""

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        shown = "; ".join(f"{source}: {i}" for i in self.issues[:20])
        more = f"; … and {len(self.issues) - 20} more" if len(self.issues) > 20 else ""
        super().__init__(f"{shown}{more} — nothing was imported")


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskPointItem(_Item):
    """A risk point (风险点): where it is, what can go wrong, how bad, who controls it and how."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=500)]
    area: Annotated[str, Field(max_length=64)] = ""
    device_id: Annotated[str, Field(max_length=64)] | None = None
    point_id: Annotated[str, Field(max_length=130)] | None = None
    hazards: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, description="hazards identified (危险源辨识)"
    )
    method: Method = Field(description="lec (D = L·E·C) or matrix (R = L·S)")
    factors: dict[str, float] = Field(description="LEC: L, E, C; matrix: L, S")
    grade: Literal["red", "orange", "yellow", "blue"] | None = Field(
        None, description="computed from the factors; if given it must match"
    )
    measures: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list)
    level: Literal["company", "workshop", "team", "post"] = Field(
        "team", description="responsible level: 公司级 / 车间级 / 班组级 / 岗位级"
    )
    responsible: Short = ""
    plans: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, description="maintenance/inspection plans that check the measures"
    )

    @model_validator(mode="after")
    def _assessment(self) -> RiskPointItem:
        if not (self.area or self.device_id or self.point_id):
            raise ValueError("a risk point needs an area, a device or a point")
        _score, grade = assess(self.method, self.factors)
        if self.grade is not None and self.grade != grade:
            raise ValueError(f"grade {self.grade} does not match the assessment ({grade})")
        return self

    def row(self) -> RiskPointRow:
        score, grade = assess(self.method, self.factors)
        data = self.model_dump(exclude={"grade"})
        return RiskPointRow(**data, score=score, grade=grade)


class HazardItem(_Item):
    """A hidden danger (隐患) with its lifecycle fields; times are ISO 8601 with a zone."""

    id: Id
    title: Annotated[str, Field(min_length=1, max_length=500)]
    description: Annotated[str, Field(max_length=5000)] = ""
    state: Literal[
        "candidate", "reported", "assessed", "assigned", "rectified", "closed", "dismissed"
    ]
    source: Literal["person", "inspection", "rule", "import"] = "import"
    source_ref: Short = ""
    risk_id: Annotated[str, Field(max_length=100)] | None = None
    area: Annotated[str, Field(max_length=64)] = ""
    device_id: Annotated[str, Field(max_length=64)] | None = None
    point_id: Annotated[str, Field(max_length=130)] | None = None
    grade: Literal["", "general", "major"] = ""
    reported_by: Annotated[str, Field(min_length=1, max_length=128)]
    reported_at: dt.datetime
    measures: Annotated[str, Field(max_length=5000)] = ""
    assignee: Annotated[str, Field(max_length=128)] = ""
    deadline: dt.datetime | None = None
    funds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    rectified_by: Annotated[str, Field(max_length=128)] = ""
    rectified_at: dt.datetime | None = None
    evidence: Annotated[str, Field(max_length=5000)] = ""
    verified_by: Annotated[str, Field(max_length=128)] = ""
    closed_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HazardItem:
        for name in ("reported_at", "deadline", "rectified_at", "closed_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (…Z or +08:00)")
        later = ("assessed", "assigned", "rectified", "closed")
        if self.state in later and not self.grade:
            raise ValueError(f"a {self.state} hidden danger needs its grade")
        if self.state in later[1:] and not (self.assignee and self.deadline and self.measures):
            raise ValueError(f"a {self.state} hidden danger needs measures, assignee and deadline")
        if self.state == "closed":
            if not (self.verified_by and self.evidence and self.closed_at):
                raise ValueError("a closed hidden danger needs verified_by, evidence and closed_at")
            if self.verified_by == self.rectified_by:
                raise ValueError("the verifier must not be the rectifier")
        return self

    def row(self, changed: float) -> HazardRow:
        data = self.model_dump()
        for name in ("reported_at", "deadline", "rectified_at", "closed_at"):
            value = data[name]
            data[name] = None if value is None else value.timestamp()
        return HazardRow(**data, changed=changed)

    @classmethod
    def of(cls, row: HazardRow) -> HazardItem:
        data = asdict(row)
        data.pop("changed")
        for name in ("reported_at", "deadline", "rectified_at", "closed_at"):
            value = data[name]
            data[name] = None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)
        if data["source"] not in ("person", "inspection", "rule", "import"):
            data["source"] = "rule"
        return cls.model_validate(data)


class RiskPointDocument(_Item):
    """PlantGuard exchange document: the risk register (安全风险分级管控)."""

    format: Literal["plantguard/risk-points"] = "plantguard/risk-points"
    version: Literal[1] = 1
    items: list[RiskPointItem]


class HazardDocument(_Item):
    """PlantGuard exchange document: hidden dangers (隐患排查治理)."""

    format: Literal["plantguard/hazards"] = "plantguard/hazards"
    version: Literal[1] = 1
    items: list[HazardItem]


_DOCUMENTS: dict[Kind, type[RiskPointDocument] | type[HazardDocument]] = {
    "risks": RiskPointDocument,
    "hazards": HazardDocument,
}
_ITEMS: dict[Kind, type[RiskPointItem] | type[HazardItem]] = {
    "risks": RiskPointItem,
    "hazards": HazardItem,
}
SCHEMA_FILES: dict[Kind, str] = {
    "risks": "risk-points.schema.json",
    "hazards": "hazards.schema.json",
}


def schema_of(kind: Kind) -> str:
    """The JSON Schema of a document, as written to ``docs/schemas/``."""
    schema = _DOCUMENTS[kind].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# --- references -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class References:
    """What imported items may refer to, as the store knows it."""

    areas: set[str]
    devices: set[str]
    points: set[str]
    plans: set[str]
    risks: set[str]


def _risk_refs(item: RiskPointItem, refs: References) -> Iterable[tuple[str, str]]:
    if item.area and item.area not in refs.areas:
        yield "area", f"unknown area {item.area!r}"
    if item.device_id and item.device_id not in refs.devices:
        yield "device_id", f"unknown device {item.device_id!r}"
    if item.point_id and item.point_id not in refs.points:
        yield "point_id", f"unknown point {item.point_id!r}"
    for plan in item.plans:
        if plan not in refs.plans:
            yield "plans", f"unknown maintenance plan {plan!r}"


def _hazard_refs(item: HazardItem, refs: References) -> Iterable[tuple[str, str]]:
    if item.risk_id and item.risk_id not in refs.risks:
        yield "risk_id", f"unknown risk point {item.risk_id!r}"
    if item.device_id and item.device_id not in refs.devices:
        yield "device_id", f"unknown device {item.device_id!r}"
    if item.point_id and item.point_id not in refs.points:
        yield "point_id", f"unknown point {item.point_id!r}"


# --- reading ----------------------------------------------------------------------


def _issues(exc: ValidationError, where: str) -> list[Issue]:
    return [
        Issue(where, ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]


def _json_items(kind: Kind, text: str) -> tuple[list[Any], list[str], list[Issue]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [], [Issue(f"line {exc.lineno}", "", f"not JSON: {exc.msg}")]
    document = _DOCUMENTS[kind]
    expected = document.model_fields["format"].default
    if not isinstance(data, dict) or data.get("format") != expected:
        return [], [], [Issue("document", "format", f"expected {expected!r}")]
    if data.get("version") != 1 or set(data) - {"format", "version", "items"}:
        return [], [], [Issue("document", "", "expected version 1 and only format, version, items")]
    items = data.get("items")
    if not isinstance(items, list):
        return [], [], [Issue("document", "items", "expected a list")]
    return items, [f"items[{i}]" for i in range(len(items))], []


_LISTS = {"hazards", "measures", "plans"}


def _csv_cell(name: str, cell: str) -> Any:
    cell = cell.strip()
    if name in _LISTS:
        return [part.strip() for part in cell.split(";") if part.strip()]
    if name == "factors":
        pairs = [part.split("=", 1) for part in cell.split(";") if part.strip()]
        return {k.strip(): v.strip() for k, v in (p if len(p) == 2 else (p[0], "") for p in pairs)}
    return cell if cell != "" or name in ("title", "name", "id") else None


def _csv_items(kind: Kind, text: str) -> tuple[list[Any], list[str], list[Issue]]:
    reader = csv.DictReader(io.StringIO(text))
    known = set(_ITEMS[kind].model_fields)
    unknown = sorted(set(reader.fieldnames or ()) - known)
    if unknown:
        return [], [], [Issue("row 1", ", ".join(unknown), "unknown column")]
    items, places = [], []
    for row in reader:
        items.append({k: _csv_cell(k, v or "") for k, v in row.items() if v not in (None, "")})
        places.append(f"row {reader.line_num}")
    return items, places, []


def _load(
    kind: Kind,
    text: str,
    fmt: Format,
    source: str,
    check: Callable[[Any], Iterable[tuple[str, str]]],
) -> list[Any]:
    raw, places, issues = (_json_items if fmt == "json" else _csv_items)(kind, text)
    model = _ITEMS[kind]
    items: list[Any] = []
    seen: dict[str, str] = {}
    for data, where in zip(raw, places, strict=True):
        try:
            item = model.model_validate(data)
        except ValidationError as exc:
            issues += _issues(exc, where)
            continue
        if item.id in seen:
            issues.append(Issue(where, "id", f"{item.id!r} is also at {seen[item.id]}"))
        seen[item.id] = where
        issues += [Issue(where, f, m) for f, m in check(item)]
        items.append(item)
    if issues:
        raise ImportRefused(source, issues)
    return items


def load_risks(
    text: str, fmt: Format, refs: References, source: str = "input"
) -> list[RiskPointItem]:
    """Every risk point of a document, or :class:`ImportRefused` listing every problem."""
    return _load("risks", text, fmt, source, lambda item: _risk_refs(item, refs))


def load_hazards(
    text: str, fmt: Format, refs: References, source: str = "input"
) -> list[HazardItem]:
    """Every hidden danger of a document, or :class:`ImportRefused` listing every problem."""
    return _load("hazards", text, fmt, source, lambda item: _hazard_refs(item, refs))


def read_text(path: Path) -> str:
    """A file's text (UTF-8, BOM allowed), refused whole if too large or not UTF-8."""
    where = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ImportRefused(where, [Issue("file", "", f"larger than {MAX_BYTES} bytes")])
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImportRefused(where, [Issue("file", "", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise ImportRefused(where, [Issue(f"byte {exc.start}", "", "not UTF-8")]) from None


# --- writing ----------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v:g}" for k, v in value.items())
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _dump(kind: Kind, items: Sequence[BaseModel], fmt: Format) -> str:
    if fmt == "json":
        document = _DOCUMENTS[kind].model_validate({"items": [i.model_dump() for i in items]})
        return document.model_dump_json(indent=2) + "\n"
    out = io.StringIO()
    fields = list(_ITEMS[kind].model_fields)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: _csv_value(v) for k, v in dict(item).items()})
    return out.getvalue()


def dump_risks(rows: Sequence[RiskPointRow], fmt: Format) -> str:
    items = [
        RiskPointItem(**{k: v for k, v in asdict(r).items() if k not in ("score", "updated_at")})
        for r in rows
    ]
    return _dump("risks", items, fmt)


def dump_hazards(rows: Sequence[HazardRow], fmt: Format) -> str:
    return _dump("hazards", [HazardItem.of(r) for r in rows], fmt)


def guess_format(path: Path, explicit: str | None) -> Format:
    if explicit in ("json", "csv"):
        return "json" if explicit == "json" else "csv"
    return "csv" if path.suffix.lower() == ".csv" else "json"


def references_from(
    areas: Iterable[str],
    devices: Iterable[str],
    points: Iterable[str],
    plans: Iterable[str],
    risks: Iterable[str],
) -> References:
    return References(set(areas), set(devices), set(points), set(plans), set(risks))
