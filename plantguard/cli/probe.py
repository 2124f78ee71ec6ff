"""``plantguard probe``: poll every device once and show what it sends (docs/probe.md).

Exit status: 0 when every probed device answered, 1 when one did not (a device
answering with exception codes has answered; it is flagged), 2 for an invalid
site file or an unknown ``--device``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .common import SubParsers

if TYPE_CHECKING:
    from ..host import PluginHost
    from ..probe import DeviceReport, PointReport

__all__ = ["add_commands", "render_table"]

#: :data:`plantguard.probe.DEFAULT_TIMEOUT`, repeated here so that building the parser
#: does not import the prober (numpy, the drivers); tests/test_cli_startup.py keeps them equal.
DEFAULT_TIMEOUT = 10.0

_COLUMNS = ("point", "raw", "value", "quality", "unit", "range", "limits", "suspicious")


def add_commands(sub: SubParsers) -> None:
    probe = sub.add_parser(
        "probe",
        help="poll every device of a site once: raw registers, values, quality, identity, "
        "and what looks wrong (never writes)",
    )
    probe.add_argument("site")
    probe.add_argument("--json", action="store_true", help="print a JSON document")
    probe.add_argument(
        "--device",
        action="append",
        metavar="ID",
        help="probe only this device (repeat for more)",
    )
    probe.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds each device gets to connect, answer and identify itself "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    probe.set_defaults(func=_probe)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"timeout must be above 0 and at most 3600 s: {text}")
    return value


def _probe(args: argparse.Namespace, host: PluginHost) -> int:
    import asyncio

    from ..config import load_site
    from ..probe import probe_site, report_document

    loaded = load_site(args.site, host)
    known = {d.id for d in loaded.site.devices}
    unknown = [d for d in args.device or () if d not in known]
    if unknown:
        print(
            f"plantguard probe: unknown device {', '.join(map(repr, unknown))} "
            f"(devices of {args.site}: {', '.join(sorted(known)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    reports = asyncio.run(probe_site(loaded, host, devices=args.device, timeout=args.timeout))
    if args.json:
        document = report_document(reports, site=loaded.site.id)
        print(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(render_table(reports))
    return 0 if all(r.answered for r in reports) else 1


def render_table(reports: Sequence[DeviceReport]) -> str:
    """The human output: a header, a table of points and the refused requests per device,
    then one summary line."""
    blocks = [_device_block(r) for r in reports]
    answered = sum(r.answered for r in reports)
    suspicious = sum(len(r.suspicious) for r in reports)
    summary = f"{_count(len(reports), 'device')}: {answered} answered"
    silent = [r.device.id for r in reports if not r.answered]
    if silent:
        summary += f", {len(silent)} did not ({', '.join(silent)})"
    summary += f"; {_count(suspicious, 'suspicious point')}"
    return "\n\n".join([*blocks, summary])


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _device_block(report: DeviceReport) -> str:
    device = report.device
    where = ", ".join(x for x in (device.driver, report.endpoint) if x)
    title = f"{device.id}" + (f" — {device.name}" if device.name else "") + f" ({where})"
    if not report.answered:
        lines = [f"{title}: NO ANSWER — {report.error}"]
    else:
        refused = sum(q.exception is not None for q in report.requests)
        state = "answered"
        if report.requests:
            state += f", {len(report.requests)} requests"
            if refused:
                state += f", {refused} answered with an exception"
        lines = [f"{title}: {state}"]
        identity = ", ".join(f"{k}={v}" for k, v in report.identity.items())
        lines.append(f"  identity: {identity or '(none reported)'}")
    if report.answered or any(p.flags for p in report.points):
        lines += _table([_row(p, report) for p in report.points])
    lines += [
        f"  ! {flag.text}" for flag in report.flags if flag.code in ("exception", "identify_failed")
    ]
    return "\n".join(lines)


def _row(p: PointReport, report: DeviceReport) -> tuple[str, ...]:
    from ..probe import LIMIT_NAMES, raw_text

    point = p.point
    local = point.id.removeprefix(f"{report.device.id}.")
    value = "-" if p.quality is None or math.isnan(p.value) else f"{p.value:.6g}"
    if p.raw is not None and p.raw.text is not None and p.quality == 0:
        value = repr(p.raw.text)
    span = "-" if point.range is None else f"{point.range[0]:g} … {point.range[1]:g}"
    limits = " ".join(f"{n.upper()} {p.limits[n]:g}" for n in LIMIT_NAMES if n in p.limits)
    return (
        local,
        raw_text(p.raw) if report.raw else "n/a",
        value,
        p.quality_name,
        point.unit or "-",
        span,
        limits or "-",
        "; ".join(f.text for f in p.flags),
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)]
        return ("  " + "  ".join([*padded, cells[-1]])).rstrip()

    return [line(_COLUMNS), *(line(r) for r in rows)]
