"""The ``opcua`` service: an asyncua server publishing the gateway's address space.

Start-up order matters for clients: the address space is complete and every
variable carries the table's current value and quality before the port is
bound, so a client that connects at once never browses a half-built tree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import socket
import time
from collections.abc import Callable

from asyncua.server.server import Server

from plantguard import __version__
from plantguard.plugin import ensure_port_free, port_in_use
from plantguard.services import EngineView, Service
from plantguard.throttle import LoginThrottle

from . import compat, hazards
from .address_space import build_address_space
from .announce import Announcement, Announcer
from .conditions import ConditionPublisher
from .history import install_history
from .methods import link_methods
from .nodeids import NAMESPACE_URI
from .options import OpcUaOptions
from .point_writes import PointWrites
from .records import RecordsPublisher
from .security import configure_security
from .subscriptions import PointSubscriptions
from .values import PointValues

__all__ = ["OpcUaService"]

log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    """A port free on ``host`` now; asyncua advertises the configured port, so 0 is resolved first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


#: Where the OPC UA port is set, for a port-in-use message.
_PORT_SETTING = "services.opcua.port; --opcua-port for the demo"


async def _listen(server: Server, host: str, port: int) -> None:
    """``server.start()``, a port taken since :func:`ensure_port_free` as :class:`PortInUse`."""
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(host, port, what="the OPC UA server", setting=_PORT_SETTING) from exc
        raise


class OpcUaService(Service):
    """Serves ``Objects/PlantGuard/<site>/…`` and keeps point variables current."""

    def __init__(self, options: OpcUaOptions) -> None:
        self.options = options
        self.endpoint = ""
        self.namespace_index = -1
        #: Seconds the last start spent adding the site's nodes.
        self.build_seconds = 0.0
        self._server: Server | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        #: The alarm conditions (after start).
        self.conditions: ConditionPublisher | None = None
        #: Maintenance and statistics nodes and RecordMaintenance (after start, with a store).
        self.records: RecordsPublisher | None = None
        #: The mDNS announcement (after start, with ``announce: true``).
        self.announcer: Announcer | None = None

    @property
    def server(self) -> Server | None:
        """The running ``asyncua.Server`` (for other parts of this package, e.g. alarms)."""
        return self._server

    async def start(self, engine: EngineView) -> None:
        if self._server is not None:
            raise RuntimeError("the OPC UA service is already running")
        opts = self.options
        port = opts.port or _free_port(opts.host)
        ensure_port_free(opts.host, port, what="the OPC UA server", setting=_PORT_SETTING)
        endpoint = opts.endpoint(port)
        server = Server()
        self._server = server
        try:
            await server.init()
            compat.cache_reference_subtypes(server)
            application_uri = f"urn:plantguard:{engine.site.id}:opcua"
            await server.set_application_uri(application_uri)
            await server.set_build_info(
                "urn:plantguard", "PlantGuard", "PlantGuard gateway", __version__, __version__,
                dt.datetime.now(dt.UTC),
            )  # fmt: skip
            server.set_server_name(opts.application_name)
            server.set_endpoint(endpoint)
            alarms = engine.alarms
            await configure_security(
                server, opts, application_uri, user_names=alarms.users is not None
            )
            ns = await server.register_namespace(NAMESPACE_URI)
            began = time.perf_counter()
            values = PointValues(engine.table, engine.site.points)
            points = PointSubscriptions(engine.table, values)
            view = await build_address_space(server, ns, engine.site, engine.table, values)
            compat.use_view(server, view, points)
            conditions = ConditionPublisher(
                server, ns, alarms, view, event_history=engine.store is not None
            )
            await conditions.build(engine.site)
            link_methods(server, conditions, alarms)
            self.build_seconds = time.perf_counter() - began
            writes = PointWrites(view, engine.table, engine.write_point)
            compat.install(
                server,
                alarms.authenticate,
                writes,
                opts.limits,
                LoginThrottle(opts.login_throttle.settings()),
            )
            if engine.store is not None:
                await install_history(
                    server,
                    engine.store,
                    engine.site,
                    ns,
                    conditions=conditions.infos,
                    alarms=alarms,
                )
                self.records = RecordsPublisher(server, ns, engine.site, engine.store)
                await self.records.build()
                # Before the port opens, so that no client sees the site without it.
                if (reporter := hazards.find_reporter(engine)) is not None:
                    await hazards.add_report_hazard(server, ns, engine.site, reporter)
            await _listen(server, opts.host, port)
            if self.records is not None:
                await self.records.start()
        except BaseException:
            await self._shutdown()
            raise
        self.namespace_index = ns
        self.endpoint = endpoint
        self.conditions = conditions
        self._unsubscribe = [
            engine.on_values(points.on_changes),
            alarms.subscribe(conditions.on_transitions),
        ]
        if opts.announce:
            self.announcer = Announcer(Announcement.of(opts, port, application_uri, engine))
            await self.announcer.start(opts.host)
        log.info(
            "OPC UA server on %s (%d point variables, address space built in %.2fs)",
            endpoint,
            len(engine.table),
            self.build_seconds,
        )

    async def stop(self) -> None:
        if self.announcer is not None:
            await self.announcer.stop()
            self.announcer = None
        if self.records is not None:
            await self.records.stop()
            self.records = None
        while self._unsubscribe:
            self._unsubscribe.pop()()
        try:
            await self._shutdown()
        except Exception:
            log.exception("OPC UA server did not stop cleanly")

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        self.endpoint = ""
        if server is None:
            return
        try:
            await server.stop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error while stopping the OPC UA server")
