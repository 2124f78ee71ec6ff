"""The numbers behind a report: gathered from the store once, drawn by :mod:`.render`,
printed by ``plantguard report --json``.

A report covers ``[since, until)``: a shift (8 h), a day, a week (7 days) or a month
(30 days) ending at ``until``.  Its sections:

* **alarms** — the EEMUA 191 / ISA-18.2 KPIs of :func:`plantguard.kpi.compute_kpis`,
  the annunciated alarms per 10 min with the flood periods, the alarms standing
  (active) at the end of the period, and how long acknowledgements took;
* **devices** — :func:`plantguard.records.stats.statistics`: online rate,
  availability, MTBF, MTTR per device;
* **maintenance** — on time / late / overdue per kind of work and per device
  category, and the plans overdue at the end of the period;
* **trends** — the chosen points with their limits and the journal entries of their
  alarms (detections; forecasts, drift and multivariate models are predictions).

Everything is "as of ``until``": standing alarms and acknowledgements are replayed
from the journal up to it, so a report of last week says what was true then.  Only
the lists of shelved and out-of-service alarms are the current ones.
"""

from __future__ import annotations

import datetime as dt
import statistics as pystats
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from ..kpi import (
    STALE_AFTER,
    TEN_MINUTES,
    JournalEntry,
    KpiReport,
    acknowledgement_delays,
    active_intervals,
    annunciated_activations,
    compute_kpis,
    flood_intervals,
    rate_series,
    standing_at,
)
from ..model import Priority, Quality
from ..records.due import DueState
from ..records.stats import Compliance, Statistics, compliance, statistics
from ..records.status import plan_statuses
from ..store import Store
from ..store.schema import alarm_journal, alarms, history
from .hazards import HazardData, hazard_data

__all__ = [
    "PERIODS",
    "PREDICTION_KINDS",
    "AckSummary",
    "AlarmData",
    "Event",
    "MaintenanceData",
    "PointTrend",
    "ReportData",
    "build_report",
    "point_trend",
    "steps",
]

#: Length of each report period, seconds.
PERIODS: dict[str, float] = {
    "shift": 8 * 3600.0,
    "day": 86_400.0,
    "week": 7 * 86_400.0,
    "month": 30 * 86_400.0,
}

#: Alarm kinds that are predictions (forecast, EWMA/CUSUM drift, multivariate models);
#: every other kind is a detection.
PREDICTION_KINDS = frozenset({"deviation"})

#: Journal actions drawn on trends.
EVENT_ACTIONS = ("activate", "change", "clear")

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AlarmInfo:
    alarm_id: str
    source_id: str
    device_id: str
    kind: str
    rule: str
    priority: int

    @property
    def priority_name(self) -> str:
        try:
            return Priority(self.priority).name.lower()
        except ValueError:
            return str(self.priority)


def alarm_infos(store: Store) -> dict[str, AlarmInfo]:
    """Every alarm the store has a definition of."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alarms)).all()
    return {
        r.alarm_id: AlarmInfo(r.alarm_id, r.source_id, r.device_id, r.kind, r.rule, int(r.priority))
        for r in rows
    }


# --- trends -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A journal entry of one of a point's alarms, to mark on its trend."""

    time: float
    alarm_id: str
    rule: str
    action: str
    condition: str
    value: float | None
    prediction: bool


@dataclass(slots=True)
class PointTrend:
    """One point over the period: samples (the one before ``since`` first, if any),
    limits, its alarms' events and the periods they were active."""

    point_id: str
    unit: str
    name: str
    time: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    samples: int  # within the period
    limits: dict[str, float] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    active: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def summary(self, since: float) -> dict[str, object]:
        inside = (self.time >= since) & (self.quality < int(Quality.BAD))
        values = self.value[inside]
        values = values[~np.isnan(values)]
        return {
            "point": self.point_id,
            "unit": self.unit,
            "samples": self.samples,
            "min": float(values.min()) if values.size else None,
            "max": float(values.max()) if values.size else None,
            "mean": float(values.mean()) if values.size else None,
            "limits": self.limits,
            "detections": sum(
                1 for e in self.events if e.action == "activate" and not e.prediction
            ),
            "predictions": sum(1 for e in self.events if e.action == "activate" and e.prediction),
            "events": [asdict(e) for e in self.events],
        }


def point_trend(
    store: Store,
    point_id: str,
    since: float,
    until: float,
    *,
    unit: str = "",
    name: str = "",
    limits: Mapping[str, float] | None = None,
    infos: Mapping[str, AlarmInfo] | None = None,
) -> PointTrend:
    """``point_id``'s samples over ``[since, until)`` and the events of its alarms
    (the alarms whose source is the point)."""
    trend = store.trend(point_id, since, until, include_previous=True)
    infos = alarm_infos(store) if infos is None else infos
    events: list[Event] = []
    active: dict[str, list[tuple[float, float]]] = {}
    for info in infos.values():
        if info.source_id != point_id:
            continue
        rows = store.journal(info.alarm_id)
        entries = [JournalEntry(r.time, r.alarm_id, r.action) for r in rows]
        spans = active_intervals(entries, since, until)
        if spans.get(info.alarm_id):
            active[info.alarm_id] = spans[info.alarm_id]
        events.extend(
            Event(
                time=r.time,
                alarm_id=r.alarm_id,
                rule=info.rule,
                action=r.action,
                condition=r.condition,
                value=r.value,
                prediction=info.kind in PREDICTION_KINDS,
            )
            for r in rows
            if r.action in EVENT_ACTIONS and since <= r.time < until
        )
    events.sort(key=lambda e: e.time)
    return PointTrend(
        point_id=point_id,
        unit=unit,
        name=name,
        time=trend.time,
        value=trend.value,
        quality=trend.quality,
        samples=int(np.count_nonzero(trend.time >= since)),
        limits=dict(limits or {}),
        events=events,
        active=active,
    )


# --- alarms -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckSummary:
    """How long annunciated alarms waited for an acknowledgement."""

    annunciated: int
    acknowledged: int
    unacknowledged: int
    median_s: float | None
    p90_s: float | None
    max_s: float | None
    #: Per alarm: (alarm, activations, acknowledged, median seconds or None), slowest first.
    slowest: list[tuple[str, int, int, float | None]] = field(default_factory=list)


def _ack_summary(delays: Sequence[tuple[str, float, float | None]]) -> AckSummary:
    done = sorted(d for _, _, d in delays if d is not None)
    per_alarm: dict[str, list[float | None]] = {}
    for alarm_id, _, delay in delays:
        per_alarm.setdefault(alarm_id, []).append(delay)
    slowest = []
    for alarm_id, values in per_alarm.items():
        acked = [v for v in values if v is not None]
        slowest.append(
            (alarm_id, len(values), len(acked), pystats.median(acked) if acked else None)
        )
    slowest.sort(key=lambda x: (-(x[1] - x[2]), -(x[3] or 0.0)))
    return AckSummary(
        annunciated=len(delays),
        acknowledged=len(done),
        unacknowledged=len(delays) - len(done),
        median_s=pystats.median(done) if done else None,
        p90_s=float(np.percentile(done, 90)) if done else None,
        max_s=done[-1] if done else None,
        slowest=slowest[:10],
    )


@dataclass(slots=True)
class AlarmData:
    kpis: KpiReport
    #: Annunciated activations per 10 min, windows from ``since`` on.
    rates: list[int]
    flood: list[tuple[float, float]]
    #: Alarms active at the end of the period, with the time each became active.
    standing: list[tuple[str, float]]
    ack: AckSummary
    priorities: dict[str, str]
    bin_seconds: float = TEN_MINUTES

    def as_dict(self) -> dict[str, object]:
        until = self.kpis.until
        return {
            **self.kpis.as_dict(),
            "per_10_min": {
                "start": self.kpis.since,
                "width_s": self.bin_seconds,
                "counts": self.rates,
            },
            "flood_periods": [{"start": a, "end": b} for a, b in self.flood],
            "standing_alarms": [
                {"alarm": a, "active_since": t, "active_for_s": round(until - t)}
                for a, t in self.standing
            ],
            "acknowledgement": {
                **{k: v for k, v in asdict(self.ack).items() if k != "slowest"},
                "slowest": [
                    {"alarm": a, "activations": n, "acknowledged": k, "median_s": m}
                    for a, n, k, m in self.ack.slowest
                ],
            },
        }


def alarm_data(
    journal: Sequence[JournalEntry],
    store: Store,
    infos: Mapping[str, AlarmInfo],
    since: float,
    until: float,
) -> AlarmData:
    priorities = {a: i.priority for a, i in infos.items()}
    kpis = compute_kpis(journal, store.load_status(), priorities, since=since, until=until)
    # As of ``until`` (compute_kpis takes standing and stale from the current states).
    standing = sorted(standing_at(journal, until).items(), key=lambda x: x[1])
    kpis.standing = len(standing)
    kpis.stale = sorted(
        ((a, until - t) for a, t in standing if until - t > STALE_AFTER), key=lambda x: -x[1]
    )
    times = [e.time for e in annunciated_activations(journal) if since <= e.time <= until]
    return AlarmData(
        kpis=kpis,
        rates=rate_series(times, since, until),
        flood=flood_intervals(times, since, until),
        standing=standing,
        ack=_ack_summary(acknowledgement_delays(journal, since, until)),
        priorities={a: i.priority_name for a, i in infos.items()},
    )


# --- maintenance --------------------------------------------------------------------------


@dataclass(slots=True)
class MaintenanceData:
    by_kind: list[Compliance]
    by_category: dict[str, list[Compliance]]
    #: Plans overdue at the end of the period: id, device, kind, title, due, reason.
    overdue: list[dict[str, object]]
    plans: int
    records_in_period: int

    def as_dict(self) -> dict[str, object]:
        def rows(items: Sequence[Compliance]) -> list[dict[str, object]]:
            return [{**asdict(c), "rate": c.rate} for c in items]

        return {
            "plans": self.plans,
            "records_in_period": self.records_in_period,
            "by_kind": rows(self.by_kind),
            "by_category": {cat: rows(items) for cat, items in self.by_category.items()},
            "overdue": self.overdue,
        }


def maintenance_data(
    store: Store, stats: Statistics, overdue_now: Mapping[str, bool], statuses: Mapping[str, object]
) -> MaintenanceData:
    devices = {d.id: d for d in store.records.devices()}
    plans = store.records.plans()
    records = store.records.records()
    by_category: dict[str, list[Compliance]] = {}
    categories = sorted(
        {devices[p.device_id].category if p.device_id in devices else "-" for p in plans}
    )
    for category in categories:
        subset = [
            p
            for p in plans
            if (devices[p.device_id].category if p.device_id in devices else "-") == category
        ]
        by_category[category] = compliance(
            subset, records, stats.start, stats.end, dict(overdue_now)
        )
    overdue: list[dict[str, object]] = []
    for plan in plans:
        status = statuses.get(plan.id)
        if not overdue_now.get(plan.id) or status is None:
            continue
        due_at = getattr(status, "due_at", None)
        overdue.append(
            {
                "plan": plan.id,
                "device": plan.device_id,
                "kind": plan.kind.value,
                "title": plan.title,
                "due": due_at.timestamp() if isinstance(due_at, dt.datetime) else None,
                "reason": str(getattr(status, "reason", "")),
            }
        )
    in_period = sum(1 for r in records if stats.start <= r.performed_at.timestamp() < stats.end)
    return MaintenanceData(
        by_kind=stats.compliance,
        by_category=by_category,
        overdue=overdue,
        plans=len(plans),
        records_in_period=in_period,
    )


# --- the report ---------------------------------------------------------------------------


@dataclass(slots=True)
class ReportData:
    period: str
    since: float
    until: float
    generated: float
    title: str
    alarms: AlarmData
    statistics: Statistics
    maintenance: MaintenanceData
    trends: list[PointTrend]
    history_samples: int
    journal_entries: int
    connection_events: int
    hazards: HazardData | None = None

    @property
    def empty(self) -> bool:
        """Nothing at all was recorded in the period."""
        return not (
            self.history_samples
            or self.journal_entries
            or self.connection_events
            or self.maintenance.records_in_period
        )

    def as_dict(self) -> dict[str, object]:
        stats = self.statistics.as_dict()
        return {
            "format": "plantguard/report",
            "version": 1,
            "title": self.title,
            "period": self.period,
            "since": self.since,
            "until": self.until,
            "since_iso": _iso(self.since),
            "until_iso": _iso(self.until),
            "generated": _iso(self.generated),
            "empty": self.empty,
            "recorded": {
                "history_samples": self.history_samples,
                "journal_entries": self.journal_entries,
                "connection_events": self.connection_events,
                "maintenance_records": self.maintenance.records_in_period,
            },
            "alarms": self.alarms.as_dict(),
            "devices": {k: v for k, v in stats.items() if k not in ("start", "end", "compliance")},
            "maintenance": self.maintenance.as_dict(),
            "trends": [t.summary(self.since) for t in self.trends],
            **({"hazards": self.hazards.as_dict()} if self.hazards else {}),
        }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _count(store: Store, table: sa.Table, since: float, until: float) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.time >= since, table.c.time < until)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def build_report(
    store: Store,
    *,
    period: str = "day",
    until: float,
    points: Sequence[str] = (),
    units: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    limits: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "",
    progress: Progress | None = None,
    generated: float | None = None,
) -> ReportData:
    """Gather the report of the ``period`` (a key of :data:`PERIODS`) ending at ``until``.

    ``points`` are drawn as trends, with ``limits`` (point → ``{"hh": …, "h": …}``);
    ``units`` and ``names`` label them.  ``progress`` is called with a label after
    each step (1 + 1 + 1 + one per point).
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r} (one of {', '.join(PERIODS)})")
    since = until - PERIODS[period]
    tick = progress or (lambda _label: None)
    infos = alarm_infos(store)
    journal = [JournalEntry(r.time, r.alarm_id, r.action) for r in store.journal()]
    alarms_part = alarm_data(journal, store, infos, since, until)
    tick("alarm KPIs")
    statuses = plan_statuses(store, until)
    stats = statistics(store, since, until, statuses)
    tick("device statistics")
    overdue_now = {pid: s.state is DueState.OVERDUE for pid, s in statuses.items()}
    maintenance = maintenance_data(store, stats, overdue_now, statuses)
    tick("maintenance compliance")
    trends = []
    for point in points:
        trends.append(
            point_trend(
                store,
                point,
                since,
                until,
                unit=(units or {}).get(point, ""),
                name=(names or {}).get(point, ""),
                limits=(limits or {}).get(point),
                infos=infos,
            )
        )
        tick(f"trend {point}")
    events = [e for e in store.records.connection_events(until=until) if e.time >= since]
    return ReportData(
        period=period,
        since=since,
        until=until,
        generated=generated if generated is not None else dt.datetime.now(dt.UTC).timestamp(),
        title=title,
        alarms=alarms_part,
        statistics=stats,
        maintenance=maintenance,
        trends=trends,
        history_samples=_count(store, history, since, until),
        journal_entries=_count(store, alarm_journal, since, until),
        connection_events=len(events),
        hazards=hazard_data(store, since, until),
    )


def steps(points: Sequence[str]) -> int:
    """How many times :func:`build_report` calls ``progress``."""
    return 3 + len(points)
