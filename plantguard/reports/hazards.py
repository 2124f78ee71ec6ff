"""The report's hazards section: hidden dangers opened, closed and overdue by grade,
rectification time, and the early-warning index's trend (隐患排查治理, 预警指数).

Gathered from the store's risk tables (migration 0005) and from the history of
the early-warning index, which is a point like any other: the points of a device
that has both an ``index`` and a ``level`` point (the ``safety_index`` virtual
device; docs/safety.md).  A store that uses none of it — no hidden danger, no
risk point, no index point — gives no section, so reports of plants that do not
keep the register are unchanged.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from ..store import Store
from ..store.risk import HazardRow, RiskStore
from ..store.schema import points
from . import page as pg
from . import plots

__all__ = ["GRADES", "HazardData", "hazard_data", "hazards_section"]

#: Grades of hidden dangers as stored ("" is not assessed yet), with their labels.
GRADES: dict[str, str] = {"major": "major 重大", "general": "general 一般", "": "not assessed"}
GRADE_COLOURS = ("red", "orange", "yellow", "blue")
_OPEN = ("reported", "assessed", "assigned", "rectified")
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class IndexTrend:
    point_id: str
    time: list[float]
    value: list[float]

    def summary(self) -> dict[str, float | None]:
        if not self.value:
            return {"first": None, "last": None, "min": None, "max": None}
        return {
            "first": self.value[0],
            "last": self.value[-1],
            "min": min(self.value),
            "max": max(self.value),
        }


@dataclass(frozen=True, slots=True)
class HazardData:
    since: float
    until: float
    opened: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    open_now: dict[str, int] = field(default_factory=dict)
    overdue_now: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    #: days from report to closure of the hidden dangers closed in the period
    rectification_days: list[float] = field(default_factory=list)
    risk_grades: dict[str, int] = field(default_factory=dict)
    index: IndexTrend | None = None

    def rectification(self) -> dict[str, float | None]:
        days = self.rectification_days
        if not days:
            return {"mean": None, "median": None, "max": None}
        return {
            "mean": statistics.fmean(days),
            "median": statistics.median(days),
            "max": max(days),
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "opened": self.opened,
            "closed": self.closed,
            "open_now": self.open_now,
            "overdue_now": self.overdue_now,
            "candidates": self.candidates,
            "rectification_days": self.rectification(),
            "risk_points": self.risk_grades,
            "index": None
            if self.index is None
            else {"point": self.index.point_id, **self.index.summary()},
        }


def _index_point(store: Store) -> str | None:
    with store.engine.connect() as conn:
        ids: set[str] = {str(p) for p in conn.execute(sa.select(points.c.point_id)).scalars()}
    for point_id in sorted(ids):
        device, _, local = point_id.rpartition(".")
        if local == "index" and f"{device}.level" in ids:
            return point_id
    return None


def _counts(rows: list[HazardRow]) -> dict[str, int]:
    return dict(Counter(r.grade for r in rows))


def hazard_data(store: Store, since: float, until: float) -> HazardData | None:
    """The section's numbers for ``[since, until)``; None when the store keeps none of it."""
    risks = RiskStore(store.engine)
    rows = [h for h in risks.hazards() if h.reported_at < until]
    register = risks.risks()
    index_point = _index_point(store)
    if not rows and not register and index_point is None:
        return None
    filed = [h for h in rows if h.state not in ("candidate", "dismissed")]
    closed = [h for h in filed if h.closed_at is not None and since <= h.closed_at < until]
    open_now = [h for h in filed if h.state in _OPEN or (h.closed_at or 0) >= until]
    overdue = [
        h
        for h in open_now
        if h.deadline is not None and h.deadline < until and (h.rectified_at or until) >= until
    ]
    trend = None
    if index_point is not None:
        t = store.trend(index_point, since, until)
        keep = ~np.isnan(np.asarray(t.value, dtype=float))
        trend = IndexTrend(
            index_point,
            np.asarray(t.time)[keep].tolist(),
            np.asarray(t.value, dtype=float)[keep].tolist(),
        )
    return HazardData(
        since=since,
        until=until,
        opened=_counts([h for h in filed if h.reported_at >= since]),
        closed=_counts(closed),
        open_now=_counts(open_now),
        overdue_now=_counts(overdue),
        candidates=sum(1 for h in rows if h.state == "candidate"),
        rectification_days=[((h.closed_at or 0) - h.reported_at) / _DAY for h in closed],
        risk_grades=dict(Counter(r.grade for r in register)),
        index=trend,
    )


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} d"


def _index_figure(trend: IndexTrend, since: float, until: float) -> pg.Markup:
    fig = pg.new_figure(10, 2.6)
    ax = fig.add_subplot()
    ax.step(plots.date_numbers(trend.time), trend.value, where="post", color="#b03a2e")
    for bound, colour in ((25, "#f1c40f"), (50, "#e67e22"), (75, "#c0392b")):
        ax.axhline(bound, color=colour, linewidth=0.8, linestyle="--")
    ax.set_ylim(0, 100)
    ax.set_ylabel("index")
    plots.time_axis(ax, since, until)
    caption = (
        f"Early-warning index ({trend.point_id}); dashed: the default warning thresholds "
        "25 / 50 / 75 (yellow, orange, red)"
    )
    return pg.figure(fig, caption=caption)


def hazards_section(data: HazardData, clock: Callable[[float | None], str]) -> pg.Markup:
    """The section as HTML; ``clock`` formats times as the rest of the report does."""
    rows = [
        (
            label,
            data.opened.get(g, 0),
            data.closed.get(g, 0),
            data.open_now.get(g, 0),
            data.overdue_now.get(g, 0),
        )
        for g, label in GRADES.items()
    ]
    rect = data.rectification()
    parts: list[object] = [
        pg.table(["grade", "opened", "closed", "open at end", "overdue at end"], rows),
        pg.key_values(
            [
                ("candidates awaiting a decision", data.candidates),
                ("rectification time (report → closure)", ""),
                ("mean / median / longest", " / ".join(_days(rect[k]) for k in rect)),
                (
                    "risk points (red / orange / yellow / blue)",
                    " / ".join(str(data.risk_grades.get(c, 0)) for c in GRADE_COLOURS),
                ),
            ]
        ),
    ]
    if data.overdue_now:
        parts.append(pg.note("Rectifications are overdue at the end of the period.", "warn"))
    if data.index is None:
        parts.append(pg.note("No early-warning index point is recorded (docs/safety.md)."))
    elif not data.index.value:
        parts.append(pg.note(f"{data.index.point_id} has no samples in this period."))
    else:
        s = data.index.summary()
        parts.append(
            pg.key_values(
                [
                    ("early-warning index at start / end", f"{s['first']:g} / {s['last']:g}"),
                    ("lowest / highest", f"{s['min']:g} / {s['max']:g}"),
                    ("last sample", clock(data.index.time[-1])),
                ]
            )
        )
        parts.append(_index_figure(data.index, data.since, data.until))
    title = "Hidden dangers and early warning (隐患排查治理 · 预警指数)"
    return pg.section(title, *parts, id="hazards")
