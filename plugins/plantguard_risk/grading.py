"""Risk assessment: LEC (作业条件危险性评价法) and the 5×5 risk matrix, and the four colours.

LEC: D = L × E × C, with L the likelihood (0.1–10), E the exposure (0.5–10) and
C the consequence (1–100), the scales of the method as Chinese practice uses it.
Grades: D > 320 red (重大), 160 < D ≤ 320 orange (较大), 70 < D ≤ 160 yellow
(一般), D ≤ 70 blue (低).

Risk matrix: R = L × S, likelihood and severity each 1–5.  Grades: R ≥ 20 red,
15 ≤ R < 20 orange, 9 ≤ R < 15 yellow, R < 9 blue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = [
    "GRADES",
    "GRADE_LABELS",
    "METHOD_FACTORS",
    "Grade",
    "Method",
    "assess",
    "grade_of",
]

Method = Literal["lec", "matrix"]
Grade = Literal["red", "orange", "yellow", "blue"]

#: Worst first.
GRADES: tuple[Grade, ...] = ("red", "orange", "yellow", "blue")
GRADE_LABELS: dict[Grade, str] = {
    "red": "重大风险 (red, major)",
    "orange": "较大风险 (orange, considerable)",
    "yellow": "一般风险 (yellow, general)",
    "blue": "低风险 (blue, low)",
}

#: The factors each method needs, with their allowed range.
METHOD_FACTORS: dict[Method, dict[str, tuple[float, float]]] = {
    "lec": {"L": (0.1, 10.0), "E": (0.5, 10.0), "C": (1.0, 100.0)},
    "matrix": {"L": (1.0, 5.0), "S": (1.0, 5.0)},
}

#: (lower bound exclusive or inclusive, grade), worst first.
_LEC_BOUNDS: tuple[tuple[float, Grade], ...] = ((320, "red"), (160, "orange"), (70, "yellow"))
_MATRIX_BOUNDS: tuple[tuple[float, Grade], ...] = ((20, "red"), (15, "orange"), (9, "yellow"))


def grade_of(method: Method, score: float) -> Grade:
    """The colour of ``score`` under ``method`` (LEC bounds are exclusive, matrix inclusive)."""
    if method == "lec":
        for bound, grade in _LEC_BOUNDS:
            if score > bound:
                return grade
        return "blue"
    for bound, grade in _MATRIX_BOUNDS:
        if score >= bound:
            return grade
    return "blue"


def assess(method: Method, factors: Mapping[str, float]) -> tuple[float, Grade]:
    """Score and grade from the method's factors; raises ValueError naming a bad factor."""
    wanted = METHOD_FACTORS[method]
    missing = sorted(set(wanted) - set(factors))
    extra = sorted(set(factors) - set(wanted))
    if missing or extra:
        raise ValueError(
            f"{method} needs factors {', '.join(wanted)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    score = 1.0
    for name, (low, high) in wanted.items():
        value = float(factors[name])
        if not low <= value <= high:
            raise ValueError(f"factor {name} = {value:g} is outside {low:g}–{high:g}")
        score *= value
    return round(score, 6), grade_of(method, score)
