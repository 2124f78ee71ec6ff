"""Pieces several commands share: the demo site, the store, time formatting."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

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


def demo_site_text(*, opcua_port: int, modbus_port: int, db: str, scenario: str) -> str:
    """The embedded demo site with the ports, database and scenario chosen on the command line."""
    text = resources.files("plantguard_sim").joinpath("demo_site.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    services = data.setdefault("services", {})
    services.setdefault("sim", {}).update(port=modbus_port, scenario=scenario)
    # The server's certificate lives beside the demo's database.
    pki = (
        str(Path(db).expanduser().resolve().parent / "plantguard-demo-pki")
        if "://" not in db
        else "pki"
    )
    services.setdefault("opcua", {}).update(port=opcua_port, pki_dir=pki)
    for area in data.get("areas", []):
        for device in area.get("devices", []):
            if device.get("driver") == "modbus":
                device.setdefault("connection", {})["port"] = modbus_port
    data.setdefault("store", {})["url"] = db
    # Relative paths of the embedded site are relative to its package.
    advisory = data.get("rules", {}).get("firmware_advisory")
    if advisory and not Path(advisory["file"]).is_absolute():
        advisory["file"] = str(resources.files("plantguard_sim").joinpath(advisory["file"]))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


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
