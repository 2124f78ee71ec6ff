"""``plantguard trend``: recorded samples of a point."""

from __future__ import annotations

import argparse
import sys
import time

from ..host import PluginHost
from .common import SubParsers, add_db_argument, fmt_time, open_store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    trend = sub.add_parser("trend", help="print the recorded samples of a point")
    trend.add_argument("point")
    add_db_argument(trend)
    trend.add_argument("--last", type=float, default=60.0, metavar="SECONDS")
    trend.set_defaults(func=_trend)


def _trend(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args.db) as store:
        trend = store.trend(args.point, start=time.time() - args.last)
    rows = zip(trend.time.tolist(), trend.value.tolist(), trend.quality.tolist(), strict=True)
    for t, v, q in rows:
        print(f"{fmt_time(t)}  {v:12.4f}  q={q}")
    print(f"{len(trend)} samples", file=sys.stderr)
    return 0
