"""A report's page: :class:`~plantguard.reports.data.ReportData` as one self-contained
HTML document (:mod:`.page`), plots inline as SVG (:mod:`.plots`).

Every section says so when its period has nothing to show — a note, never an empty
plot — and the page opens with a note when nothing at all was recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from ..records.stats import Compliance
from . import page as pg
from . import plots
from .data import AlarmData, MaintenanceData, PointTrend, ReportData
from .hazards import hazards_section

__all__ = ["PERIOD_TITLES", "duration_text", "render_report"]

#: Events listed under a trend (all are drawn on it).
MAX_EVENT_ROWS = 50

PERIOD_TITLES = {"shift": "Shift", "day": "Daily", "week": "Weekly", "month": "Monthly"}


def duration_text(seconds: float | None) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 5 min``, ``3 d 4 h``; ``–`` for ``None``."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86_400:
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 // 60 else f"{s // 3600} h"
    return f"{s // 86_400} d {s % 86_400 // 3600} h" if s % 86_400 // 3600 else f"{s // 86_400} d"


def _percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


class _Clock:
    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz

    def __call__(self, t: float | None) -> str:
        if t is None:
            return "–"
        return dt.datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def zone(self, at: float) -> str:
        return dt.datetime.fromtimestamp(at, self.tz).strftime("UTC%z").replace("UTC+0000", "UTC")


def render_report(data: ReportData, *, tz: dt.tzinfo | None = None) -> str:
    """The report as an HTML document (a ``str``), times shown in ``tz`` (default: local)."""
    tz = tz or plots.local_tz()
    clock = _Clock(tz)
    kind = PERIOD_TITLES.get(data.period, data.period.title())
    title = f"{data.title} — {kind.lower()} report" if data.title else f"{kind} report"
    subtitle = (
        f"{clock(data.since)} – {clock(data.until)} ({clock.zone(data.until)}) · "
        f"alarm KPIs per EEMUA 191 / ISA-18.2, device statistics, maintenance and "
        f"inspection compliance, trends"
    )
    parts: list[object] = []
    if data.empty:
        parts.append(
            pg.note(
                "No data was recorded in this period: no history samples, no alarm journal "
                "entries, no device connection changes and no maintenance records. "
                "Was the gateway running, and is this the right database and period?",
                "warn",
            )
        )
    parts.append(_summary(data))
    parts.append(_alarms_section(data.alarms, data.since, data.until, clock))
    parts.append(_devices_section(data))
    parts.append(_maintenance_section(data.maintenance, clock))
    parts.append(_trends_section(data.trends, data.since, data.until, clock))
    if data.hazards is not None:
        parts.append(hazards_section(data.hazards, clock))
    parts.append(pg.signature_block(("Prepared by", "Reviewed by", "Approved by")))
    return pg.page(
        title,
        *parts,
        subtitle=subtitle,
        generated=dt.datetime.fromtimestamp(data.generated, dt.UTC),
        footer=f"plantguard report --period {data.period}",
    )


def _summary(data: ReportData) -> pg.Markup:
    k = data.alarms.kpis
    availabilities = [
        a.availability for a in data.statistics.availability if a.availability is not None
    ]
    done = list(data.maintenance.by_kind)
    on_time = sum(c.on_time for c in done)
    executed = on_time + sum(c.late for c in done)
    return pg.section(
        "Summary",
        pg.key_values(
            [
                ("annunciated alarms", k.activations),
                ("alarms per 10 min (average)", f"{k.per_10_min:.2f}"),
                ("peak alarms in 10 min", k.peak_10_min),
                ("time in flood", f"{duration_text(k.flood_seconds)} ({k.flood_percent:.2f} %)"),
                ("alarms standing at the end", k.standing),
                ("devices", len(data.statistics.availability)),
                (
                    "mean availability",
                    _percent(sum(availabilities) / len(availabilities)) if availabilities else "–",
                ),
                (
                    "maintenance and inspections on time",
                    f"{on_time} of {executed}" if executed else "none done in the period",
                ),
                ("plans overdue at the end", len(data.maintenance.overdue)),
                ("history samples recorded", f"{data.history_samples:,}"),
            ]
        ),
        id="summary",
    )


# --- alarms -------------------------------------------------------------------------------


def _verdict(value: float, ok: float, warn: float | None = None) -> pg.Markup:
    """A badge: "met" (≤ ok), "review" (≤ warn), "not met"."""
    if value <= ok:
        return pg.badge("met", "ok")
    if warn is not None and value <= warn:
        return pg.badge("review", "warn")
    return pg.badge("not met", "bad")


def _alarms_section(a: AlarmData, since: float, until: float, clock: _Clock) -> pg.Markup:
    k = a.kpis
    kpi_rows = [
        ("annunciated alarms", k.activations, "", ""),
        (
            "alarms per 10 min",
            f"{k.per_10_min:.2f}",
            "≤ 1 very likely acceptable, ≤ 2 manageable",
            _verdict(k.per_10_min, 1, 2),
        ),
        ("peak alarms in 10 min", k.peak_10_min, "≤ 10", _verdict(k.peak_10_min, 10)),
        ("peak alarms in 1 min", k.peak_1_min, "", ""),
        (
            "time in flood",
            f"{duration_text(k.flood_seconds)} ({k.flood_percent:.2f} %)",
            "< 1 %",
            _verdict(k.flood_percent, 0.999),
        ),
        ("chattering alarms", len(k.chattering), "none", _verdict(len(k.chattering), 0)),
        ("standing at the end", k.standing, "", ""),
        ("stale (active > 24 h)", len(k.stale), "none", _verdict(len(k.stale), 0, 1e9)),
    ]
    parts: list[object] = [pg.table(("KPI", "value", "EEMUA 191 target", ""), kpi_rows)]
    if k.activations:
        parts.append(
            pg.figure(
                plots.alarm_rate_figure(a, since, until, tz=clock.tz),
                caption="Annunciated alarms per 10 minutes against the EEMUA 191 lines; "
                "shaded and marked ▼: flood periods (more than 10 alarms in the preceding 10 "
                "minutes).",
                key="alarm-rate",
            )
        )
        if a.flood:
            parts.append(
                pg.table(
                    ("flood from", "to", "length"),
                    [(clock(s), clock(e), duration_text(e - s)) for s, e in a.flood],
                    caption="Flood periods",
                )
            )
        parts.append(
            pg.table(
                ("priority", "share of activations", "EEMUA 191 guide"),
                [
                    (
                        p,
                        f"{v:.1f} %",
                        {"low": "≈ 80 %", "medium": "≈ 15 %", "high": "≈ 5 %"}.get(p, ""),
                    )
                    for p, v in k.priority_percent.items()
                ],
                caption="Priority distribution",
            )
        )
        parts.append(pg.Markup("<h3>Top 10 bad actors</h3>"))
        parts.append(pg.figure(plots.bad_actors_figure(k.bad_actors), key="bad-actors"))
        parts.append(
            pg.table(
                ("alarm", "priority", "activations", "share"),
                [(al, a.priorities.get(al, ""), n, f"{p:.1f} %") for al, n, p in k.bad_actors],
            )
        )
    else:
        parts.append(pg.note("No alarms were annunciated in this period."))
    parts.append(
        pg.table(
            ("alarm", "most activations within 60 s"),
            k.chattering,
            caption="Chattering alarms (≥ 3 activations within 60 s)",
            empty="No alarm chattered in this period.",
        )
    )
    parts.append(
        pg.table(
            ("alarm", "priority", "active since", "active for"),
            [
                (
                    al,
                    a.priorities.get(al, ""),
                    clock(t),
                    pg.Markup(f"{pg.escape(duration_text(until - t))} {pg.badge('stale', 'warn')}")
                    if until - t > 86_400
                    else duration_text(until - t),
                )
                for al, t in a.standing
            ],
            caption="Standing alarms (active at the end of the period)",
            empty="No alarm was active at the end of the period.",
        )
    )
    parts.append(_ack_part(a))
    shelved = [(s["alarm"], s["shelving"], clock(_float(s["until"])), s["by"]) for s in k.shelved]
    oos = [(s["alarm"], clock(_float(s["since"])), s["by"]) for s in k.out_of_service]
    if shelved:
        parts.append(pg.table(("alarm", "shelving", "until", "by"), shelved, caption="Shelved now"))
    if oos:
        parts.append(pg.table(("alarm", "since", "by"), oos, caption="Out of service now"))
    return pg.section("Alarms (EEMUA 191 / ISA-18.2)", *parts, id="alarms")


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _ack_part(a: AlarmData) -> pg.Markup:
    ack = a.ack
    if not ack.annunciated:
        return pg.section("Acknowledgement", pg.note("No alarm needed acknowledging."), level=3)
    return pg.section(
        "Acknowledgement",
        pg.key_values(
            [
                ("annunciated alarms", ack.annunciated),
                ("acknowledged by the end of the period", ack.acknowledged),
                ("not acknowledged", ack.unacknowledged),
                ("median time to acknowledge", duration_text(ack.median_s)),
                ("90th percentile", duration_text(ack.p90_s)),
                ("longest", duration_text(ack.max_s)),
            ]
        ),
        pg.table(
            ("alarm", "activations", "acknowledged", "median time to acknowledge"),
            [(al, n, k, duration_text(m)) for al, n, k, m in ack.slowest],
            caption="Slowest to acknowledge",
        ),
        level=3,
    )


# --- devices ------------------------------------------------------------------------------


def _devices_section(data: ReportData) -> pg.Markup:
    stats = data.statistics
    if not stats.availability:
        return pg.section(
            "Device statistics", pg.note("No devices are registered in this store."), id="devices"
        )
    counts = [
        ("by category", ", ".join(f"{k} {v}" for k, v in stats.devices_by_category.items())),
        ("by status", ", ".join(f"{k} {v}" for k, v in stats.devices_by_status.items())),
        ("by area", ", ".join(f"{k} {v}" for k, v in stats.devices_by_area.items())),
        (
            "alarm activations by priority",
            ", ".join(f"{k} {v}" for k, v in stats.alarms_by_priority.items()),
        ),
    ]
    parts: list[object] = [pg.key_values(counts)]
    observed = [d for d in stats.availability if d.online_s + d.offline_s > 0]
    if observed:
        parts.append(
            pg.figure(
                plots.availability_figure(stats.availability),
                caption="Online rate (time online / period) and availability "
                "(online / (online + offline)) per device.",
                key="availability",
            )
        )
    else:
        parts.append(
            pg.note(
                "No connection history was recorded in this period: online rate and "
                "availability cannot be computed (the gateway was not running)."
            )
        )
    parts.append(
        pg.table(
            ("device", "online rate", "availability", "outages", "MTBF", "MTTR", "not observed"),
            [
                (
                    d.device_id,
                    _percent(d.online_rate),
                    _percent(d.availability, 2),
                    d.outages,
                    "–" if d.mtbf_h is None else f"{d.mtbf_h:.2f} h",
                    "–" if d.mttr_h is None else f"{d.mttr_h * 60:.1f} min",
                    duration_text(d.unknown_s),
                )
                for d in stats.availability
            ],
        )
    )
    return pg.section("Device statistics", *parts, id="devices")


# --- maintenance --------------------------------------------------------------------------


def _compliance_rows(items: Sequence[Compliance]) -> list[tuple[object, ...]]:
    return [(c.kind, c.on_time, c.late, _percent(c.rate), c.overdue_now) for c in items]


def _maintenance_section(m: MaintenanceData, clock: Callable[[float | None], str]) -> pg.Markup:
    if not m.plans:
        return pg.section(
            "Maintenance and inspection",
            pg.note("No maintenance or inspection plans are registered in this store."),
            id="maintenance",
        )
    parts: list[object] = []
    if any(c.on_time or c.late or c.overdue_now for c in m.by_kind):
        parts.append(
            pg.figure(
                plots.compliance_figure({c.kind: c for c in m.by_kind}),
                caption="Executions in the period done by their due point (on time) or after "
                "(late), and plans overdue at the end of the period, by kind of work.",
                key="compliance",
            )
        )
    else:
        parts.append(pg.note("No planned work was done in this period, and none is overdue."))
    parts.append(
        pg.table(
            ("kind", "on time", "late", "on-time rate", "overdue at end"),
            _compliance_rows(m.by_kind),
            caption="Compliance by kind of work",
        )
    )
    parts.append(
        pg.table(
            ("device category", "kind", "on time", "late", "on-time rate", "overdue at end"),
            [
                (cat, *row)
                for cat, items in m.by_category.items()
                for row in _compliance_rows(items)
            ],
            caption="Compliance by device category",
        )
    )
    parts.append(
        pg.table(
            ("plan", "device", "kind", "title", "due", "reason"),
            [
                (
                    o["plan"],
                    o["device"],
                    o["kind"],
                    o["title"],
                    clock(_float(o["due"])),
                    o["reason"],
                )
                for o in m.overdue
            ],
            caption="Overdue at the end of the period",
            empty="No plan was overdue at the end of the period.",
        )
    )
    parts.append(
        pg.note(f"{m.records_in_period} maintenance and inspection records in the period.")
    )
    return pg.section("Maintenance and inspection", *parts, id="maintenance")


# --- trends -------------------------------------------------------------------------------


def _trends_section(
    trends: Sequence[PointTrend], since: float, until: float, clock: _Clock
) -> pg.Markup:
    if not trends:
        return pg.section(
            "Trends",
            pg.note("No points chosen: give them with --points P,Q to draw their trends."),
            id="trends",
        )
    parts: list[object] = []
    for i, trend in enumerate(trends):
        heading = pg.Markup(f"<h3>{pg.escape(trend.name or trend.point_id)}</h3>")
        if trend.time.size == 0 and not trend.events:
            parts += [
                heading,
                pg.note(f"No samples of {trend.point_id} were recorded in this period."),
            ]
            continue
        summary = trend.summary(since)
        caption = (
            f"{trend.point_id}: {summary['samples']} samples in the period"
            + (
                f", limits {', '.join(f'{n.upper()} {v:g}' for n, v in trend.limits.items())}"
                if trend.limits
                else ", no limits given (--site)"
            )
            + f"; {summary['detections']} detections, {summary['predictions']} predictions."
        )
        parts += [
            heading,
            pg.figure(
                plots.trend_figure(trend, since, until, tz=clock.tz, title=""),
                caption=caption,
                key=f"trend-{i}",
            ),
        ]
        if trend.events:
            parts.append(
                pg.table(
                    ("time", "alarm", "rule", "event", "condition", "value"),
                    [
                        (
                            clock(e.time),
                            e.alarm_id,
                            e.rule,
                            f"{e.action} ({'prediction' if e.prediction else 'detection'})",
                            e.condition,
                            e.value,
                        )
                        for e in trend.events[:MAX_EVENT_ROWS]
                    ],
                )
            )
            if len(trend.events) > MAX_EVENT_ROWS:
                more = len(trend.events) - MAX_EVENT_ROWS
                parts.append(
                    pg.note(f"… and {more} more events (plantguard alarms journal lists them all).")
                )
    return pg.section("Trends", *parts, id="trends")
