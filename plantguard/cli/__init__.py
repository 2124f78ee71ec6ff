"""The ``plantguard`` command line.

Each command group lives in its own module with an ``add_commands(sub)``
function; plugins add theirs through ``plantguard_register_commands`` and run
with the CLI's plugin host (a :class:`~plantguard.host.CommandContext`).  Exit
status: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..config import ConfigError
from ..host import Command, CommandContext, PluginError, PluginHost, default_host
from . import acceptance, alarms, db, history, probe, records, report, serve, site, users
from .common import demo_site_text

__all__ = ["demo_site_text", "main"]

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (serve, site, probe, alarms, history, records, report, users, acceptance, db)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        host = default_host()
    except PluginError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2
    parser = build_parser(host)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("asyncua", "pymodbus", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args, host))
    except ConfigError as exc:
        print(f"plantguard: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plantguard",
        description="IoT safety-production monitoring and early-warning gateway.",
    )
    parser.add_argument("--version", action="version", version=f"plantguard {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    for command in host.commands.values():
        p = sub.add_parser(command.name, help=command.help)
        command.configure(p)
        p.set_defaults(func=_plugin_command(command))
    return parser


def _plugin_command(command: Command) -> Callable[[argparse.Namespace, PluginHost], int]:
    def run(args: argparse.Namespace, host: PluginHost) -> int:
        return command.run(args, CommandContext(host))

    return run
