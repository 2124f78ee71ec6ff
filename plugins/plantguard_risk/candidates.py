"""Candidates: what the monitoring saw that may be a hidden danger, for a person to judge.

A rule never files a hidden danger by itself — it opens a *candidate*, which a
person accepts (it becomes a reported hidden danger) or dismisses.  Sources:

* a failed inspection (a maintenance record with ``passed: false``), ``inspection:<record>``;
* a chattering alarm (``chattering_count`` activations within ``chattering_window`` s),
  ``alarm:<id>:chattering``;
* a standing alarm (active longer than ``standing_hours``), ``alarm:<id>:standing``;
* a detection model's sustained flag (an alarm of a detection kind active longer
  than ``detection_minutes``), ``alarm:<id>:detection``;
* a maintenance or inspection plan overdue by more than ``plan_overdue_days``,
  ``plan:<id>:overdue``.

Each source reference opens at most one candidate while one is pending or open,
and not again within ``reopen_days`` of the last one being closed or dismissed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    AlarmOverview,
    DueState,
    HazardRow,
    PlantState,
    RiskStore,
    Store,
    plan_statuses,
)

from .lifecycle import Lifecycle

__all__ = ["CandidateSettings", "Found", "find", "open_candidates"]

_DAY = 86400.0


class CandidateSettings(BaseModel):
    """The ``candidates`` part of ``rules.hazards`` in the site file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    inspection_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    chattering_count: Annotated[int, Field(ge=2, le=1000)] = 3
    chattering_window: Annotated[float, Field(gt=0, le=86400)] = 60.0
    standing_hours: Annotated[float, Field(gt=0, le=8760)] = 24.0
    detection_kinds: tuple[str, ...] = ("deviation",)
    detection_minutes: Annotated[float, Field(gt=0, le=525600)] = 30.0
    plan_overdue_days: Annotated[float, Field(ge=0, le=3650)] = 7.0
    reopen_days: Annotated[float, Field(ge=0, le=3650)] = 7.0


@dataclass(frozen=True, slots=True)
class Found:
    source: str  # inspection | rule
    ref: str
    title: str
    device_id: str | None = None
    point_id: str | None = None


def _inspections(plant: PlantState, now: float, s: CandidateSettings) -> Iterator[Found]:
    for record_id, device_id, work_done in plant.failed_inspections(now - s.inspection_days * _DAY):
        yield Found(
            "inspection",
            f"inspection:{record_id}",
            f"failed inspection {record_id} of {device_id}: {work_done}".strip(),
            device_id=device_id,
        )


def _alarm_found(alarm: AlarmOverview, what: str, title: str) -> Found:
    return Found(
        "rule",
        f"alarm:{alarm.alarm_id}:{what}",
        title,
        device_id=alarm.device_id or None,
        point_id=alarm.source_id if "." in alarm.source_id else None,
    )


def _alarms(plant: PlantState, now: float, s: CandidateSettings) -> Iterator[Found]:
    counts = plant.activations_since(now - s.chattering_window)
    chattering = [a for a, n in counts.items() if n >= s.chattering_count]
    for alarm in plant.alarms(chattering) if chattering else ():
        n = counts[alarm.alarm_id]
        text = f"chattering alarm {alarm.alarm_id}: {n} activations in {s.chattering_window:g} s"
        yield _alarm_found(alarm, "chattering", text)
    shortest = min(s.standing_hours * 3600, s.detection_minutes * 60)
    for alarm in plant.alarms(active_before=now - shortest):
        age = now - (alarm.active_since or now)
        if alarm.kind in s.detection_kinds:
            if age > s.detection_minutes * 60:
                text = f"detection flag {alarm.alarm_id} sustained for {age / 60:.0f} min"
                yield _alarm_found(alarm, "detection", text)
        elif age > s.standing_hours * 3600:
            text = f"standing alarm {alarm.alarm_id}: active for {age / 3600:.1f} h"
            yield _alarm_found(alarm, "standing", text)


def _plans(store: Store, now: float, s: CandidateSettings) -> Iterator[Found]:
    plans = [p for p in store.records.plans() if p.active]
    for plan_id, status in (plan_statuses(store, now, plans) if plans else {}).items():
        if status.state is not DueState.OVERDUE or status.due_at is None:
            continue
        late = (now - status.due_at.timestamp()) / _DAY
        if late > s.plan_overdue_days:
            yield Found(
                "rule",
                f"plan:{plan_id}:overdue",
                f"{status.plan.kind.value} plan {plan_id} overdue by {late:.0f} days",
                device_id=status.plan.device_id,
            )


def find(store: Store, now: float, settings: CandidateSettings) -> list[Found]:
    """Everything that would open a candidate at ``now``, before de-duplication."""
    plant = PlantState(store.engine)
    return [
        *_inspections(plant, now, settings),
        *_alarms(plant, now, settings),
        *_plans(store, now, settings),
    ]


def _blocked(previous: list[HazardRow], now: float, reopen: float) -> bool:
    for hazard in previous:
        if hazard.state not in ("closed", "dismissed") or now - hazard.changed < reopen:
            return True
    return False


def open_candidates(
    store: Store, lifecycle: Lifecycle, now: float, settings: CandidateSettings
) -> list[HazardRow]:
    """Open a candidate for each new finding; return the candidates opened."""
    found = find(store, now, settings)
    previous = RiskStore(store.engine).hazards_by_ref(f.ref for f in found)
    opened = []
    for f in found:
        if _blocked(previous.get(f.ref, []), now, settings.reopen_days * _DAY):
            continue
        opened.append(
            lifecycle.open_candidate(
                f.title, f.source, f.ref, device_id=f.device_id, point_id=f.point_id
            )
        )
        previous[f.ref] = [opened[-1]]
    return opened
