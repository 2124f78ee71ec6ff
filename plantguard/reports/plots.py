"""The plots of reports (and of anything else that shows the same things): matplotlib
figures made with :func:`plantguard.reports.page.new_figure`, ready for
:func:`~plantguard.reports.page.figure`.

* :func:`trend_figure` — a point's samples with its limits, its alarms' active
  periods shaded and their activations marked (detections ▲, predictions ◆);
* :func:`alarm_rate_figure` — annunciated alarms per 10 min against the EEMUA 191
  lines (1 and 10 per 10 min), flood periods shaded;
* :func:`bad_actors_figure`, :func:`availability_figure`, :func:`compliance_figure` —
  horizontal bar charts.

Times are seconds since the epoch; the axes show them in ``tz`` (default: this
machine's local time zone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .page import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..records.stats import Compliance, DeviceAvailability
    from .data import AlarmData, PointTrend

__all__ = [
    "COLORS",
    "alarm_rate_figure",
    "availability_figure",
    "bad_actors_figure",
    "compliance_figure",
    "date_numbers",
    "decimate",
    "local_tz",
    "time_axis",
    "trend_figure",
]

COLORS = {
    "line": "#0969da",
    "bar": "#54aeff",
    "ok": "#1a7f37",
    "warn": "#bf8700",
    "bad": "#cf222e",
    "prediction": "#8250df",
    "flood": "#ffd8d3",
    "active": "#ffebe9",
    "muted": "#6e7781",
}

#: EEMUA 191 lines on the alarm-rate chart: (alarms per 10 min, label, colour).
EEMUA_LINES = (
    (1.0, "1 per 10 min: very likely acceptable", COLORS["ok"]),
    (10.0, "10 per 10 min: flood", COLORS["bad"]),
)

_LIMIT_STYLE = {
    "hh": (COLORS["bad"], "--"),
    "h": (COLORS["warn"], ":"),
    "l": (COLORS["warn"], ":"),
    "ll": (COLORS["bad"], "--"),
}


def local_tz() -> dt.tzinfo:
    tz = dt.datetime.now().astimezone().tzinfo
    return tz if tz is not None else dt.UTC


def date_numbers(times: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Epoch seconds → matplotlib date numbers (days since matplotlib's epoch)."""
    import matplotlib.dates as mdates

    epoch: str = mdates.get_epoch()  # type: ignore[no-untyped-call]
    days = (np.datetime64("1970-01-01T00:00:00") - np.datetime64(epoch)) / np.timedelta64(1, "D")
    offset = float(days)
    return np.asarray(times, dtype=np.float64) / 86_400.0 + offset


def time_axis(ax: Axes, since: float, until: float, tz: dt.tzinfo | None = None) -> None:
    """Date ticks in ``tz`` on ``ax``'s x axis, limited to ``[since, until]``."""
    import matplotlib.dates as mdates

    tz = tz or local_tz()
    # matplotlib.dates has no type annotations.
    locator = mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    formatter = mdates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
    lo, hi = date_numbers([since, until])
    ax.set_xlim(float(lo), float(hi))


def _style(ax: Axes) -> None:
    ax.grid(True, axis="y", color="#d0d7de", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def decimate(
    t: npt.NDArray[np.float64], v: npt.NDArray[np.float64], buckets: int = 2000
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most ~4 samples per time bucket — the first, the lowest, the highest, the last,
    and the first gap (NaN) — so a month of 1 s samples draws as what a screen can
    show, with every excursion and gap still visible; short series are returned as they are."""
    if t.size <= 4 * buckets:
        return t, v
    bounds = np.searchsorted(t, np.linspace(t[0], t[-1], buckets + 1)[1:-1])
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [t.size]))
    keep: list[int] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if b <= a:
            continue
        chunk = v[a:b]
        picks = {a, b - 1}
        gaps = np.flatnonzero(np.isnan(chunk))
        if gaps.size:
            picks.add(a + int(gaps[0]))
        if gaps.size < chunk.size:
            picks.add(a + int(np.nanargmin(chunk)))
            picks.add(a + int(np.nanargmax(chunk)))
        keep.extend(sorted(picks))
    index = np.asarray(keep, dtype=np.int64)
    return t[index], v[index]


def _legend(fig: Figure, ax: Axes, ncols: int = 4) -> None:
    """The axes' legend above the plot, right-aligned, clear of the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside upper right",
            ncols=min(ncols, len(handles)),
            fontsize=8,
            frameon=False,
        )


def trend_figure(
    trend: PointTrend,
    since: float,
    until: float,
    *,
    tz: dt.tzinfo | None = None,
    title: str | None = None,
    width: float = 10.0,
    height: float = 3.2,
) -> Figure:
    """The samples of ``trend`` over ``[since, until]`` as a step line (a sample holds
    until the next one; Bad quality is a gap), its limits as labelled lines, the
    periods its alarms were active shaded, and their journal events marked on the line.

    ``title`` defaults to the point's name (or id); ``""`` leaves it out.
    """
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    _style(ax)
    t = trend.time.copy()
    v = trend.value.copy()
    v[trend.quality >= 128] = np.nan
    if t.size:
        t = np.maximum(t, since)  # the sample before the period holds at its start
        t = np.append(t, until)
        v = np.append(v, v[-1])
        drawn_t, drawn_v = decimate(t, v)
        ax.step(date_numbers(drawn_t), drawn_v, where="post", color=COLORS["line"], linewidth=1.2)
    for spans in trend.active.values():
        for a, b in spans:
            x0, x1 = date_numbers([a, b])
            ax.axvspan(float(x0), float(x1), color=COLORS["active"], linewidth=0, zorder=0)
    if any(trend.active.values()):
        ax.plot([], [], "s", color=COLORS["active"], markersize=8, label="alarm active")
    for name, limit in sorted(trend.limits.items(), key=lambda kv: -kv[1]):
        color, style = _LIMIT_STYLE.get(name, (COLORS["muted"], "--"))
        ax.axhline(limit, color=color, linestyle=style, linewidth=1.0)
        ax.annotate(
            f"{name.upper()} {limit:g}",
            xy=(1.0, limit),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=color,
        )
    _mark_events(ax, trend, t, v)
    time_axis(ax, since, until, tz)
    unit = f" [{trend.unit}]" if trend.unit else ""
    ax.set_ylabel(f"{trend.point_id}{unit}", fontsize=9)
    title = (trend.name or trend.point_id) if title is None else title
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    _legend(fig, ax, ncols=5)
    if not t.size:
        ax.text(
            0.5,
            0.5,
            "no samples in this period",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=COLORS["muted"],
        )
    return fig


def _mark_events(
    ax: Axes, trend: PointTrend, t: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
) -> None:
    """Each event on the line at its time (the journal's value is the rule's own, e.g. a
    rate or a model score); on the journalled value only where there are no samples."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for e in trend.events:
        y: float | None = None
        if t.size:
            at = int(np.searchsorted(t, e.time, side="right")) - 1
            y = float(v[max(at, 0)])
        if (y is None or not np.isfinite(y)) and e.value is not None:
            y = e.value
        if y is None or not np.isfinite(y):
            continue
        key = "clear" if e.action == "clear" else f"{e.action}/{e.prediction}"
        groups.setdefault(key, []).append((e.time, y))
    styles = {
        "activate/False": ("^", COLORS["bad"], "detection"),
        "activate/True": ("D", COLORS["prediction"], "prediction"),
        "change/False": ("o", COLORS["warn"], "change"),
        "change/True": ("o", COLORS["prediction"], "prediction change"),
        "clear": ("v", COLORS["ok"], "clear"),
    }
    for key, (marker, color, label) in styles.items():
        if key not in groups:
            continue
        xs, ys = zip(*groups[key], strict=True)
        ax.scatter(
            date_numbers(xs),
            ys,
            marker=marker,
            color=color,
            s=30,
            zorder=3,
            edgecolors="white",
            linewidths=0.5,
            label=f"{label} ({len(xs)})",
        )


def alarm_rate_figure(
    alarms: AlarmData, since: float, until: float, *, tz: dt.tzinfo | None = None
) -> Figure:
    """Annunciated alarms per 10 min as bars, the EEMUA 191 lines, flood periods shaded."""
    fig = new_figure(10.0, 3.4)
    ax = fig.add_subplot()
    _style(ax)
    for a, b in alarms.flood:
        x0, x1 = date_numbers([a, b])
        ax.axvspan(float(x0), float(x1), color=COLORS["flood"], linewidth=0, zorder=0)
    counts = np.asarray(alarms.rates, dtype=np.float64)
    edges = date_numbers(since + alarms.bin_seconds * np.arange(counts.size + 1))
    if counts.size <= 300:
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color=COLORS["bar"],
            edgecolor="none",
            label="alarms per 10 min",
        )
    else:  # one path, not thousands of rectangles
        ax.stairs(counts, edges, fill=True, color=COLORS["bar"], label="alarms per 10 min")
    for level, label, color in EEMUA_LINES:
        ax.axhline(level, color=color, linestyle="--", linewidth=1.0, label=label)
    top = max(12.0, float(counts.max()) * 1.15 if counts.size else 0.0)
    ax.set_ylim(0, top)
    if alarms.flood:
        # A flood of minutes is a hairline on a week's axis: a marker over each one.
        middles = date_numbers([(a + b) / 2 for a, b in alarms.flood])
        ax.plot(
            middles,
            [top] * len(middles),
            "v",
            color=COLORS["bad"],
            markersize=7,
            clip_on=False,
            label=f"flood (>10 in 10 min): {len(alarms.flood)}",
        )
    _legend(fig, ax, ncols=4)
    ax.set_ylabel("alarms / 10 min", fontsize=9)
    time_axis(ax, since, until, tz)
    return fig


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _hbar_figure(rows: int) -> tuple[Figure, Axes]:
    fig = new_figure(10.0, max(1.6, 0.32 * rows + 0.9))
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis="x", color="#d0d7de", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def bad_actors_figure(bad_actors: Sequence[tuple[str, int, float]]) -> Figure:
    """The top bad actors: activations per alarm, most first."""
    names = [a for a, _, _ in bad_actors][::-1]
    counts = [n for _, n, _ in bad_actors][::-1]
    fig, ax = _hbar_figure(len(names))
    bars = ax.barh(names, counts, color=COLORS["bad"], alpha=0.8)
    ax.bar_label(
        bars, labels=[f"{n} ({p:.0f} %)" for _, n, p in bad_actors][::-1], fontsize=8, padding=2
    )
    ax.set_xlabel("annunciated activations", fontsize=9)
    _integer_ticks(ax)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def availability_figure(devices: Sequence[DeviceAvailability]) -> Figure:
    """Online rate and availability per device, in %."""
    names = [d.device_id for d in devices][::-1]
    online = [100.0 * d.online_rate for d in devices][::-1]
    avail = [100.0 * (d.availability or 0.0) for d in devices][::-1]
    fig, ax = _hbar_figure(max(1, round(1.6 * len(names))))
    y = np.arange(len(names), dtype=np.float64)
    ax.barh(y + 0.2, avail, height=0.38, color=COLORS["ok"], label="availability")
    ax.barh(y - 0.2, online, height=0.38, color=COLORS["bar"], label="online rate")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of the period (availability: of the time observed)", fontsize=9)
    _legend(fig, ax)
    return fig


def compliance_figure(rows: Mapping[str, Compliance]) -> Figure:
    """Executions on time, late, and plans overdue, stacked, per row label."""
    names = list(rows)[::-1]
    on_time = np.array([rows[n].on_time for n in names], dtype=np.float64)
    late = np.array([rows[n].late for n in names], dtype=np.float64)
    overdue = np.array([rows[n].overdue_now for n in names], dtype=np.float64)
    fig, ax = _hbar_figure(len(names))
    ax.barh(names, on_time, color=COLORS["ok"], label="on time")
    ax.barh(names, late, left=on_time, color=COLORS["warn"], label="late")
    ax.barh(names, overdue, left=on_time + late, color=COLORS["bad"], label="overdue at end")
    ax.set_xlabel("executions / plans", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    _integer_ticks(ax)
    _legend(fig, ax)
    return fig
