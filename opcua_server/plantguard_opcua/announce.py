"""Announces the OPC UA endpoint over mDNS/DNS-SD, as OPC UA Part 12 describes.

Off unless the site file says ``services.opcua.announce: true``.  The gateway
then registers one ``_opcua-tcp._tcp.local.`` service (the type Part 12 gives
``opc.tcp`` endpoints) whose SRV record names the port, and whose TXT record
carries:

``path``  the endpoint path (``/plantguard``), as Part 12 requires
``caps``  the server capability identifiers of Part 12 Annex D: ``DA`` (live
          data) and ``AC`` (alarms and conditions), plus ``HD`` and ``HE``
          (historical data and events) when the gateway has a store
``site``  the site id
``uri``   the server's application URI (``urn:plantguard:<site>:opcua``): what a
          client, e.g. Home Assistant, identifies the gateway by
``sec``   the message security modes offered (``none``, ``sign``, ``sign_and_encrypt``)

The announcement goes out where the endpoint is reachable: on the interface of
``services.opcua.host`` when that is an address (127.0.0.1 — the default — keeps
it on this machine), on every interface when it is 0.0.0.0 or ``::``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from plantguard.services import EngineView

from .options import OpcUaOptions

__all__ = ["SERVICE_TYPE", "Announcement", "Announcer", "capabilities"]

log = logging.getLogger(__name__)

#: The DNS-SD service type of ``opc.tcp`` endpoints (OPC UA Part 12).
SERVICE_TYPE = "_opcua-tcp._tcp.local."

#: Makes the mDNS stack: ``AsyncZeroconf`` itself, or a test double.
ZeroconfFactory = Callable[..., AsyncZeroconf]


def capabilities(*, history: bool) -> list[str]:
    """Part 12 server capability identifiers of a gateway (with a store: history too)."""
    return ["DA", "AC", *(["HD", "HE"] if history else [])]


def _label(text: str, limit: int = 63) -> str:
    """``text`` cut to fit one DNS label (63 bytes of UTF-8)."""
    data = text.encode()[:limit]
    return data.decode(errors="ignore")


def _host_label(site_id: str) -> str:
    """A host name label from a site id: letters, digits and hyphens only."""
    return re.sub(r"[^a-z0-9-]+", "-", site_id.lower()).strip("-") or "gateway"


@dataclass(frozen=True, slots=True)
class Where:
    """The interfaces to announce on, and the addresses the record names."""

    interfaces: list[str] | InterfaceChoice
    addresses: list[str]
    ip_version: IPVersion


def _machine_addresses(v6: bool) -> list[str]:
    """This machine's non-loopback addresses (IPv4, and IPv6 when ``v6``)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if address.is_loopback or (address.version == 6 and not v6):
                continue
            if address.version == 6 and address.is_link_local:
                continue
            found.append(str(address))
    return found


def where(host: str) -> Where:
    """Where an endpoint bound to ``host`` is reachable (blocking: may read interfaces or DNS)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A host name: announce the addresses it resolves to, on every interface.
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        names = sorted({str(info[4][0]) for info in infos})
        v6 = any(":" in name for name in names)
        return Where(InterfaceChoice.All, names, IPVersion.All if v6 else IPVersion.V4Only)
    if address.is_unspecified:
        v6 = address.version == 6
        return Where(
            InterfaceChoice.All,
            _machine_addresses(v6),
            IPVersion.All if v6 else IPVersion.V4Only,
        )
    version = IPVersion.V6Only if address.version == 6 else IPVersion.V4Only
    return Where([str(address)], [str(address)], version)


@dataclass(frozen=True, slots=True)
class Announcement:
    """What the gateway announces: one ``_opcua-tcp._tcp`` service."""

    site_id: str
    application_uri: str
    application_name: str
    port: int
    path: str
    capabilities: Sequence[str]
    security: Sequence[str]

    @classmethod
    def of(
        cls, options: OpcUaOptions, port: int, application_uri: str, engine: EngineView
    ) -> Announcement:
        """The announcement of a server started with ``options`` on ``port`` for ``engine``."""
        return cls(
            site_id=engine.site.id,
            application_uri=application_uri,
            application_name=options.application_name,
            port=port,
            path=options.path,
            capabilities=capabilities(history=engine.store is not None),
            security=tuple(options.security),
        )

    @property
    def instance(self) -> str:
        """The service instance name, e.g. ``PlantGuard demo``."""
        return _label(f"{self.application_name} {self.site_id}")

    @property
    def properties(self) -> dict[str, str]:
        """The TXT record."""
        return {
            "path": self.path,
            "caps": ",".join(self.capabilities),
            "site": self.site_id,
            "uri": self.application_uri,
            "sec": ",".join(self.security),
        }

    def service_info(self, addresses: Sequence[str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.instance}.{SERVICE_TYPE}",
            port=self.port,
            properties=self.properties,
            server=f"plantguard-{_host_label(self.site_id)}.local.",
            parsed_addresses=list(addresses),
        )


class Announcer:
    """Registers the announcement while the OPC UA server runs; says goodbye when it stops."""

    def __init__(
        self, announcement: Announcement, factory: ZeroconfFactory = AsyncZeroconf
    ) -> None:
        self.announcement = announcement
        self._factory = factory
        self._zeroconf: AsyncZeroconf | None = None
        self.info: AsyncServiceInfo | None = None

    async def start(self, host: str) -> None:
        """Announce the endpoint bound to ``host``.

        A machine where mDNS cannot run (no multicast, port 5353 refused) gets a
        warning, not a failed gateway: the endpoint works without being announced.
        """
        try:
            place = await asyncio.get_running_loop().run_in_executor(None, where, host)
            info = self.announcement.service_info(place.addresses)
            self._zeroconf = self._factory(interfaces=place.interfaces, ip_version=place.ip_version)
            await self._zeroconf.async_register_service(info, allow_name_change=True)
        except asyncio.CancelledError:
            await self.stop()
            raise
        except Exception as exc:
            log.warning("Could not announce the OPC UA endpoint over mDNS: %s", exc)
            await self.stop()
            return
        self.info = info
        log.info("Announcing %s as %s on %s", info.name, SERVICE_TYPE, ", ".join(place.addresses))

    async def stop(self) -> None:
        """Withdraw the announcement (goodbye packets) and close the mDNS stack; never raises."""
        zeroconf, self._zeroconf = self._zeroconf, None
        info, self.info = self.info, None
        if zeroconf is None:
            return
        try:
            if info is not None:
                await zeroconf.async_unregister_service(info)
            await zeroconf.async_close()
        except Exception:
            log.exception("mDNS announcement did not stop cleanly")
