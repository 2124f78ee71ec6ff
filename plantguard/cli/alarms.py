"""``plantguard alarms``: alarm states and the journal, read from the store."""

from __future__ import annotations

import argparse

from ..host import PluginHost
from .common import SubParsers, add_db_argument, fmt_time, open_store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    alarms = sub.add_parser("alarms", help="current alarm states and the journal, from the store")
    add_db_argument(alarms)
    alarms.add_argument("--journal", action="store_true", help="print the journal instead")
    alarms.set_defaults(func=_alarms)


def _alarms(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args.db) as store:
        if args.journal:
            for row in store.journal():
                print(
                    f"{fmt_time(row.time)}  {row.alarm_id:<28} {row.action:<11} "
                    f"{row.state_before} → {row.state_after}  {row.condition:<2} "
                    f"{row.user or '-'}  {row.message}"
                )
            return 0
        for alarm_id, status in sorted(store.load_status().items()):
            print(f"{alarm_id:<28} {status.state.value:<24} {status.condition:<2} {status.message}")
    return 0
