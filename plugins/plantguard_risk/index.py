"""The safety-production early-warning index (安全生产预警指数): the formula.

A weighted sum of the plant's live state, capped at 100; higher is worse::

    index = min(100, Σ component)

    alarms_unack      = Σ_p  w.unack[p]     · (unacknowledged alarms of priority p)
    alarms_standing   = Σ_p  w.standing[p]  · (alarms active longer than standing_hours)
    hazards_open      = Σ_h  w.hazard[g_h]  · (1 + min(age_h, age_cap_days) / age_double_days)
    rectification_overdue = Σ_g w.overdue[g] · (rectifications past their deadline, grade g)
    inspections_overdue   = w.inspection   · (maintenance/inspection plans overdue)
    risk_controls_overdue = Σ_c w.risk[c]  · (red/orange risk points with a linked plan overdue)
    detection_flags   = w.detection        · (active alarms of the detection kinds)
    device_unavailability = w.unavailable  · (1 − devices online / devices known)

``p`` is an alarm priority (low, medium, high, urgent), ``g`` a hidden danger's
grade (one not yet assessed counts as general), ``age`` in days since it was
reported.  Each component is capped at ``component_cap`` so that one flood
cannot hide the rest.  Four warning levels (预警等级) from ``thresholds``:
below the first blue (低), then yellow (一般), orange (较大), from the third red (重大).

All weights are settings of the ``safety_index`` service in the site file
(:class:`IndexSettings`); docs/safety.md gives a worked example.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "COMPONENTS",
    "LEVELS",
    "IndexInputs",
    "IndexResult",
    "IndexSettings",
    "compute",
    "level_of",
]

PriorityKey = Literal["low", "medium", "high", "urgent"]
LevelName = Literal["blue", "yellow", "orange", "red"]
LEVELS: tuple[LevelName, ...] = ("blue", "yellow", "orange", "red")
LEVEL_LABELS: dict[LevelName, str] = {
    "blue": "蓝色预警 (blue, low)",
    "yellow": "黄色预警 (yellow, general)",
    "orange": "橙色预警 (orange, considerable)",
    "red": "红色预警 (red, major)",
}
COMPONENTS: tuple[str, ...] = (
    "alarms_unack",
    "alarms_standing",
    "hazards_open",
    "rectification_overdue",
    "inspections_overdue",
    "risk_controls_overdue",
    "detection_flags",
    "device_unavailability",
)

Weight = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PriorityWeights(_Settings):
    low: Weight = 0.5
    medium: Weight = 1.0
    high: Weight = 2.0
    urgent: Weight = 4.0


class GradeWeights(_Settings):
    general: Weight
    major: Weight


class RiskWeights(_Settings):
    red: Weight = 10.0
    orange: Weight = 5.0


class IndexSettings(_Settings):
    """``services.safety_index`` in the site file: the weights of the index."""

    unack: PriorityWeights = PriorityWeights()
    standing: PriorityWeights = PriorityWeights(low=0.5, medium=1, high=2, urgent=3)
    standing_hours: Annotated[float, Field(gt=0, le=8760)] = 24.0
    hazard: GradeWeights = GradeWeights(general=2, major=10)
    age_double_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    age_cap_days: Annotated[float, Field(ge=0, le=3650)] = 90.0
    overdue: GradeWeights = GradeWeights(general=5, major=15)
    inspection: Weight = 2.0
    risk: RiskWeights = RiskWeights()
    detection: Weight = 3.0
    detection_kinds: tuple[str, ...] = ("deviation",)
    unavailable: Weight = 20.0
    component_cap: Annotated[float, Field(gt=0, le=100)] = 100.0
    thresholds: tuple[float, float, float] = (25.0, 50.0, 75.0)
    #: Seconds between two computations (the virtual device's reads in between repeat
    #: the last result); 0: every read.
    refresh: Annotated[float, Field(ge=0, le=3600)] = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> IndexSettings:
        a, b, c = self.thresholds
        if not 0 < a < b < c <= 100:
            raise ValueError("thresholds must rise strictly within 0–100")
        return self


@dataclass(frozen=True, slots=True)
class IndexInputs:
    """The live state the index is computed from (gathered by :mod:`.gather`)."""

    unack: Mapping[PriorityKey, int] = field(default_factory=dict)
    standing: Mapping[PriorityKey, int] = field(default_factory=dict)
    #: (grade, age in days) of every open hidden danger
    hazards: tuple[tuple[str, float], ...] = ()
    overdue: Mapping[str, int] = field(default_factory=dict)
    inspections_overdue: int = 0
    risk_controls_overdue: Mapping[str, int] = field(default_factory=dict)
    detection_flags: int = 0
    devices_known: int = 0
    devices_online: int = 0


@dataclass(frozen=True, slots=True)
class IndexResult:
    index: float
    level: LevelName
    components: dict[str, float]

    @property
    def level_number(self) -> int:
        """1 (blue) … 4 (red), as the virtual device's ``level`` point shows it."""
        return LEVELS.index(self.level) + 1


def level_of(index: float, thresholds: tuple[float, float, float]) -> LevelName:
    for level, bound in zip(reversed(LEVELS), reversed(thresholds), strict=False):
        if index >= bound:
            return level
    return "blue"


def _by_priority(weights: PriorityWeights, counts: Mapping[PriorityKey, int]) -> float:
    return float(sum(getattr(weights, p) * n for p, n in counts.items()))


def _grade_weight(weights: GradeWeights, grade: str) -> float:
    return weights.major if grade == "major" else weights.general


def compute(inputs: IndexInputs, settings: IndexSettings) -> IndexResult:
    """The index, its warning level and each component (already capped)."""
    s = settings
    hazards = sum(
        _grade_weight(s.hazard, grade) * (1 + min(age, s.age_cap_days) / s.age_double_days)
        for grade, age in inputs.hazards
    )
    unavailable = 1 - inputs.devices_online / inputs.devices_known if inputs.devices_known else 0.0
    raw = {
        "alarms_unack": _by_priority(s.unack, inputs.unack),
        "alarms_standing": _by_priority(s.standing, inputs.standing),
        "hazards_open": hazards,
        "rectification_overdue": sum(
            _grade_weight(s.overdue, g) * n for g, n in inputs.overdue.items()
        ),
        "inspections_overdue": s.inspection * inputs.inspections_overdue,
        "risk_controls_overdue": sum(
            getattr(s.risk, c) * n for c, n in inputs.risk_controls_overdue.items()
        ),
        "detection_flags": s.detection * inputs.detection_flags,
        "device_unavailability": s.unavailable * unavailable,
    }
    components = {k: round(min(v, s.component_cap), 6) for k, v in raw.items()}
    index = round(min(100.0, sum(components.values())), 6)
    return IndexResult(index, level_of(index, s.thresholds), components)
