"""The gateway under test: the one already running on the store, or one started for the run.

A running gateway holds the store's lease (:mod:`plantguard.store.lease`).  When
somebody holds it, acceptance tests *that* gateway through its OPC UA endpoint
and reads the store it writes.  When nobody does, acceptance starts the gateway
from the site file itself — the first item of the record is that it starts —
holds the lease while it runs, and stops it at the end.  Either way the checks
see the gateway as a client does: point values, writes and events go through
OPC UA when the site serves it (through the engine directly only for a started
gateway without an OPC UA service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..auth import Principal
from ..config import LoadedSite
from ..drivers import DriverError
from ..engine import Engine
from ..host import PluginHost
from ..model import Device, Point, Quality
from ..store import Store
from ..writes import WriteError
from .opcua import GatewayClient, OpcUaUnavailable

__all__ = ["Gateway", "OpcUaSettings", "WriteFailed", "point_path"]

log = logging.getLogger(__name__)

OPCUA_SERVICE = "opcua"


class WriteFailed(Exception):
    """A loop check's write did not reach the device (the message says why)."""


@dataclass(frozen=True, slots=True)
class OpcUaSettings:
    """The ``services.opcua`` settings acceptance judges (read from the validated options)."""

    host: str = "127.0.0.1"
    port: int = 4840
    path: str = "/plantguard"
    security: tuple[str, ...] = ("sign_and_encrypt",)
    anonymous: bool = False
    pki_dir: str = "pki"
    trust_all_clients: bool = False

    @classmethod
    def of(cls, options: BaseModel) -> OpcUaSettings:
        defaults = cls()
        return cls(
            host=str(getattr(options, "host", defaults.host)),
            port=int(getattr(options, "port", defaults.port)),
            path=str(getattr(options, "path", defaults.path)),
            security=tuple(getattr(options, "security", defaults.security)),
            anonymous=bool(getattr(options, "anonymous", defaults.anonymous)),
            pki_dir=str(getattr(options, "pki_dir", defaults.pki_dir)),
            trust_all_clients=bool(getattr(options, "trust_all_clients", False)),
        )

    def endpoint(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"opc.tcp://{host}:{self.port if port is None else port}{self.path}"


def point_path(site_id: str, device: Device, point: Point) -> str:
    """The point variable's NodeId path (docs/opcua.md): ``site/area/device/Points/local``."""
    local = point.id.removeprefix(f"{device.id}.")
    return f"{site_id}/{device.area_id}/{device.id}/Points/{local}"


@dataclass(slots=True)
class Gateway:
    """The gateway acceptance tests, and how to reach it."""

    loaded: LoadedSite
    #: ``running`` (another process holds the lease) or ``started`` (by this run).
    mode: str
    holder: str = ""
    engine: Engine | None = None
    opcua: OpcUaSettings | None = None
    client: GatewayClient | None = None
    #: Why there is no client (no OPC UA service, endpoint refused …); "" when there is one.
    client_error: str = ""
    endpoint: str = ""
    principal: Principal | None = None
    start_seconds: float = math.nan
    #: Why a started gateway did not start ("" when it did, or is not ours).
    start_error: str = ""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _store: Store | None = None

    @property
    def up(self) -> bool:
        """The gateway runs: another process's, or ours started and not failed."""
        if self.mode == "running":
            return True
        return self._task is not None and not self._task.done()

    # --- starting and stopping ----------------------------------------------------------

    async def start(self, host: PluginHost, db: str, timeout: float) -> None:
        """Start the site's engine on ``db`` (taking the lease); :attr:`start_error` says
        why not when it does not start within ``timeout`` seconds."""
        began = time.monotonic()
        store = Store(db)
        self._store = store
        try:
            store.lease.acquire(f"plantguard acceptance, site {self.loaded.site.id}")
            self.engine = Engine(self.loaded, host, store)
        except Exception as exc:  # a plugin or the store refusing the site: the item says so
            log.debug("the gateway does not build", exc_info=True)
            self.start_error = f"{type(exc).__name__}: {exc}"
            return
        engine = self.engine
        self._task = asyncio.create_task(engine.run(self._stop), name="acceptance gateway")
        ready = asyncio.create_task(engine.ready.wait())
        await asyncio.wait([self._task, ready], timeout=timeout, return_when="FIRST_COMPLETED")
        if not ready.done():
            ready.cancel()
            if self._task.done():
                error = self._task.exception()
                self.start_error = f"{type(error).__name__}: {error}" if error else "it stopped"
            else:
                self.start_error = f"not ready within {timeout:g} s"
            return
        self.start_seconds = time.monotonic() - began

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self._task is not None:
            self._stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=30)
            self._task = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- the OPC UA session -------------------------------------------------------------

    async def connect(self, user: str, password: str) -> None:
        """Open the OPC UA session (as ``user`` when given); :attr:`client_error` if not."""
        options = self.loaded.services.get(OPCUA_SERVICE)
        if options is None:
            self.client_error = "the site runs no OPC UA server (services.opcua)"
            return
        self.opcua = settings = OpcUaSettings.of(options)
        service = self.engine.services.get(OPCUA_SERVICE) if self.engine is not None else None
        started = getattr(service, "endpoint", "")
        if isinstance(started, str) and started:
            self.endpoint = started
        elif settings.port == 0:
            self.client_error = (
                "services.opcua.port is 0 (a free port picked at start): the running "
                "gateway's endpoint is unknown; give the site a fixed port"
            )
            return
        else:
            self.endpoint = settings.endpoint()
        if not self.up:
            self.client_error = "the gateway is not running"
            return
        try:
            self.client = await GatewayClient.open(
                self.endpoint, user=user, password=password, pki_dir=settings.pki_dir
            )
            await self.client.subscribe_events()
        except OpcUaUnavailable as exc:
            self.client_error = str(exc)
        except Exception as exc:  # asyncua has more failure modes than it documents
            log.debug("OPC UA session failed", exc_info=True)
            self.client_error = f"{type(exc).__name__}: {exc}"

    # --- values and writes --------------------------------------------------------------

    async def live(self, device: Device, point: Point) -> tuple[float, bool, float | None]:
        """The gateway's current value of ``point``: value, Good or not, source time."""
        if self.client is not None:
            return await self.client.read(point_path(self.loaded.site.id, device, point))
        if self.engine is not None:
            table = self.engine.table
            i = table.index[point.id]
            good = int(table.quality[i]) == Quality.GOOD
            t = float(table.source_time[i])
            return float(table.values[i]), good, t if math.isfinite(t) and t > 0 else None
        return math.nan, False, None

    def can_write(self) -> str:
        """Why writes are impossible ("" when they are possible)."""
        if self.principal is None:
            return "no user to write as: run with --as NAME (an engineer or above)"
        if self.client is not None:
            return ""
        if self.engine is not None and self.opcua is None:
            return ""
        return self.client_error or "the gateway cannot be reached"

    async def write(self, device: Device, point: Point, value: float) -> None:
        """Write ``point`` through the engine's one write path (OPC UA Write when served)."""
        why = self.can_write()
        if why:
            raise WriteFailed(why)
        if self.client is not None:
            status = await self.client.write(point_path(self.loaded.site.id, device, point), value)
            if status != "Good":
                raise WriteFailed(f"OPC UA Write answered {status}")
            return
        assert self.engine is not None
        assert self.principal is not None  # can_write() says so
        try:
            await self.engine.write_point(point.id, value, self.principal)
        except (WriteError, DriverError) as exc:
            raise WriteFailed(str(exc)) from exc

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "holder": self.holder,
            "endpoint": self.endpoint,
            "session": (
                {"security": self.client.security, "user": self.client.user or "anonymous"}
                if self.client is not None
                else None
            ),
            "session_error": self.client_error or None,
        }
