"""``plantguard acceptance SITE.yaml``: the acceptance test of a site, as a record and a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .acting import password_for
from .common import SubParsers, open_store, site_store_url

if TYPE_CHECKING:
    from ..acceptance import Record
    from ..host import PluginHost

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    p = sub.add_parser(
        "acceptance",
        help="acceptance test of a site: a JSON record and an HTML report; "
        "exit status 0 only if no item failed",
    )
    p.add_argument("site", type=Path, help="site file (YAML)")
    p.add_argument("--db", default=None, help="store (default: the site's store.url)")
    p.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="engineer (or above) the loop checks write as; password from "
        "PLANTGUARD_PASSWORD or a prompt (without it, no loop check can write)",
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write acceptance-<site>-<time>.html and .json here (default: the current directory)",
    )
    p.add_argument("--html", type=Path, metavar="FILE", help="the HTML report")
    p.add_argument("--json", type=Path, metavar="FILE", help="the JSON record")
    p.add_argument(
        "--device-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time each device gets to answer its poll (default 10)",
    )
    p.set_defaults(func=_acceptance)


def _targets(args: argparse.Namespace, record: Record) -> tuple[Path | None, Path | None]:
    if args.html is None and args.json is None:
        directory: Path = args.output or Path(".")
        stamp = record.started.strftime("%Y%m%dT%H%M%SZ")
        stem = f"acceptance-{record.site_id or 'site'}-{stamp}"
        return directory / f"{stem}.html", directory / f"{stem}.json"
    return args.html, args.json


def _acceptance(args: argparse.Namespace, host: PluginHost) -> int:
    import asyncio

    # The acceptance runner imports asyncua, pymodbus and the store: only this command needs them.
    from ..acceptance import AcceptanceRefused, Options, render_html, run
    from ..config import ConfigError

    if args.output is not None and (args.html is not None or args.json is not None):
        print(
            "plantguard acceptance: give --output DIR or --html/--json, not both", file=sys.stderr
        )
        return 2
    try:  # the store must exist and be current: acceptance creates and migrates nothing
        target = args.db or site_store_url(args.site)
    except ConfigError:
        target = None  # the site file's own item says what is wrong with it
    if target is not None:
        with open_store(target):
            pass
    password = ""
    if args.actor:
        password = password_for(args.actor)
    options = Options(args.site, args.db, args.actor, password, device_timeout=args.device_timeout)
    try:
        record = asyncio.run(run(options, host))
    except AcceptanceRefused as exc:  # the acting user: as plantguard.errors.PermissionDenied
        print(f"plantguard acceptance: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # loop checks restored their values on the way out
        print("plantguard acceptance: interrupted; no record written", file=sys.stderr)
        return 130
    html_path, json_path = _targets(args, record)
    for path, text in (
        (json_path, json.dumps(record.to_json(), indent=1, ensure_ascii=False)),
        (html_path, render_html(record)),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    _print(record, html_path, json_path)
    return 0 if record.accepted else 1


def _print(record: Record, html_path: Path | None, json_path: Path | None) -> None:
    from ..acceptance import Status

    width = max((len(i.id) for i in record.items), default=10)
    for item in record.items:
        print(f"{item.status.label:<8} {item.id:<{width}}  {item.summary}")
    counts = record.counts()
    summary = ", ".join(f"{counts[s.value]} {s.label}" for s in Status)
    verdict = "ACCEPTED" if record.accepted else f"NOT ACCEPTED: {len(record.failed)} items failed"
    print(f"\n{verdict} ({summary})")
    for what, path in (("report", html_path), ("record", json_path)):
        if path is not None:
            print(f"{what}: {path}")
