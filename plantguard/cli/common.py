"""Pieces several commands share: the demo site, the store, time formatting."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from ..hookspecs import DemoOptions
from ..host import PluginHost, default_host
from ..kpi import parse_duration
from ..store import Store

__all__ = [
    "DEMO_DB",
    "add_db_argument",
    "demo_site_text",
    "duration_argument",
    "fmt_time",
    "open_store",
]

DEMO_DB = "./plantguard-demo.db"

#: ``argparse`` sub-parsers action (its class is private in the standard library).
SubParsers = Any


def add_db_argument(parser: argparse.ArgumentParser, default: str | None = DEMO_DB) -> None:
    parser.add_argument(
        "--db", default=default, help=f"SQLite file or SQLAlchemy URL (default: {default})"
    )


@contextlib.contextmanager
def open_store(target: str) -> Iterator[Store]:
    store = Store(target)
    try:
        yield store
    finally:
        store.close()


def fmt_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def demo_site_text(
    *, opcua_port: int, modbus_port: int, db: str, scenario: str, host: PluginHost | None = None
) -> str:
    """The demo site with the ports, database and scenario chosen on the command line.

    The site comes from the plugin implementing ``plantguard_demo_site`` (the
    simulator plugin) of ``host`` (default: the installed plugins).
    """
    options = DemoOptions(opcua_port=opcua_port, modbus_port=modbus_port, db=db, scenario=scenario)
    return (host or default_host()).demo_site(options).text


_LONGEST = 100 * 365.25 * 86_400.0


def duration_argument(text: str) -> float:
    """An argparse type for ``--since 30d``: :func:`plantguard.kpi.parse_duration`,
    with its error turned into argparse's usage error."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < value <= _LONGEST:
        raise argparse.ArgumentTypeError(
            f"duration must be positive and at most 100 years, got {text!r}"
        )
    return value
