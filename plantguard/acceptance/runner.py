"""One acceptance run, item by item, in the order the standard's scope lists them.

:func:`run` never stops at a failed item: a device that does not answer, an alarm
whose loop check fails, a store behind its migrations are each recorded and the
run goes on.  It stops early only when the site file does not load (nothing else
can be judged) and refuses to start when the ``--as`` user cannot prove who it is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..auth import Principal, Role, authenticate
from ..build import build_engine_parts
from ..config import ConfigError, LoadedSite, load_site
from ..host import PluginHost
from ..model import Quality
from ..probe import probe_site
from ..records.status import plan_statuses
from ..store import Store
from ..store.lease import LeaseHeld
from . import alarms, devices, records, system
from .gateway import Gateway
from .record import SECTIONS, Item, Record, Status

__all__ = ["AcceptanceRefused", "Options", "redact", "run"]

log = logging.getLogger(__name__)

#: Points kept per loop-check plot.
MAX_SERIES = 600


class AcceptanceRefused(Exception):
    """The run cannot start: the acting user is unknown, the password wrong, the role too low."""


@dataclass(frozen=True, slots=True)
class Options:
    site: Path
    db: str | None = None
    #: The engineer loop checks write as (``--as``), and the password.
    actor: str | None = None
    password: str = ""
    device_timeout: float = 10.0
    start_timeout: float = 60.0


def redact(url: str) -> str:
    """A store URL without its password (``postgresql://user:***@host/db``)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, where = rest.rsplit("@", 1)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{where}"


async def run(options: Options, host: PluginHost) -> Record:
    """Run every acceptance item against the gateway of ``options.site``; return the record."""
    path = options.site
    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        sha256 = ""
    started = dt.datetime.now(dt.UTC)
    try:
        loaded = load_site(path, host)
    except ConfigError as exc:
        record = Record("", "", str(path), sha256, __version__, started)
        return _done(record, [system.site_item(path, sha256, None, str(exc))])
    site = loaded.site
    db = options.db or site.store.url
    record = Record(
        site.id,
        site.name,
        str(path),
        sha256,
        __version__,
        started,
        store=redact(db),
        tested_by=options.actor or "",
    )
    items: list[Item] = [system.site_item(path, sha256, loaded, "")]
    try:
        store = Store(db, migrate_to_head=False)  # acceptance reads; it never migrates
    except Exception as exc:  # a server that is down, a path that cannot be a database
        why = f"cannot open {redact(db)}: {getattr(exc, 'orig', None) or exc}"
        items.append(
            Item("system.store", "The store can be opened", Status.FAIL, why, {"store": redact(db)})
        )
        return _done(record, items)
    try:
        items += await _with_gateway(record, loaded, store, host, options)
    finally:
        store.close()
    return _done(record, items)


def _done(record: Record, items: list[Item]) -> Record:
    items.sort(key=lambda i: list(SECTIONS).index(i.section))
    record.add(items)
    record.finished = dt.datetime.now(dt.UTC)
    return record


async def _with_gateway(
    record: Record, loaded: LoadedSite, store: Store, host: PluginHost, options: Options
) -> list[Item]:
    """Find (or start) the gateway, then run every item against it."""
    db = options.db or loaded.site.store.url
    principal = await _principal(store, options)
    try:
        store.lease.check_free()
        gw = Gateway(loaded, "started", principal=principal)
    except LeaseHeld as held:
        gw = Gateway(loaded, "running", holder=held.holder, principal=principal)
    items: list[Item] = []
    try:
        build_error = None
        if gw.mode == "started":
            await gw.start(host, db, options.start_timeout)
            await _first_polls(gw, options.device_timeout)
        else:
            build_error = await _builds(loaded, host)
        await gw.connect(options.actor or "", options.password)
        record.gateway = gw.describe()
        items.append(await system.gateway_item(gw, build_error))
        # The schema the gateway runs on (a gateway started here migrated it first).
        items.append(await asyncio.to_thread(system.migration_item, store))
        items += await _system(gw, loaded, store, host, options)
        # Maintenance as handed over: before loop checks raise alarms that start plans.
        items += await asyncio.to_thread(_records, loaded, store, options.site, db)
        items += await _devices_and_alarms(gw, loaded, store, host, options)
    finally:
        await gw.stop()
    return items


async def _principal(store: Store, options: Options) -> Principal | None:
    if not options.actor:
        return None
    try:
        principal = await asyncio.to_thread(
            authenticate, store.users, options.actor, options.password
        )
    except Exception as exc:  # a store without users yet
        raise AcceptanceRefused(f"cannot check user {options.actor!r}: {exc}") from exc
    if principal is None:
        raise AcceptanceRefused("wrong user name or password")
    if not principal.may(Role.ENGINEER):
        raise AcceptanceRefused(
            f"{principal.name} ({principal.role.label}) may not run loop checks: "
            "acceptance needs an engineer or above"
        )
    return principal


async def _builds(loaded: LoadedSite, host: PluginHost) -> str | None:
    """Why the site does not build — every rule, driver and service made, nothing opened,
    as ``plantguard check`` builds it — or None when it does."""
    try:
        await asyncio.to_thread(build_engine_parts, loaded, host)
    except ConfigError as exc:
        return "; ".join(str(i) for i in exc.issues[:5])
    except Exception as exc:  # whatever a plugin raises is the reason the site does not build
        log.debug("the site does not build", exc_info=True)
        return f"{type(exc).__name__}: {exc}"
    return None


async def _first_polls(gw: Gateway, timeout: float) -> None:
    """Give a gateway started here time for every device's first poll (or its failure)."""
    engine = gw.engine
    if engine is None or not gw.up:
        return
    site = engine.site
    longest = max((g.interval for g in site.poll_groups.values()), default=1.0)
    deadline = time.monotonic() + timeout + 2 * longest
    waiting = Quality.BAD_WAITING_FOR_INITIAL_DATA
    while time.monotonic() < deadline:
        if not bool((engine.table.quality == waiting).any()):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(min(longest, 1.0) + site.scan_interval)  # one scan past the polls


async def _system(
    gw: Gateway, loaded: LoadedSite, store: Store, host: PluginHost, options: Options
) -> list[Item]:
    now = dt.datetime.now(dt.UTC)
    items = system.opcua_items(gw) + system.certificate_items(gw, now)
    try:
        users = await asyncio.to_thread(store.users.list_users)
    except Exception as exc:
        items.append(
            Item("system.users", "Users", Status.FAIL, f"cannot read the users: {exc}", {})
        )
    else:
        items += await system.user_items(users)
        items += system.role_items(users, loaded.site.acceptance.unused_roles)
    items.append(await asyncio.to_thread(system.storage_item, loaded, store, time.time()))
    times = await devices.device_times(loaded, host, options.device_timeout)
    items.append(await system.clock_item(gw, times))
    return items


async def _devices_and_alarms(
    gw: Gateway, loaded: LoadedSite, store: Store, host: PluginHost, options: Options
) -> list[Item]:
    items = devices.info_items(loaded.site.devices)
    reports = await probe_site(loaded, host, timeout=options.device_timeout)
    items += devices.device_items(reports)
    probed = {p.point.id: (p.value, p.quality_name) for r in reports for p in r.points}
    checks = await alarms.alarm_items(gw, store, alarms.limit_specs(loaded), probed=probed)
    if any(i.evidence.get("steps") for i in checks):
        await _attach_series(checks, store, loaded.site.store.history.flush_interval)
    return items + checks


async def _attach_series(checks: list[Item], store: Store, flush_interval: float) -> None:
    """The recorded value around each loop check, for its plot (after history's next flush)."""
    await asyncio.sleep(min(flush_interval, 5.0) + 0.5)
    for item in checks:
        steps = item.evidence.get("steps") or []
        if not steps:
            continue
        t0 = min(s["written"] for s in steps) - 3.0
        t1 = max(s["written"] for s in steps) + 3.0
        trend = await asyncio.to_thread(
            store.trend, item.evidence["point"], t0, t1, include_previous=True
        )
        keep = np.arange(len(trend))
        if keep.size > MAX_SERIES:
            keep = np.linspace(0, keep.size - 1, MAX_SERIES).astype(np.intp)
        item.evidence["series"] = {
            "start": t0,
            "t": [round(float(t) - t0, 3) for t in trend.time[keep]],
            "v": [float(v) if math.isfinite(v) else None for v in trend.value[keep]],
        }


def _records(loaded: LoadedSite, store: Store, path: Path, db: str) -> list[Item]:
    items: list[Item] = []
    try:
        plans = store.records.plans()
        statuses = plan_statuses(store, time.time())
    except Exception as exc:
        items.append(
            Item(
                "maintenance.plans",
                "Maintenance plans",
                Status.FAIL,
                f"cannot read the plans: {exc}",
                {},
            )
        )
    else:
        items += records.plan_items(loaded, plans)
        items += records.overdue_items(statuses)
    items += records.detection_items(loaded, path.parent, db)
    return items
