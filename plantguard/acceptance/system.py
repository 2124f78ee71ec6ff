"""System items: the gateway starts, its endpoint is secure, its users and store are fit.

Each function returns the items of one requirement; none raises for what it finds
(a missing certificate is a failed item, not an exception).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..auth import Role, UserRecord, verify_password
from ..config import LoadedSite
from ..store import Store, migrate
from .gateway import Gateway
from .opcua import is_loopback
from .record import Item, Status

__all__ = [
    "BYTES_PER_SAMPLE",
    "CERTIFICATE_MARGIN_DAYS",
    "DEFAULT_PASSWORDS",
    "certificate_items",
    "clock_item",
    "gateway_item",
    "migration_item",
    "opcua_items",
    "role_items",
    "site_item",
    "storage_item",
    "user_items",
]

#: A server certificate must stay valid at least this long after acceptance.
CERTIFICATE_MARGIN_DAYS = 90
#: Passwords nobody may keep (besides the user's own name, the demo's password).
DEFAULT_PASSWORDS = ("", "password", "admin", "changeme", "plantguard", "123456", "12345678")
#: Stored bytes per history sample (docs/history.md): SQLite file; PostgreSQL steady state.
BYTES_PER_SAMPLE = {"sqlite": 72.0, "postgresql": 138.0}
#: Room kept beside the history estimate (SQLite's WAL file, journal, records).
STORE_SLACK_BYTES = 64 * 1024 * 1024
#: Retention is held when the oldest sample is at most this much older than it.
RETENTION_TOLERANCE = 3600.0
#: Clocks that differ by more than this fail (seconds).
CLOCK_TOLERANCE = 2.0


# --- the site and the gateway ----------------------------------------------------------


def _n(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def site_item(path: Path, sha256: str, loaded: LoadedSite | None, error: str) -> Item:
    if loaded is None:
        return Item(
            "system.site",
            "The site file loads",
            Status.FAIL,
            error.splitlines()[0] if error else "the site file does not load",
            {"file": str(path), "sha256": sha256, "errors": error.splitlines()},
        )
    site = loaded.site
    return Item(
        "system.site",
        "The site file loads",
        Status.PASS,
        f"site {site.id!r}: {_n(len(site.areas), 'area')}, {_n(len(site.devices), 'device')}, "
        f"{_n(len(site.points), 'point')}; services: {', '.join(loaded.services) or 'none'}",
        {
            "file": str(path),
            "sha256": sha256,
            "areas": len(site.areas),
            "devices": len(site.devices),
            "points": len(site.points),
            "services": list(loaded.services),
        },
    )


async def gateway_item(gw: Gateway, build_error: str | None) -> Item:
    """The gateway starts from the site file (started here), or runs and serves it."""
    title = "The gateway starts from the site file"
    site = gw.loaded.site
    if gw.mode == "started":
        if gw.start_error or not gw.up:
            return Item(
                "system.gateway",
                title,
                Status.FAIL,
                f"it does not start: {gw.start_error or 'it stopped'}",
                gw.describe(),
            )
        services = list(gw.engine.services) if gw.engine is not None else []
        return Item(
            "system.gateway",
            title,
            Status.PASS,
            f"started by this run in {gw.start_seconds:.1f} s "
            f"(services: {', '.join(services) or 'none'})",
            {**gw.describe(), "start_seconds": round(gw.start_seconds, 3)},
        )
    # A gateway of another process: the site must build here and be the one it serves.
    evidence = gw.describe()
    if build_error:
        return Item(
            "system.gateway",
            title,
            Status.FAIL,
            f"the site does not build: {build_error}",
            evidence,
        )
    if gw.client is None:
        return Item(
            "system.gateway",
            title,
            Status.FAIL,
            f"a gateway runs on the store ({gw.holder}) but cannot be reached: {gw.client_error}",
            evidence,
        )
    paths = [site.id, *(f"{site.id}/{d.area_id}/{d.id}" for d in site.devices)]
    try:
        found = await gw.client.exists(paths)
    except Exception as exc:  # the session broke: the gateway cannot be shown to serve it
        return Item(
            "system.gateway", title, Status.FAIL, f"browsing the gateway failed: {exc}", evidence
        )
    missing = [p for p, ok in zip(paths, found, strict=True) if not ok]
    evidence["missing_nodes"] = missing
    if missing:
        return Item(
            "system.gateway",
            title,
            Status.FAIL,
            f"the gateway on the store ({gw.holder}) does not serve this site file: "
            f"no {', '.join(missing[:5])}",
            evidence,
        )
    return Item(
        "system.gateway",
        title,
        Status.PASS,
        f"the site builds; the gateway running on the store ({gw.holder}) serves it "
        f"with all {_n(len(site.devices), 'device')} at {gw.endpoint}",
        evidence,
    )


# --- OPC UA -----------------------------------------------------------------------------


def opcua_items(gw: Gateway) -> list[Item]:
    """The endpoint answers; no unencrypted endpoint on a network address; the trust list."""
    settings = gw.opcua
    if settings is None:
        reason = gw.client_error or "the site runs no OPC UA server"
        return [
            Item(
                "system.opcua",
                "OPC UA endpoint",
                Status.NOT_APPLICABLE if gw.mode == "started" else Status.FAIL,
                reason,
                {},
            )
        ]
    loopback = is_loopback(settings.host)
    live = gw.client.endpoints if gw.client is not None else []
    offered = sorted({f"{e.policy} {e.mode}" for e in live})
    items = [
        Item(
            "system.opcua.session",
            "The OPC UA endpoint answers",
            Status.PASS if gw.client is not None else Status.FAIL,
            (
                f"{gw.endpoint}: session opened ({gw.client.security}, "
                f"{gw.client.user or 'anonymous'})"
                if gw.client is not None
                else gw.client_error
            ),
            gw.describe(),
        )
    ]
    unencrypted = "none" in settings.security or any(e.policy == "None" for e in live)
    evidence: dict[str, Any] = {
        "host": settings.host,
        "loopback": loopback,
        "configured": list(settings.security),
        "offered": offered,
        "anonymous": settings.anonymous,
    }
    if unencrypted and not loopback:
        status, summary = (
            Status.FAIL,
            f"policy None offered on {settings.host}, a network address: passwords and values "
            "travel in clear text",
        )
    elif unencrypted:
        status, summary = (
            Status.PASS,
            f"policy None only on the loopback address {settings.host} (reachable from this "
            "machine only)",
        )
    else:
        status, summary = Status.PASS, f"only secured endpoints: {', '.join(offered) or '-'}"
    items.append(
        Item(
            "system.opcua.security",
            "No unencrypted OPC UA endpoint on a network address",
            status,
            summary,
            evidence,
        )
    )
    items.append(_trust_item(settings.trust_all_clients, settings.pki_dir, settings.host))
    return items


def _trust_item(trust_all: bool, pki_dir: str, host: str) -> Item:
    title = "Client certificates are checked against a trust list"
    trusted = Path(pki_dir).expanduser() / "trusted"
    count = sum(1 for p in trusted.glob("*") if p.is_file()) if trusted.is_dir() else 0
    evidence = {"trust_all_clients": trust_all, "trusted_dir": str(trusted), "trusted": count}
    if not trust_all:
        return Item(
            "system.opcua.trust",
            title,
            Status.PASS,
            f"trust list {trusted} ({_n(count, 'client certificate')})",
            evidence,
        )
    if is_loopback(host):
        return Item(
            "system.opcua.trust",
            title,
            Status.NOT_APPLICABLE,
            f"trust_all_clients on the loopback address {host}: only this machine's clients "
            "can connect",
            evidence,
        )
    return Item(
        "system.opcua.trust",
        title,
        Status.FAIL,
        f"trust_all_clients is set on {host}: any client certificate is accepted",
        evidence,
    )


def certificate_items(gw: Gateway, now: dt.datetime) -> list[Item]:
    """The server certificate in pki_dir: valid, not expiring within 90 days, the one served."""
    settings = gw.opcua
    if settings is None:
        return []
    title = f"The OPC UA server certificate is valid for at least {CERTIFICATE_MARGIN_DAYS} days"
    if settings.security == ("none",):
        return [
            Item(
                "system.opcua.certificate",
                title,
                Status.NOT_APPLICABLE,
                "the endpoint offers policy None only: no certificate",
                {},
            )
        ]
    path = Path(settings.pki_dir).expanduser() / "own" / "cert.der"
    try:
        cert = x509.load_der_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [
            Item(
                "system.opcua.certificate",
                title,
                Status.FAIL,
                f"no readable server certificate at {path}: {exc}",
                {"file": str(path)},
            )
        ]
    thumbprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    left = (not_after - now).total_seconds() / 86_400
    evidence: dict[str, Any] = {
        "file": str(path),
        "subject": cert.subject.rfc4514_string(),
        "sha256": thumbprint,
        "not_before": not_before,
        "not_after": not_after,
        "days_left": round(left, 1),
    }
    served = [e.certificate for e in (gw.client.endpoints if gw.client else []) if e.certificate]
    if served:
        served_print = hashlib.sha256(served[0]).hexdigest()
        evidence["served_sha256"] = served_print
        if served_print != thumbprint:
            return [
                Item(
                    "system.opcua.certificate",
                    title,
                    Status.FAIL,
                    f"the server presents another certificate ({served_print[:16]}…) than "
                    f"{path} ({thumbprint[:16]}…)",
                    evidence,
                )
            ]
    if now < not_before:
        status, summary = Status.FAIL, f"not valid before {not_before:%Y-%m-%d %H:%M} UTC"
    elif left < CERTIFICATE_MARGIN_DAYS:
        status = Status.FAIL
        summary = f"expires {not_after:%Y-%m-%d} ({left:.0f} days): renew it before hand-over"
    else:
        status = Status.PASS
        summary = f"valid until {not_after:%Y-%m-%d} ({left:.0f} days); SHA-256 {thumbprint[:16]}…"
    return [Item("system.opcua.certificate", title, status, summary, evidence)]


# --- users and roles -------------------------------------------------------------------


def _weak(user: UserRecord) -> str:
    """Why the user's password is a default one ("" when it is not)."""
    if verify_password(user.name, user.password_hash):
        return "its password is its user name (the demo's password)"
    for candidate in DEFAULT_PASSWORDS:
        if candidate != user.name and verify_password(candidate, user.password_hash):
            return "its password is a well-known default" if candidate else "its password is empty"
    return ""


async def user_items(users: Sequence[UserRecord]) -> list[Item]:
    """No user with the demo's or a default password (scrypt checks, in a thread)."""
    reasons = await asyncio.to_thread(lambda: [_weak(u) for u in users])
    items = [
        Item(
            f"system.users.{user.name}",
            f"User {user.name} has a password of its own",
            Status.FAIL,
            f"{user.name} ({user.role.label}): {why}; change it or remove the user",
            {"user": user.name, "role": user.role.label},
        )
        for user, why in zip(users, reasons, strict=True)
        if why
    ]
    if not items:
        items.append(
            Item(
                "system.users",
                "No user has a default or demo password",
                Status.PASS,
                f"{_n(len(users), 'user')} checked against their own name and "
                f"{len(DEFAULT_PASSWORDS)} default passwords",
                {"users": [u.name for u in users]},
            )
        )
    return items


def role_items(users: Sequence[UserRecord], unused: Sequence[str]) -> list[Item]:
    """Every role has an account, or the site declares it deliberately unused."""
    items = []
    for role in Role:
        names = [u.name for u in users if u.role is role]
        declared = role.label in unused
        evidence = {"role": role.label, "accounts": names, "declared_unused": declared}
        title = f"The {role.label} role has an account"
        if names and declared:
            status = Status.FAIL
            summary = (
                f"declared unused (acceptance.unused_roles) but has accounts: {', '.join(names)}"
            )
        elif names:
            status, summary = Status.PASS, f"accounts: {', '.join(names)}"
        elif declared:
            status = Status.NOT_APPLICABLE
            summary = "deliberately unused (acceptance.unused_roles in the site file)"
        else:
            status = Status.FAIL
            summary = (
                "no account: add one (plantguard users add) or declare the role in "
                "acceptance.unused_roles"
            )
        items.append(Item(f"system.roles.{role.label}", title, status, summary, evidence))
    return items


# --- the store --------------------------------------------------------------------------


def migration_item(store: Store) -> Item:
    """The store's schema is at the Alembic head of this PlantGuard version."""
    title = "The store's schema migrations are current"
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    try:
        with store.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except sa.exc.SQLAlchemyError as exc:
        return Item(
            "system.store.migrations", title, Status.FAIL, f"cannot read the store: {exc}", {}
        )
    evidence = {"store": sorted(current), "head": sorted(heads)}
    if current == heads:
        return Item(
            "system.store.migrations",
            title,
            Status.PASS,
            f"at head {', '.join(sorted(heads))}",
            evidence,
        )
    summary = (
        "an empty store (no schema yet)"
        if not current
        else f"at {', '.join(sorted(current))}, head is {', '.join(sorted(heads))}"
    )
    return Item("system.store.migrations", title, Status.FAIL, summary, evidence)


@dataclass(frozen=True, slots=True)
class _Sizing:
    samples_per_day: float
    bytes_per_sample: float
    retention_days: float

    @property
    def estimate(self) -> float:
        return self.samples_per_day * self.retention_days * self.bytes_per_sample


def _sizing(loaded: LoadedSite, dialect: str) -> _Sizing:
    site = loaded.site
    per_day = sum(
        86_400.0 / site.poll_groups[site.poll_group_of(d, p)].interval
        for d in site.devices
        for p in d.points
    )
    return _Sizing(
        per_day,
        BYTES_PER_SAMPLE.get(dialect, BYTES_PER_SAMPLE["postgresql"]),
        site.store.history.retention_days,
    )


def _sqlite_files(store: Store) -> tuple[Path | None, int]:
    database = store.engine.url.database
    if not database or database == ":memory:":
        return None, 0
    path = Path(database)
    size = sum(
        p.stat().st_size
        for p in (path, Path(f"{database}-wal"), Path(f"{database}-shm"))
        if p.exists()
    )
    return path, size


def storage_item(loaded: LoadedSite, store: Store, now: float) -> Item:
    """History retention is held, and the disk has room for a full retention period
    (worst case: every poll a change, docs/history.md)."""
    title = "History retention is held and the disk has room for it"
    dialect = store.engine.dialect.name
    sizing = _sizing(loaded, dialect)
    try:
        oldest = store.oldest_history_time()
    except sa.exc.SQLAlchemyError:
        oldest = None
    retention_s = sizing.retention_days * 86_400.0
    evidence: dict[str, Any] = {
        "dialect": dialect,
        "retention_days": sizing.retention_days,
        "samples_per_day": round(sizing.samples_per_day),
        "bytes_per_sample": sizing.bytes_per_sample,
        "estimate_bytes": round(sizing.estimate),
        "oldest_sample_age_s": None if oldest is None else round(now - oldest, 1),
    }
    if oldest is not None and now - oldest > retention_s + RETENTION_TOLERANCE:
        return Item(
            "system.store.retention",
            title,
            Status.FAIL,
            f"the oldest sample is {(now - oldest) / 86_400:.1f} days old, beyond the "
            f"retention of {sizing.retention_days:g} days: retention is not applied",
            evidence,
        )
    path, current = _sqlite_files(store) if dialect == "sqlite" else (None, 0)
    if path is None:
        return Item(
            "system.store.retention",
            title,
            Status.SIGN_OFF,
            f"{sizing.retention_days:g} days of history need up to {_gb(sizing.estimate)} on the "
            f"{dialect} server; its free space is not visible from here: confirm it",
            evidence,
        )
    free = shutil.disk_usage(path.parent).free
    required = max(0.0, sizing.estimate - current) + STORE_SLACK_BYTES
    evidence.update(
        {
            "file": str(path),
            "current_bytes": current,
            "free_bytes": free,
            "required_free_bytes": round(required),
        }
    )
    summary = (
        f"{sizing.retention_days:g} days × {sizing.samples_per_day:,.0f} samples/day × "
        f"{sizing.bytes_per_sample:g} B ≈ {_gb(sizing.estimate)}; store {_gb(current)}, "
        f"free {_gb(free)} (needs {_gb(required)})"
    )
    status = Status.PASS if free >= required else Status.FAIL
    return Item("system.store.retention", title, status, summary, evidence)


def _gb(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.1f} MB"


# --- clocks -----------------------------------------------------------------------------


async def clock_item(gw: Gateway, device_times: dict[str, float | None]) -> Item:
    """Clock difference between the gateway and each device that reports its time.

    ``device_times``: device id → the device's clock minus the gateway's (s), None when
    the device could not be asked; only devices whose driver reports time are in it.
    """
    title = "Device clocks agree with the gateway's"
    evidence: dict[str, Any] = {}
    if gw.client is not None:
        try:
            before = time.time()
            server = (await gw.client.server_time()).timestamp()
            after = time.time()
            evidence["gateway_minus_this_host_s"] = round(server - (before + after) / 2, 3)
        except Exception as exc:  # the item is about devices; the gateway's offset is extra
            evidence["gateway_time_error"] = str(exc)
    if not device_times:
        return Item(
            "system.clock",
            title,
            Status.NOT_APPLICABLE,
            "no device reports its time (their samples are stamped by the gateway)",
            evidence,
        )
    evidence["devices"] = device_times
    unknown = [d for d, v in device_times.items() if v is None]
    off = {d: v for d, v in device_times.items() if v is not None and abs(v) > CLOCK_TOLERANCE}
    if unknown or off:
        parts = [f"{d} {v:+.1f} s" for d, v in off.items()] + [f"{d} not read" for d in unknown]
        return Item("system.clock", title, Status.FAIL, "; ".join(parts), evidence)
    worst = max(abs(v) for v in device_times.values() if v is not None)
    return Item(
        "system.clock",
        title,
        Status.PASS,
        f"{len(device_times)} devices within ±{CLOCK_TOLERANCE:g} s (largest {worst:.2f} s)",
        evidence,
    )
