"""Alarm system performance KPIs (EEMUA 191 / ISA-18.2 §16), computed from the journal.

Pure functions over journal entries and current statuses, so the same numbers
come out of ``plantguard alarms kpi``, a report, or a test with a hand-made
journal.  Only *annunciated* activations count towards rates: an alarm that
activates while shelved, suppressed by design or out of service bothered
nobody, which is the point of those states.  The journal is replayed from its
start to know, for every activation, whether the alarm was annunciated.

=====================  ==========================================================
KPI                    definition
=====================  ==========================================================
alarms per 10 min      annunciated activations in the period / (period / 10 min)
peak rates             most activations within any 10 min and any 1 min
time in flood          time during which more than 10 activations fell in the
                       preceding 10 min, as seconds and % of the period
priority distribution  activations by configured priority, in %
top bad actors         the alarms with most activations and their share
chattering             alarms with ≥3 activations within 60 s (active→clear→active…)
stale                  alarms active for more than 24 h now
shelved / out of svc   current lists, with who and until when
=====================  ==========================================================
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # parse_duration (every `--since 24h`) needs neither the alarm package nor the
    # site model (pydantic): they are imported where the KPIs are computed.
    from .alarms import AlarmStatus


__all__ = [
    "JournalEntry",
    "KpiReport",
    "acknowledgement_delays",
    "active_intervals",
    "annunciated_activations",
    "compute_kpis",
    "flood_intervals",
    "parse_duration",
    "rate_series",
    "standing_at",
]

TEN_MINUTES = 600.0
FLOOD_COUNT = 10
CHATTER_COUNT = 3
CHATTER_WINDOW = 60.0
STALE_AFTER = 24 * 3600.0

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``24h``, ``7d``, ``2w`` or ``1h30m``."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(min|[smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 10m, 24h, 7d)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The journal fields KPIs need."""

    time: float
    alarm_id: str
    action: str


@dataclass(slots=True)
class KpiReport:
    since: float
    until: float
    activations: int = 0
    per_10_min: float = 0.0
    peak_10_min: int = 0
    peak_1_min: int = 0
    flood_seconds: float = 0.0
    flood_percent: float = 0.0
    priority_percent: dict[str, float] = field(default_factory=dict)
    bad_actors: list[tuple[str, int, float]] = field(default_factory=list)
    chattering: list[tuple[str, int]] = field(default_factory=list)
    stale: list[tuple[str, float]] = field(default_factory=list)
    shelved: list[dict[str, object]] = field(default_factory=list)
    out_of_service: list[dict[str, object]] = field(default_factory=list)
    standing: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "since": self.since,
            "until": self.until,
            "activations": self.activations,
            "alarms_per_10_min": round(self.per_10_min, 3),
            "peak_per_10_min": self.peak_10_min,
            "peak_per_1_min": self.peak_1_min,
            "time_in_flood_s": round(self.flood_seconds, 1),
            "time_in_flood_percent": round(self.flood_percent, 3),
            "priority_distribution_percent": self.priority_percent,
            "top_bad_actors": [
                {"alarm": a, "activations": n, "percent": round(p, 1)}
                for a, n, p in self.bad_actors
            ],
            "chattering": [{"alarm": a, "max_in_60_s": n} for a, n in self.chattering],
            "stale": [{"alarm": a, "active_for_s": round(s)} for a, s in self.stale],
            "standing": self.standing,
            "shelved": self.shelved,
            "out_of_service": self.out_of_service,
        }


_HIDE = {"shelve": "shelved", "oneshot_shelve": "oneshot", "suppress": "suppressed",
         "remove_from_service": "oos"}  # fmt: skip
_SHOW = {"unshelve": ("shelved", "oneshot"), "unsuppress": ("suppressed",),
         "return_to_service": ("oos",)}  # fmt: skip


def _annunciated_activations(journal: Iterable[JournalEntry]) -> list[JournalEntry]:
    """Activations while the alarm was neither shelved, suppressed nor out of service."""
    hidden: dict[str, set[str]] = {}
    out = []
    for e in journal:
        flags = hidden.setdefault(e.alarm_id, set())
        if e.action in _HIDE:
            flags.add(_HIDE[e.action])
        elif e.action in _SHOW:
            flags.difference_update(_SHOW[e.action])
        elif e.action == "clear":
            flags.discard("oneshot")  # a one-shot shelve ends when the alarm clears
        elif e.action == "activate" and not flags:
            out.append(e)
    return out


def _peak(times: Sequence[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _flood_seconds(times: Sequence[float], since: float, until: float) -> float:
    """Time within [since, until] when more than FLOOD_COUNT activations fell in the last 10 min."""
    edges = sorted([(t, 1) for t in times] + [(t + TEN_MINUTES, -1) for t in times])
    count, total, last = 0, 0.0, since
    for t, step in edges:
        t_clamped = min(max(t, since), until)
        if count > FLOOD_COUNT:
            total += t_clamped - last
        last = t_clamped
        count += step
    if count > FLOOD_COUNT:
        total += until - last
    return total


def compute_kpis(
    journal: Sequence[JournalEntry],
    statuses: Mapping[str, AlarmStatus],
    priorities: Mapping[str, int],
    *,
    since: float,
    until: float,
) -> KpiReport:
    """KPIs of the period ``[since, until]``; ``journal`` is the whole journal, oldest first."""
    from .model import Priority

    report = KpiReport(since=since, until=until)
    activations = [e for e in _annunciated_activations(journal) if since <= e.time <= until]
    times = [e.time for e in activations]
    period = max(until - since, 1e-9)
    report.activations = len(activations)
    report.per_10_min = len(activations) / (period / TEN_MINUTES)
    report.peak_10_min = _peak(times, TEN_MINUTES)
    report.peak_1_min = _peak(times, 60.0)
    report.flood_seconds = _flood_seconds(times, since, until)
    report.flood_percent = 100.0 * report.flood_seconds / period
    by_priority: Counter[str] = Counter()
    for e in activations:
        p = priorities.get(e.alarm_id, int(Priority.MEDIUM))
        name = Priority(p).name.lower() if p in Priority._value2member_map_ else str(p)
        by_priority[name] += 1
    report.priority_percent = {
        name: round(100.0 * n / len(activations), 1) for name, n in by_priority.most_common()
    }
    per_alarm = Counter(e.alarm_id for e in activations)
    report.bad_actors = [(a, n, 100.0 * n / len(activations)) for a, n in per_alarm.most_common(10)]
    per_alarm_times: dict[str, list[float]] = {}
    for e in activations:
        per_alarm_times.setdefault(e.alarm_id, []).append(e.time)
    report.chattering = sorted(
        (
            (a, peak)
            for a, ts in per_alarm_times.items()
            if (peak := _peak(ts, CHATTER_WINDOW)) >= CHATTER_COUNT
        ),
        key=lambda x: -x[1],
    )
    for status in statuses.values():
        if status.state.active:
            report.standing += 1
            if status.active_since is not None and until - status.active_since > STALE_AFTER:
                report.stale.append((status.alarm_id, until - status.active_since))
        if status.shelved:
            report.shelved.append(
                {
                    "alarm": status.alarm_id,
                    "shelving": status.shelving.value,
                    "until": status.shelved_until,
                    "by": status.last_user,
                }
            )
        if status.out_of_service:
            report.out_of_service.append(
                {"alarm": status.alarm_id, "since": status.changed, "by": status.last_user}
            )
    report.stale.sort(key=lambda x: -x[1])
    return report


# --- series behind the KPIs (for reports and plots) ---------------------------------------


def annunciated_activations(journal: Iterable[JournalEntry]) -> list[JournalEntry]:
    """The activations that were annunciated (not shelved, suppressed or out of service),
    from a whole journal, oldest first: the ones every KPI counts."""
    return _annunciated_activations(journal)


def rate_series(
    times: Sequence[float], since: float, until: float, width: float = TEN_MINUTES
) -> list[int]:
    """Activations per window of ``width`` seconds, windows from ``since`` on (the last
    one may end after ``until``); times outside ``[since, until]`` are not counted."""
    bins = max(1, math.ceil((until - since) / width))
    counts = [0] * bins
    for t in times:
        if since <= t <= until:
            counts[min(int((t - since) // width), bins - 1)] += 1
    return counts


def flood_intervals(
    times: Sequence[float], since: float, until: float
) -> list[tuple[float, float]]:
    """The periods within ``[since, until]`` when more than ``FLOOD_COUNT`` activations
    fell in the preceding 10 min (their lengths add up to the KPI's time in flood)."""
    edges = sorted([(t, 1) for t in times] + [(t + TEN_MINUTES, -1) for t in times])
    spans: list[tuple[float, float]] = []
    count, last = 0, since

    def add(start: float, end: float) -> None:
        if end <= start:
            return
        if spans and spans[-1][1] >= start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))

    for t, step in edges:
        t_clamped = min(max(t, since), until)
        if count > FLOOD_COUNT:
            add(last, t_clamped)
        last = t_clamped
        count += step
    if count > FLOOD_COUNT:
        add(last, until)
    return spans


def active_intervals(
    journal: Iterable[JournalEntry], since: float, until: float
) -> dict[str, list[tuple[float, float]]]:
    """Per alarm, the periods within ``[since, until]`` its condition was active
    (``activate`` … ``clear``), whether annunciated or not; an alarm still active at
    ``until`` ends its last period there."""
    began: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for e in journal:
        if e.time > until:
            break
        if e.action == "activate" and e.alarm_id not in began:
            began[e.alarm_id] = e.time
        elif e.action == "clear" and e.alarm_id in began:
            start = began.pop(e.alarm_id)
            if e.time >= since:
                out.setdefault(e.alarm_id, []).append((max(start, since), e.time))
    for alarm_id, start in began.items():
        out.setdefault(alarm_id, []).append((max(start, since), until))
    return out


def standing_at(journal: Iterable[JournalEntry], when: float) -> dict[str, float]:
    """Alarms whose condition was active at ``when``, with the time each became active
    (replayed from the journal, so it holds for any past instant)."""
    active: dict[str, float] = {}
    for e in journal:
        if e.time > when:
            break
        if e.action == "activate":
            active.setdefault(e.alarm_id, e.time)
        elif e.action == "clear":
            active.pop(e.alarm_id, None)
    return active


def acknowledgement_delays(
    journal: Sequence[JournalEntry], since: float, until: float
) -> list[tuple[str, float, float | None]]:
    """For every annunciated activation in ``[since, until]``: ``(alarm, activated,
    seconds until acknowledged)``, ``None`` when not acknowledged by ``until``.

    One acknowledgement answers every activation of the alarm since the previous one
    (an alarm that returned to normal unacknowledged and came back is acknowledged once).
    """
    annunciated = {id(e) for e in _annunciated_activations(journal)}
    pending: dict[str, list[int]] = {}
    out: list[tuple[str, float, float | None]] = []
    for e in journal:
        if e.time > until:
            break
        if e.action == "activate" and id(e) in annunciated and e.time >= since:
            pending.setdefault(e.alarm_id, []).append(len(out))
            out.append((e.alarm_id, e.time, None))
        elif e.action == "acknowledge":
            for i in pending.pop(e.alarm_id, []):
                alarm_id, activated, _ = out[i]
                out[i] = (alarm_id, activated, e.time - activated)
    return out
