"""``plantguard check`` and ``plantguard plugins``: what would run, before running it."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .common import SubParsers

if TYPE_CHECKING:
    from ..host import PluginHost

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    check = sub.add_parser(
        "check",
        help="validate a site file and build what it would run, opening nothing",
        description=(
            "Validate a site file and build everything `plantguard run` builds — drivers, "
            "rules (with their model and advisory files), services and alarm sinks — "
            "without opening a device, a port or the store.  What `run` would refuse at "
            "start-up is reported here, each issue with its file, line and field "
            "(exit status 2)."
        ),
    )
    check.add_argument("site")
    check.add_argument(
        "--db",
        help="check this store (as `run --db`) instead of the site's store.url; not opened",
    )
    check.set_defaults(func=_check)
    plugins = sub.add_parser("plugins", help="list loaded plugins, their hooks and registrations")
    plugins.set_defaults(func=_plugins)


def _check(args: argparse.Namespace, host: PluginHost) -> int:
    from ..build import check_site
    from ..config import load_site

    loaded = load_site(args.site, host)
    parts = check_site(loaded, host, db=args.db)  # ConfigError: shown by the CLI, status 2
    for warning in parts.warnings:
        print(f"plantguard: warning: {warning}", file=sys.stderr)
    site = loaded.site
    n_rules = sum(len(v) for v in loaded.rule_configs.values())
    print(
        f"{args.site}: OK — site {site.id!r}: {len(site.areas)} areas, "
        f"{len(site.devices)} devices, {len(site.points)} points, "
        f"{n_rules} rule configurations, {len(parts.alarms)} alarms, "
        f"services: {', '.join(parts.services) or 'none'}"
    )
    return 0


def _plugins(args: argparse.Namespace, host: PluginHost) -> int:
    for name, hooks, provided in host.describe():
        print(name)
        print(f"  hooks:    {', '.join(hooks) or '-'}")
        print(f"  provides: {', '.join(provided) or '-'}")
    return 0
