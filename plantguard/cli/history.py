"""``plantguard trend`` and ``plantguard history export``: recorded samples out of the store.

``trend POINT`` prints one point's samples (or writes them as CSV, or plots them);
``history export`` writes several points side by side as CSV — the format
``plantguard detect fit`` reads — or Parquet.  Times are given as ISO 8601
(``2026-03-01T08:00``, local time unless it has an offset) or as a duration back
from ``--until``/now (``90s``, ``24h``, ``7d``).  A point the store has never
recorded is an error that names it (with close matches), never "0 samples".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .common import SubParsers, add_db_argument, fmt_time, fmt_times, open_store

if TYPE_CHECKING:
    from ..host import PluginHost

__all__ = ["When", "add_commands", "when_argument"]

_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
_LONGEST = 100 * 365.25 * 86_400.0


@dataclass(frozen=True, slots=True)
class When:
    """A time from the command line: an instant (``at``) or a duration before a reference."""

    at: float | None = None
    ago: float | None = None

    def resolve(self, reference: float) -> float:
        if self.at is not None:
            return self.at
        return reference - (self.ago or 0.0)


def when_argument(text: str) -> When:
    """argparse type: ``now``, an ISO 8601 time (local unless it has an offset), or a duration."""
    text = text.strip()
    if text.lower() == "now":
        return When(ago=0.0)
    seconds = _duration(text)
    if seconds is not None:
        if not 0 <= seconds <= _LONGEST:
            raise argparse.ArgumentTypeError(f"duration must be at most 100 years, got {text!r}")
        return When(ago=seconds)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time or a duration: {text!r} (e.g. 2026-03-01T08:00, 24h, 7d)"
        ) from None
    value = value if value.tzinfo else value.astimezone()
    if not _EARLIEST <= value < _LATEST:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 1970-2199")
    return When(at=value.timestamp())


#: Every character :func:`plantguard.kpi.parse_duration` accepts (digits, ``.``, space,
#: the letters of its units, either case): text with any other character is no duration.
_DURATION_TEXT = re.compile(r"[\d.\sSMHDWINsmhdwin]+")


def _duration(text: str) -> float | None:
    """``text`` as a duration in seconds, or None if it is none.

    :mod:`plantguard.kpi` (which imports the alarm and site model) is imported only
    for text that can be a duration: an ISO time (``2026-03-01T08:00``) has a ``-``,
    so ``trend --since 2026-…`` starts without it.
    """
    if not _DURATION_TEXT.fullmatch(text):
        return None
    from ..kpi import parse_duration  # here: the parser of every command is built without it

    try:
        return parse_duration(text)
    except ValueError:
        return None


def _period(args: argparse.Namespace, default_since: When) -> tuple[float, float] | None:
    """``(since, until)`` from ``--since``/``--until``; ``None`` (after a message) if empty."""
    now = time.time()
    until = args.until.resolve(now) if args.until else now
    since = (args.since or default_since).resolve(until)
    if since >= until:
        print(
            f"plantguard: --since ({fmt_time(since)}) is not before --until ({fmt_time(until)})",
            file=sys.stderr,
        )
        return None
    return since, until


def _time_arguments(p: argparse.ArgumentParser, default_since: str) -> None:
    p.add_argument(
        "--since",
        type=when_argument,
        metavar="TIME",
        help=f"start: ISO 8601 time or a duration before --until (default {default_since})",
    )
    p.add_argument(
        "--until", type=when_argument, metavar="TIME", help="end: ISO 8601 time (default: now)"
    )


def add_commands(sub: SubParsers) -> None:
    trend = sub.add_parser("trend", help="recorded samples of a point: print, CSV or plot")
    trend.add_argument("point")
    add_db_argument(trend, site=True)
    trend.add_argument(
        "--last",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the last SECONDS before --until (default 60; or give --since)",
    )
    _time_arguments(trend, "60s")
    trend.add_argument(
        "--csv",
        action="store_true",
        help="print CSV (time,<point>; the format of `detect fit`) instead of the table",
    )
    trend.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="draw the samples with the point's alarm events into FILE.png or FILE.svg",
    )
    trend.set_defaults(func=_trend)

    history = sub.add_parser("history", help="recorded history out of the store")
    cmds = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    export = cmds.add_parser(
        "export",
        help="points side by side as CSV (what `detect fit` reads) or Parquet",
        description="Write the recorded values of several points on one time axis: a row "
        "whenever one of them changed (or every --every), each value carried forward "
        "until its next sample; Bad-quality samples leave the cell empty.",
    )
    export.add_argument("--points", required=True, metavar="P,Q", help="point ids, comma separated")
    _time_arguments(export, "24h")
    export.add_argument(
        "--every", metavar="DURATION", help="one row every DURATION (e.g. 1s, 1m) instead"
    )
    export.add_argument(
        "--complete",
        action="store_true",
        help="leave out rows with an empty cell (training with `detect fit` needs complete rows)",
    )
    export.add_argument("--format", choices=["csv", "parquet"], default="csv")
    export.add_argument(
        "--output", type=Path, metavar="FILE", help="file to write (default: standard output)"
    )
    add_db_argument(export, site=True)
    export.set_defaults(func=_export)


def _trend(args: argparse.Namespace, host: PluginHost) -> int:
    from ..reports.history import UnknownPoints, check_points, history_table, write_csv

    if args.last is not None and args.since is not None:
        print("plantguard: give --last or --since, not both", file=sys.stderr)
        return 2
    default = When(ago=args.last if args.last is not None else 60.0)
    period = _period(args, default)
    if period is None:
        return 2
    since, until = period
    plot_format = None
    if args.plot is not None:
        plot_format = args.plot.suffix.lower().lstrip(".")
        if plot_format not in ("png", "svg"):
            print(f"plantguard: --plot {args.plot}: give a .png or .svg file", file=sys.stderr)
            return 2
    with open_store(args) as store:
        try:
            units = check_points(store, [args.point])
        except UnknownPoints as exc:
            print(f"plantguard: {exc}", file=sys.stderr)
            return 2
        # One read of the samples: the CSV table is built from its own (which starts
        # with the value before --since), the printed table from the trend.
        table = history_table(store, [args.point], since, until) if args.csv else None
        trend = None if args.csv else store.trend(args.point, start=since, end=until)
        data = None
        if plot_format is not None:
            from ..reports.data import point_trend

            data = point_trend(store, args.point, since, until, unit=units[args.point])
    if data is not None and plot_format is not None:
        from ..reports.plots import trend_figure

        fig = trend_figure(data, since, until)
        try:
            fig.savefig(
                args.plot, format=plot_format, dpi=120, metadata=_plot_metadata(plot_format)
            )
        except OSError as exc:
            print(f"plantguard: cannot write {args.plot}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}", file=sys.stderr)
    try:
        if table is not None:
            samples = write_csv(table, sys.stdout)
        else:
            assert trend is not None
            samples = len(trend)
            rows = zip(
                fmt_times(trend.time), trend.value.tolist(), trend.quality.tolist(), strict=True
            )
            # one write of the whole text, not a print() per sample; %-formatting
            # makes the same text as f"{t}  {v:12.4f}  q={q}" in two thirds of the time
            sys.stdout.write("".join(["%s  %12.4f  q=%d\n" % row for row in rows]))  # noqa: UP031
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    print(
        f"{samples} samples of {args.point} ({fmt_time(since)} – {fmt_time(until)})",
        file=sys.stderr,
    )
    return 0


def _reader_gone() -> int:
    """Standard output's reader stopped reading (``| head``): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
    os.close(devnull)
    return 1


def _plot_metadata(fmt: str) -> dict[str, str | None]:
    # No creation date in the file: the same data gives the same plot.
    return {"Date": None} if fmt == "svg" else {"Software": "PlantGuard"}


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as f:
        yield f


def _export(args: argparse.Namespace, host: PluginHost) -> int:
    from ..kpi import parse_duration
    from ..reports.history import (
        ParquetUnavailable,
        UnknownPoints,
        check_points,
        history_table,
        parse_point_list,
        write_csv,
        write_parquet,
    )

    try:
        names = parse_point_list(args.points)
        every = parse_duration(args.every) if args.every else None
    except ValueError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2
    if every is not None and not (every > 0 and math.isfinite(every)):
        print("plantguard: --every must be positive", file=sys.stderr)
        return 2
    if args.format == "parquet" and args.output is None:
        print("plantguard: --format parquet needs --output FILE", file=sys.stderr)
        return 2
    period = _period(args, When(ago=86_400.0))
    if period is None:
        return 2
    since, until = period
    if every is not None and (until - since) / every > 50_000_000:
        print(
            "plantguard: --every gives more than 50 million rows; choose a longer one",
            file=sys.stderr,
        )
        return 2
    with open_store(args) as store:
        try:
            check_points(store, names)
        except UnknownPoints as exc:
            print(f"plantguard: {exc}", file=sys.stderr)
            return 2
        table = history_table(store, names, since, until, every=every, complete=args.complete)
    try:
        if args.format == "parquet":
            rows = write_parquet(table, args.output)
        else:
            with _output(args.output) as out:
                rows = write_csv(table, out)
                out.flush()
    except BrokenPipeError:
        return _reader_gone()
    except ParquetUnavailable as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"plantguard: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    where = f" to {args.output}" if args.output else ""
    print(
        f"{rows} rows × {len(names)} points{where} ({fmt_time(since)} – {fmt_time(until)})",
        file=sys.stderr,
    )
    return 0
