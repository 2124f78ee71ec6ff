"""The ``plantguard`` command line.

Sub-commands: ``demo``, ``run SITE.yaml``, ``check SITE.yaml``, ``plugins``,
``alarms``, ``trend``, plus whatever plugins add through
``plantguard_register_commands``.  Exit status: 0 ok, 1 runtime failure,
2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml

from . import __version__
from .config import ConfigError, LoadedSite, load_site, parse_site
from .console import Console
from .engine import Engine
from .host import PluginError, PluginHost, default_host
from .store import Store

__all__ = ["main"]

log = logging.getLogger("plantguard")

DEMO_DB = "./plantguard-demo.db"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        host = default_host()
    except PluginError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2
    parser = _parser(host)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("asyncua", "pymodbus", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    if args.command is None:
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


def _parser(host: PluginHost) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plantguard", description="IoT safety-production monitoring and early-warning gateway."
    )
    parser.add_argument("--version", action="version", version=f"plantguard {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a simulated plant with the embedded defaults")
    demo.add_argument("--opcua-port", type=int, default=4840)
    demo.add_argument("--modbus-port", type=int, default=5020)
    demo.add_argument("--db", default=DEMO_DB, help="SQLite file or SQLAlchemy URL")
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop by itself"
    )
    demo.add_argument("--scenario", choices=["cycle", "none"], default="cycle")
    demo.add_argument("--quiet", action="store_true", help="no periodic value lines")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="run the gateway for a site file")
    run.add_argument("site", help="site file (YAML)")
    run.add_argument(
        "--db", default=None, help="SQLite file or SQLAlchemy URL (default: the site's store.url)"
    )
    run.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check", help="validate a site file and say what it would run")
    check.add_argument("site")
    check.set_defaults(func=_cmd_check)

    plugins = sub.add_parser("plugins", help="list loaded plugins, their hooks and registrations")
    plugins.set_defaults(func=_cmd_plugins)

    alarms = sub.add_parser("alarms", help="current alarm states and the journal, from the store")
    alarms.add_argument("--db", default=DEMO_DB)
    alarms.add_argument("--journal", action="store_true", help="print the journal instead")
    alarms.set_defaults(func=_cmd_alarms)

    trend = sub.add_parser("trend", help="print the recorded samples of a point")
    trend.add_argument("point")
    trend.add_argument("--db", default=DEMO_DB)
    trend.add_argument("--last", type=float, default=60.0, metavar="SECONDS")
    trend.set_defaults(func=_cmd_trend)

    for command in host.commands.values():
        p = sub.add_parser(command.name, help=command.help)
        command.configure(p)
        p.set_defaults(func=lambda args, _h, _run=command.run: _run(args))
    return parser


# --- commands -------------------------------------------------------------------------


def demo_site_text(*, opcua_port: int, modbus_port: int, db: str, scenario: str) -> str:
    """The embedded demo site with the ports, database and scenario chosen on the command line."""
    text = resources.files("plantguard_sim").joinpath("demo_site.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    services = data.setdefault("services", {})
    services.setdefault("sim", {}).update(port=modbus_port, scenario=scenario)
    services.setdefault("opcua", {}).update(port=opcua_port)
    for area in data.get("areas", []):
        for device in area.get("devices", []):
            if device.get("driver") == "modbus":
                device.setdefault("connection", {})["port"] = modbus_port
    data.setdefault("store", {})["url"] = db
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _cmd_demo(args: argparse.Namespace, host: PluginHost) -> int:
    text = demo_site_text(
        opcua_port=args.opcua_port, modbus_port=args.modbus_port, db=args.db, scenario=args.scenario
    )
    loaded = parse_site(text, "<embedded demo site>", host)
    return _serve(loaded, host, args.db, args.duration, quiet=args.quiet, demo=True)


def _cmd_run(args: argparse.Namespace, host: PluginHost) -> int:
    loaded = load_site(args.site, host)
    return _serve(loaded, host, args.db or loaded.site.store.url, args.duration, quiet=args.quiet)


def _serve(
    loaded: LoadedSite,
    host: PluginHost,
    db: str,
    duration: float | None,
    *,
    quiet: bool,
    demo: bool = False,
) -> int:
    host.hook.plantguard_site_loaded(site=loaded.site)
    store = Store(db)
    try:
        return asyncio.run(_serve_async(loaded, host, store, duration, quiet=quiet, demo=demo))
    finally:
        store.close()


async def _serve_async(
    loaded: LoadedSite,
    host: PluginHost,
    store: Store,
    duration: float | None,
    *,
    quiet: bool,
    demo: bool,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    engine = Engine(loaded, host, store)
    console = Console(engine, store.url, quiet=quiet, demo=demo)
    runner = asyncio.create_task(engine.run(stop))
    ready = asyncio.create_task(engine.ready.wait())
    await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        console.announce()
        console_task = asyncio.create_task(console.run())
    else:
        ready.cancel()
        console_task = None
    try:
        await runner
    finally:
        if console_task is not None:
            console_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await console_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("plantguard: stopped cleanly; history and alarm journal flushed.", flush=True)
    return 0


def _cmd_check(args: argparse.Namespace, host: PluginHost) -> int:
    loaded = load_site(args.site, host)
    site = loaded.site
    n_rules = sum(len(v) for v in loaded.rule_configs.values())
    print(
        f"{args.site}: OK — site {site.id!r}: {len(site.areas)} areas, {len(site.devices)} devices, "
        f"{len(site.points)} points, {n_rules} rule configurations, "
        f"services: {', '.join(loaded.services) or 'none'}"
    )
    return 0


def _cmd_plugins(args: argparse.Namespace, host: PluginHost) -> int:
    for name, hooks, provided in host.describe():
        print(name)
        print(f"  hooks:    {', '.join(hooks) or '-'}")
        print(f"  provides: {', '.join(provided) or '-'}")
    return 0


def _cmd_alarms(args: argparse.Namespace, host: PluginHost) -> int:
    store = Store(args.db)
    try:
        if args.journal:
            for row in store.journal():
                print(
                    f"{_fmt_time(row.time)}  {row.alarm_id:<28} {row.action:<11} "
                    f"{row.state_before} → {row.state_after}  {row.condition:<2} "
                    f"{row.user or '-'}  {row.message}"
                )
            return 0
        for alarm_id, status in sorted(store.load_status().items()):
            print(f"{alarm_id:<28} {status.state.value:<24} {status.condition:<2} {status.message}")
    finally:
        store.close()
    return 0


def _cmd_trend(args: argparse.Namespace, host: PluginHost) -> int:
    import time

    store = Store(args.db)
    try:
        trend = store.trend(args.point, start=time.time() - args.last)
    finally:
        store.close()
    for t, v, q in zip(
        trend.time.tolist(), trend.value.tolist(), trend.quality.tolist(), strict=True
    ):
        print(f"{_fmt_time(t)}  {v:12.4f}  q={q}")
    print(f"{len(trend)} samples", file=sys.stderr)
    return 0


def _fmt_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


if __name__ == "__main__":
    raise SystemExit(main())
