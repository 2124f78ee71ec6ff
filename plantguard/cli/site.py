"""``plantguard check`` and ``plantguard plugins``: what would run, before running it."""

from __future__ import annotations

import argparse

from ..config import load_site
from ..host import PluginHost
from .common import SubParsers

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    check = sub.add_parser("check", help="validate a site file and say what it would run")
    check.add_argument("site")
    check.set_defaults(func=_check)
    plugins = sub.add_parser("plugins", help="list loaded plugins, their hooks and registrations")
    plugins.set_defaults(func=_plugins)


def _check(args: argparse.Namespace, host: PluginHost) -> int:
    loaded = load_site(args.site, host)
    site = loaded.site
    n_rules = sum(len(v) for v in loaded.rule_configs.values())
    print(
        f"{args.site}: OK — site {site.id!r}: {len(site.areas)} areas, "
        f"{len(site.devices)} devices, {len(site.points)} points, "
        f"{n_rules} rule configurations, services: {', '.join(loaded.services) or 'none'}"
    )
    return 0


def _plugins(args: argparse.Namespace, host: PluginHost) -> int:
    for name, hooks, provided in host.describe():
        print(name)
        print(f"  hooks:    {', '.join(hooks) or '-'}")
        print(f"  provides: {', '.join(provided) or '-'}")
    return 0
