"""The acceptance record: items with their status and evidence, as JSON and in memory.

One :class:`Item` per thing the standard's scope asks to be shown at acceptance
(验收) — a system property, a device's basic information, an alarm's loop check,
a maintenance plan, a detection model — with one of four statuses:

* ``pass`` — shown to hold, with the evidence;
* ``fail`` — shown not to hold, or could not be shown (a device that did not answer);
* ``not-applicable`` — does not apply to this site (no device reports time), with why;
* ``sign-off`` — recorded for an engineer to judge and sign (a limit alarm on a device
  acceptance may not write to: its limits and live value).

The record is the JSON document ``plantguard acceptance`` writes (``format``
``plantguard/acceptance-record``, ``version`` 1); the HTML report is rendered from
it alone (:mod:`.render`), so a record can be rendered again later.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORMAT",
    "SECTIONS",
    "Item",
    "Record",
    "Status",
    "json_ready",
]

FORMAT = "plantguard/acceptance-record"
VERSION = 1


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"
    SIGN_OFF = "sign-off"

    @property
    def label(self) -> str:
        return {"pass": "pass", "fail": "FAIL", "not-applicable": "n/a", "sign-off": "sign-off"}[
            self.value
        ]


#: Sections of the record, in the order of the standard's scope, with their titles.
SECTIONS: dict[str, str] = {
    "system": "System",
    "devices": "Devices",
    "alarms": "Alarms",
    "maintenance": "Maintenance and inspection",
    "detection": "Detection and prediction",
}


@dataclass(slots=True)
class Item:
    """One acceptance item.

    ``id`` is stable across runs (``system.opcua.certificate``,
    ``devices.pump1.info.serial_number``, ``alarms.tank1.level.limit``) so two
    records can be compared; ``summary`` is the evidence in one line for people,
    ``evidence`` the same and more as JSON-ready data.
    """

    id: str
    title: str
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def section(self) -> str:
        return self.id.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": json_ready(self.evidence),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Item:
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            status=Status(data["status"]),
            summary=str(data.get("summary", "")),
            evidence=dict(data.get("evidence") or {}),
        )


@dataclass(slots=True)
class Record:
    """A whole acceptance run: what was tested, when, by whom, and every item."""

    site_id: str
    site_name: str
    site_file: str
    site_sha256: str
    version: str
    started: dt.datetime
    finished: dt.datetime | None = None
    store: str = ""
    #: How the gateway was reached: ``mode`` (``running`` or ``started``), ``holder``, ``endpoint``.
    gateway: dict[str, Any] = field(default_factory=dict)
    tested_by: str = ""
    items: list[Item] = field(default_factory=list)

    def add(self, items: Iterable[Item]) -> None:
        self.items.extend(items)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in Status), 0)
        for item in self.items:
            counts[item.status.value] += 1
        return counts

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.status is Status.FAIL]

    @property
    def accepted(self) -> bool:
        """Nothing failed (sign-off items wait for a signature, they do not fail)."""
        return not self.failed

    def section(self, name: str) -> list[Item]:
        return [i for i in self.items if i.section == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "site": {
                "id": self.site_id,
                "name": self.site_name,
                "file": self.site_file,
                "sha256": self.site_sha256,
            },
            "plantguard_version": self.version,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
            "store": self.store,
            "gateway": json_ready(self.gateway),
            "tested_by": self.tested_by,
            "result": "accepted" if self.accepted else "not accepted",
            "counts": self.counts(),
            "items": [i.to_json() for i in self.items],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an acceptance record (format {data.get('format')!r})")
        site = data.get("site") or {}
        finished = data.get("finished")
        return cls(
            site_id=str(site.get("id", "")),
            site_name=str(site.get("name", "")),
            site_file=str(site.get("file", "")),
            site_sha256=str(site.get("sha256", "")),
            version=str(data.get("plantguard_version", "")),
            started=dt.datetime.fromisoformat(data["started"]),
            finished=dt.datetime.fromisoformat(finished) if finished else None,
            store=str(data.get("store", "")),
            gateway=dict(data.get("gateway") or {}),
            tested_by=str(data.get("tested_by", "")),
            items=[Item.from_json(i) for i in data.get("items", ())],
        )


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def json_ready(value: Any) -> Any:
    """``value`` with what JSON cannot hold made plain: NaN and ±Inf become None,
    tuples lists, datetimes ISO text, enums their value."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return json_ready(value.value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
