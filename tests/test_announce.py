"""The gateway's mDNS/DNS-SD announcement (``services.opcua.announce``, OPC UA Part 12).

Nothing here leaves this machine.  python-zeroconf binds its mDNS listener to
0.0.0.0:5353; these tests hand its socket helpers a socket class that binds
127.0.0.1 only (on a free port instead of 5353, so a real responder on the
machine is never disturbed), refuses any other address, and sends multicast
with TTL 0 (delivered on this host only).  The announcer runs its normal code
on that loopback stack: probing, announcing, answering, goodbye.  A second
zeroconf instance (unicast, also on 127.0.0.1) asks it for the service, as an
mDNS client does with a direct query (RFC 6762 §5.5), and reads the SRV, TXT
and A records it answers with.  A multicast browser is not used: receiving
multicast needs a socket bound to the wildcard or the group address.
"""

from __future__ import annotations

import ipaddress
import socket
import types
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from opcua_engine import FakeEngine
from zeroconf import InterfaceChoice, IPVersion
from zeroconf._utils import net as zeroconf_net
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from plantguard.model import Site
from plantguard_opcua import OpcUaOptions, OpcUaService
from plantguard_opcua.announce import SERVICE_TYPE, Announcement, Announcer, capabilities, where

SITE: dict[str, Any] = {
    "id": "demo",
    "name": "Demo plant",
    "areas": [
        {
            "id": "utilities",
            "name": "Utilities",
            "devices": [
                {
                    "id": "pump1",
                    "name": "Pump",
                    "driver": "modbus",
                    "points": [{"id": "current", "name": "Current", "unit": "A"}],
                }
            ],
        }
    ],
}
OPEN: dict[str, Any] = {"security": ["none", "sign_and_encrypt"], "anonymous": True}
NAME = f"PlantGuard demo.{SERVICE_TYPE}"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def mdns_port() -> int:
    return _free_udp_port()


@pytest.fixture
def loopback_mdns(mdns_port: int) -> Iterator[list[tuple[str, int]]]:
    """Make zeroconf's sockets loopback-only; yields the addresses they bound."""
    bound: list[tuple[str, int]] = []

    class LoopbackSocket(socket.socket):
        def bind(self, address: Any) -> None:
            host, port = address[0], address[1]
            if host in ("", "0.0.0.0"):
                host = "127.0.0.1"  # the mDNS listener: loopback, not every interface
            assert host == "127.0.0.1", f"zeroconf tried to bind {address!r}"
            super().bind((host, mdns_port if port == 5353 else port))
            self.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            self.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(host))
            bound.append(self.getsockname())

    guarded = types.SimpleNamespace(**{n: getattr(socket, n) for n in dir(socket)})
    guarded.socket = LoopbackSocket
    with mock.patch.object(zeroconf_net, "socket", guarded):
        yield bound
    assert bound, "zeroconf no longer creates its sockets through zeroconf._utils.net"
    assert {host for host, _ in bound} == {"127.0.0.1"}


async def _ask(port: int, timeout: float = 3000) -> AsyncServiceInfo | None:
    """Ask the responder on 127.0.0.1:``port`` for the gateway's service, as a fresh client
    (nothing cached) on 127.0.0.1 that sends its question straight to it."""
    client = AsyncZeroconf(interfaces=["127.0.0.1"], unicast=True, ip_version=IPVersion.V4Only)
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, NAME)
        found = await info.async_request(client.zeroconf, timeout, addr="127.0.0.1", port=port)
        return info if found else None
    finally:
        await client.async_close()


# --- what is announced ----------------------------------------------------------------


def test_announcement_carries_path_capabilities_and_identity() -> None:
    engine = FakeEngine(Site.model_validate(SITE))
    options = OpcUaOptions(port=4840, **OPEN)
    announcement = Announcement.of(options, 4841, "urn:plantguard:demo:opcua", engine)
    assert announcement.instance == "PlantGuard demo"
    assert announcement.properties == {
        "path": "/plantguard",
        "caps": "DA,AC",
        "site": "demo",
        "uri": "urn:plantguard:demo:opcua",
        "sec": "none,sign_and_encrypt",
    }
    info = announcement.service_info(["127.0.0.1"])
    assert info.type == SERVICE_TYPE
    assert info.name == NAME
    assert info.port == 4841
    assert info.server == "plantguard-demo.local."
    assert info.parsed_addresses() == ["127.0.0.1"]


def test_capabilities_name_history_only_with_a_store() -> None:
    assert capabilities(history=False) == ["DA", "AC"]
    assert capabilities(history=True) == ["DA", "AC", "HD", "HE"]


def test_instance_and_host_names_fit_dns_labels() -> None:
    site = {**SITE, "id": "Line_7-Sued"}
    engine = FakeEngine(Site.model_validate(site))
    options = OpcUaOptions(application_name="PlantGuard " + "x" * 80, **OPEN)
    info = Announcement.of(options, 4840, "urn:plantguard:x:opcua", engine).service_info([])
    assert len(info.name.removesuffix(f".{SERVICE_TYPE}").encode()) <= 63
    assert info.server == "plantguard-line-7-sued.local."


def test_announced_where_the_endpoint_is_reachable() -> None:
    local = where("127.0.0.1")
    assert (local.interfaces, local.addresses, local.ip_version) == (
        ["127.0.0.1"],
        ["127.0.0.1"],
        IPVersion.V4Only,
    )
    v6 = where("::1")
    assert (v6.interfaces, v6.ip_version) == (["::1"], IPVersion.V6Only)
    everywhere = where("0.0.0.0")
    assert everywhere.interfaces is InterfaceChoice.All
    assert all(not ipaddress.ip_address(a).is_loopback for a in everywhere.addresses)
    assert where("localhost").addresses  # a host name: what it resolves to


# --- the announcer's life cycle, against a stand-in for zeroconf ------------------------


class FakeZeroconf:
    """Records what the announcer asks of the mDNS stack; opens no socket."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[str] = []
        self.fail = False

    async def async_register_service(self, info: AsyncServiceInfo, **kwargs: Any) -> None:
        if self.fail:
            raise OSError("no multicast here")
        self.calls.append(f"register {info.name} {kwargs}")

    async def async_unregister_service(self, info: AsyncServiceInfo) -> None:
        self.calls.append(f"unregister {info.name}")

    async def async_close(self) -> None:
        self.calls.append("close")


async def test_announcer_registers_then_says_goodbye() -> None:
    made: list[FakeZeroconf] = []

    def factory(**kwargs: Any) -> Any:
        made.append(FakeZeroconf(**kwargs))
        return made[-1]

    engine = FakeEngine(Site.model_validate(SITE))
    announcement = Announcement.of(OpcUaOptions(**OPEN), 4840, "urn:x", engine)
    announcer = Announcer(announcement, factory)
    await announcer.start("127.0.0.1")
    [zc] = made
    assert zc.kwargs == {"interfaces": ["127.0.0.1"], "ip_version": IPVersion.V4Only}
    assert zc.calls == [f"register {NAME} {{'allow_name_change': True}}"]
    await announcer.stop()
    assert zc.calls[1:] == [f"unregister {NAME}", "close"]
    await announcer.stop()  # idempotent
    assert len(zc.calls) == 3


async def test_announcer_failure_leaves_the_gateway_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made: list[FakeZeroconf] = []

    def factory(**kwargs: Any) -> Any:
        made.append(FakeZeroconf(**kwargs))
        made[-1].fail = True
        return made[-1]

    engine = FakeEngine(Site.model_validate(SITE))
    announcer = Announcer(Announcement.of(OpcUaOptions(**OPEN), 4840, "urn:x", engine), factory)
    await announcer.start("127.0.0.1")
    assert "Could not announce" in caplog.text
    assert made[0].calls == ["close"]
    assert announcer.info is None


async def test_not_announced_unless_the_site_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("announce is off by default")

    monkeypatch.setattr("plantguard_opcua.announce.AsyncZeroconf", refuse)
    service = OpcUaService(OpcUaOptions(port=0, **OPEN))
    assert OpcUaOptions().announce is False
    await service.start(FakeEngine(Site.model_validate(SITE)))
    try:
        assert service.announcer is None
    finally:
        await service.stop()


# --- over the wire, on the loopback interface ------------------------------------------


@pytest.mark.integration
async def test_gateway_announces_its_endpoint_on_loopback(
    mdns_port: int, loopback_mdns: list[tuple[str, int]]
) -> None:
    service = OpcUaService(OpcUaOptions(host="127.0.0.1", port=0, announce=True, **OPEN))
    await service.start(FakeEngine(Site.model_validate(SITE)))
    try:
        port = int(service.endpoint.rsplit(":", 1)[1].split("/")[0])
        info = await _ask(mdns_port)
        assert info is not None, "the gateway did not answer for its service"
        assert info.port == port
        assert info.server == "plantguard-demo.local."
        assert info.parsed_addresses() == ["127.0.0.1"]
        assert info.decoded_properties == {
            "path": "/plantguard",
            "caps": "DA,AC",
            "site": "demo",
            "uri": "urn:plantguard:demo:opcua",
            "sec": "none,sign_and_encrypt",
        }
        assert (
            service.endpoint == f"opc.tcp://127.0.0.1:{info.port}{info.decoded_properties['path']}"
        )
    finally:
        await service.stop()
    assert service.announcer is None
    # Withdrawn with the server: nothing answers any more.
    assert await _ask(mdns_port, timeout=600) is None
    assert ("127.0.0.1", mdns_port) in loopback_mdns  # the responder's listener, on loopback
