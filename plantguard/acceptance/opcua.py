"""The acceptance run's OPC UA client: how an HMI sees the gateway.

Acceptance looks at the gateway from the outside, the way the plant's clients
will: it asks the endpoint what security it offers (GetEndpoints), opens a
session — as the ``--as`` user when one is given, else anonymously — reads the
server's clock and point values, writes points for loop checks (the engine's one
write path, behind the OPC UA Write service), and subscribes to the Server
object's events (i=2253) to see alarms arrive.

Security: on a loopback endpoint that offers ``None`` the session uses it (the
password never leaves the machine); otherwise SignAndEncrypt (Basic256Sha256)
with the acceptance client's own certificate, made on first use under
``<pki_dir>/acceptance/``.  A gateway with a trust list refuses it until that
certificate is copied to ``<pki_dir>/trusted/`` — the error says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "NAMESPACE_URI",
    "EndpointInfo",
    "GatewayClient",
    "OpcUaUnavailable",
    "is_loopback",
]

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:plantguard"
CLIENT_URI = "urn:plantguard:acceptance"
#: Event fields the loop checks look at (browse paths from BaseEventType).
EVENT_FIELDS = (
    "EventType",
    "SourceName",
    "Time",
    "Message",
    "Severity",
    "ConditionName",
    "ActiveState/Id",
    "LimitState/CurrentState",
    "SuppressedOrShelved",
    "ClientUserId",
)
_NONE_URI = "http://opcfoundation.org/UA/SecurityPolicy#None"


class OpcUaUnavailable(Exception):
    """The endpoint could not be reached, or refused the session (the message says why)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint the server describes (GetEndpoints)."""

    url: str
    policy: str  # the policy's short name: None, Basic256Sha256, Aes256_Sha256_RsaPss …
    mode: str  # None, Sign, SignAndEncrypt
    certificate: bytes | None
    tokens: tuple[str, ...]


def _describe(endpoint: ua.EndpointDescription) -> EndpointInfo:
    tokens = tuple(
        str(getattr(t.TokenType, "name", t.TokenType)) for t in endpoint.UserIdentityTokens or ()
    )
    return EndpointInfo(
        url=str(endpoint.EndpointUrl),
        policy=str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1],
        mode=str(getattr(endpoint.SecurityMode, "name", endpoint.SecurityMode)),
        certificate=bytes(endpoint.ServerCertificate) if endpoint.ServerCertificate else None,
        tokens=tokens,
    )


class _Events:
    """Collects the Server object's events as dicts of field path → value."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def event_notification(self, event: Any) -> None:
        fields = event.get_event_props_as_fields_dict()
        self.items.append({k: v.Value for k, v in fields.items()})

    def datachange_notification(self, *_: Any) -> None:  # pragma: no cover - not subscribed
        return None


def _event_filter() -> ua.EventFilter:
    evfilter = ua.EventFilter()
    for path in EVENT_FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = ua.NodeId(ua.Int32(ObjectIds.BaseEventType))
        op.BrowsePath = [ua.QualifiedName(p, ua.UInt16(0)) for p in path.split("/")]
        op.AttributeId = AttributeIds.Value
        evfilter.SelectClauses.append(op)
    return evfilter


@dataclass(slots=True)
class GatewayClient:
    """A session with the gateway's OPC UA server (open it with :meth:`open`)."""

    endpoint: str
    client: Client
    endpoints: list[EndpointInfo]
    security: str  # what the session uses: "None" or "Basic256Sha256 SignAndEncrypt"
    user: str  # "" for anonymous
    namespace: int
    events: _Events = field(default_factory=_Events)
    _subscription: Subscription | None = None

    @classmethod
    async def open(
        cls,
        endpoint: str,
        *,
        user: str = "",
        password: str = "",
        pki_dir: str | None = None,
        timeout: float = 10.0,
    ) -> GatewayClient:
        """Connect to ``endpoint``; raise :class:`OpcUaUnavailable` with the reason."""
        host = urlsplit(endpoint).hostname or ""
        try:
            probe = Client(endpoint, timeout=timeout)
            described = [_describe(e) for e in await probe.connect_and_get_server_endpoints()]
        except (OSError, TimeoutError, UaError) as exc:
            raise OpcUaUnavailable(f"{endpoint} does not answer: {_why(exc)}") from exc
        client = Client(endpoint, timeout=timeout)
        client.session_timeout = 600_000  # what PlantGuard grants; asking more logs a warning
        client.application_uri = CLIENT_URI
        client.name = "PlantGuard acceptance"
        offers_none = any(e.policy == "None" for e in described)
        if offers_none and (is_loopback(host) or not user):
            security = "None"
        elif server_cert := next(
            (
                e.certificate
                for e in described
                if e.policy == "Basic256Sha256" and e.mode == "SignAndEncrypt" and e.certificate
            ),
            None,
        ):
            cert, key = await _client_certificate(pki_dir)
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                str(cert),
                str(key),
                server_certificate=server_cert,
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
            security = "Basic256Sha256 SignAndEncrypt"
        else:
            offered = ", ".join(sorted({f"{e.policy} {e.mode}" for e in described}))
            raise OpcUaUnavailable(
                f"{endpoint} offers no security acceptance can use safely ({offered})"
            )
        if user:
            client.set_user(user)
            client.set_password(password)
        try:
            await client.connect()
        except (OSError, TimeoutError, UaError) as exc:
            hint = ""
            if "Untrusted" in _why(exc) or "SecurityChecks" in _why(exc):
                hint = (
                    f"; the gateway does not trust the acceptance client: copy "
                    f"{_client_paths(pki_dir)[0]} to its pki_dir's trusted/ folder"
                )
            raise OpcUaUnavailable(f"{endpoint} refused the session: {_why(exc)}{hint}") from exc
        try:
            namespace = await client.get_namespace_index(NAMESPACE_URI)
        except (UaError, ValueError) as exc:
            await _disconnect(client)
            raise OpcUaUnavailable(f"{endpoint} has no {NAMESPACE_URI} namespace") from exc
        return cls(endpoint, client, described, security, user, namespace)

    async def close(self) -> None:
        await _disconnect(self.client)

    # --- reading ------------------------------------------------------------------------

    def node_id(self, path: str) -> ua.NodeId:
        return ua.NodeId(ua.String(path), ua.Int16(self.namespace))

    async def server_time(self) -> dt.datetime:
        node = self.client.get_node(ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime)))
        value = await node.read_value()
        if not isinstance(value, dt.datetime):
            raise OpcUaUnavailable(f"server time is {value!r}")
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    async def exists(self, paths: Sequence[str]) -> list[bool]:
        """Whether each PlantGuard NodeId path (``demo/utilities/pump1``) exists."""
        params = ua.ReadParameters()
        for path in paths:
            rv = ua.ReadValueId()
            rv.NodeId = self.node_id(path)
            rv.AttributeId = AttributeIds.BrowseName
            params.NodesToRead.append(rv)
        results = await self.client.uaclient.read(params)
        return [bool(r.StatusCode is None or r.StatusCode.is_good()) for r in results]

    async def read(self, path: str) -> tuple[float, bool, float | None]:
        """A point variable's value, whether its StatusCode is Good, and its source time."""
        dv = await self.client.get_node(self.node_id(path)).read_data_value(
            raise_on_bad_status=False
        )
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        raw = dv.Value.Value if dv.Value is not None else None
        value = float(raw) if isinstance(raw, int | float) else float("nan")
        source = dv.SourceTimestamp.timestamp() if dv.SourceTimestamp is not None else None
        return value, good, source

    # --- writing ------------------------------------------------------------------------

    async def write(self, path: str, value: float) -> str:
        """Write a point variable (Double); the StatusCode's name (``Good`` when done)."""
        node = self.client.get_node(self.node_id(path))
        variant = ua.Variant(float(value), ua.VariantType.Double)
        try:
            await node.write_value(ua.DataValue(variant))
        except UaStatusCodeError as exc:
            return type(exc).__name__
        return "Good"

    # --- events -------------------------------------------------------------------------

    async def subscribe_events(self) -> None:
        """Start collecting the Server object's events into :attr:`events`."""
        if self._subscription is not None:
            return
        sub = await self.client.create_subscription(100, self.events)
        await sub.subscribe_events(
            self.client.nodes.server, ObjectIds.BaseEventType, evfilter=_event_filter()
        )
        self._subscription = sub

    @property
    def event_count(self) -> int:
        """Events collected so far (pass it as ``start`` to wait for later ones)."""
        return len(self.events.items)

    async def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], deadline: float, start: int = 0
    ) -> dict[str, Any] | None:
        """The first event collected from index ``start`` on that matches ``predicate``,
        waiting until ``deadline`` (``time.monotonic()``); None if none came."""
        seen = start
        while True:
            items = self.events.items
            for event in items[seen:]:
                if predicate(event):
                    return event
            seen = len(items)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)


async def _disconnect(client: Client) -> None:
    try:
        await client.disconnect()
    except Exception:  # the server may have gone; nothing to clean up then
        log.debug("OPC UA disconnect failed", exc_info=True)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UaStatusCodeError):
        text = f"{type(exc).__name__}: {text}"
    return text


def _client_paths(pki_dir: str | None) -> tuple[Path, Path]:
    base = Path(pki_dir).expanduser() / "acceptance" if pki_dir else Path("acceptance-pki")
    return base / "cert.der", base / "key.pem"


async def _client_certificate(pki_dir: str | None) -> tuple[Path, Path]:
    """The acceptance client's certificate and key, made once (self-signed, 2048-bit RSA)."""
    cert, key = _client_paths(pki_dir)
    await asyncio.to_thread(cert.parent.mkdir, parents=True, exist_ok=True)
    await setup_self_signed_certificate(
        key,
        cert,
        CLIENT_URI,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "PlantGuard acceptance", "organizationName": "PlantGuard"},
    )
    return cert, key
