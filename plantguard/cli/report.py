"""``plantguard report``: a shift, day, week or month on one self-contained HTML page.

Alarm KPIs (EEMUA 191 / ISA-18.2), device statistics, maintenance and inspection
compliance and the trends of chosen points with their limits and alarm events,
plots inline as SVG (see :mod:`plantguard.reports`).  ``--json`` prints the numbers
behind the page.  A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .common import SubParsers, add_db_argument, open_store, site_path
from .history import when_argument

if TYPE_CHECKING:
    from ..host import PluginHost

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    p = sub.add_parser(
        "report",
        help="a shift/day/week/month report as one HTML page with plots",
        description="Alarm KPIs (EEMUA 191 / ISA-18.2), device statistics, maintenance and "
        "inspection compliance and trends of chosen points, for the period ending at --until.",
    )
    p.add_argument(
        "--period",
        choices=["shift", "day", "week", "month"],
        default="day",
        help="8 h, 24 h, 7 days or 30 days (default: day)",
    )
    p.add_argument(
        "--until",
        type=when_argument,
        metavar="TIME",
        help="end of the period: ISO 8601 (local time unless it has an offset) or a "
        "duration ago (default: now)",
    )
    # --site (or $PLANTGUARD_SITE): the store, and the points' names, units and limits.
    add_db_argument(p, site=True)
    p.add_argument("--points", metavar="P,Q", help="points to draw as trends, comma separated")
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="HTML file to write (default: report-PERIOD-YYYYMMDD-HHMM.html; with --json "
        "only if given)",
    )
    p.add_argument("--json", action="store_true", help="print the numbers behind the page")
    p.set_defaults(func=_report)


class _Bar:
    """``[########........] 3/7 device statistics`` redrawn in place — on a terminal only."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, label: str) -> None:
        self.done = min(self.done + 1, self.total)
        if not self.enabled:
            return
        filled = 30 * self.done // self.total
        bar = "#" * filled + "." * (30 - filled)
        self.stream.write(f"\r\x1b[K[{bar}] {self.done}/{self.total} {label}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _site_details(
    path: Path, host: PluginHost
) -> tuple[str, dict[str, str], dict[str, str], dict[str, dict[str, float]]]:
    from ..config import load_site

    loaded = load_site(path, host)
    site = loaded.site
    names = {pt.id: pt.name for pt in site.points if pt.name}
    units = {pt.id: pt.unit for pt in site.points if pt.unit}
    limits: dict[str, dict[str, float]] = {}
    for point_id, cfg in loaded.rule_configs.get("limit", ()):
        given = {n: getattr(cfg, n, None) for n in ("hh", "h", "l", "ll")}
        limits[point_id] = {n: float(v) for n, v in given.items() if isinstance(v, int | float)}
    return site.name or site.id, names, units, limits


def _report(args: argparse.Namespace, host: PluginHost) -> int:
    from ..reports.data import build_report, steps
    from ..reports.history import UnknownPoints, check_points, parse_point_list
    from ..reports.render import render_report

    title = ""
    names: dict[str, str] = {}
    units: dict[str, str] = {}
    limits: dict[str, dict[str, float]] = {}
    site = site_path(args)
    if site is not None:
        title, names, units, limits = _site_details(site, host)
    try:
        points = parse_point_list(args.points) if args.points else []
    except ValueError as exc:
        print(f"plantguard: --points: {exc}", file=sys.stderr)
        return 2
    until = args.until.resolve(time.time()) if args.until else time.time()
    bar = _Bar(steps(points) + (0 if args.json and args.output is None else 1), sys.stderr)
    with open_store(args) as store:
        try:
            stored_units = check_points(store, points)
        except UnknownPoints as exc:
            print(f"plantguard: --points: {exc}", file=sys.stderr)
            return 2
        data = build_report(
            store,
            period=args.period,
            until=until,
            points=points,
            units={**stored_units, **units},
            names=names,
            limits=limits,
            title=title,
            progress=bar,
        )
    if args.json:
        json.dump(data.as_dict(), sys.stdout, indent=1, ensure_ascii=False)
        print()
    output = args.output
    if output is None and not args.json:
        stamp = dt.datetime.fromtimestamp(until).strftime("%Y%m%d-%H%M")
        output = Path(f"report-{args.period}-{stamp}.html")
    if output is not None:
        html = render_report(data)
        bar("page")
        try:
            output.write_text(html, encoding="utf-8")
        except OSError as exc:
            print(f"plantguard: cannot write {output}: {exc.strerror}", file=sys.stderr)
            return 1
        note = " (nothing was recorded in this period)" if data.empty else ""
        print(f"report written to {output}{note}", file=sys.stderr)
    return 0
