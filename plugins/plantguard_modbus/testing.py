"""Test kit of the Modbus plugin: drivers from plain dicts, a pymodbus server from an
image, and throw-away TLS certificates.

Why in the package: the plugin's tests, its benchmark and an integrator's tests
of a Modbus device profile all need the same three things, and importing them
from the installed package needs no path tricks.  Certificates are generated at
run time (never committed) with ``cryptography``, which asyncua already needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pymodbus import FramerType, ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer, ModbusTlsServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantguard.plugin import Device

from .driver import ModbusDriver
from .plugin import ModbusDriverType
from .testserver import UnitImage

__all__ = [
    "Certificates",
    "make_certificates",
    "make_device",
    "make_driver",
    "pymodbus_server",
    "server_tls_context",
]


def make_device(points: Sequence[Mapping[str, Any]], device_id: str = "dev", **info: Any) -> Device:
    """A device whose points are given as site-file mappings (``id``, ``address`` …)."""
    return Device.model_validate(
        {"id": device_id, "driver": "modbus", "points": [dict(p) for p in points], "info": info}
    )


def make_driver(device: Device, **connection: Any) -> ModbusDriver:
    """The driver of ``device``, validated exactly as a site file would be."""
    driver_type = ModbusDriverType()
    conn = driver_type.connection_model.model_validate({**device.connection, **connection})
    addresses = {p.id: driver_type.address_model.model_validate(p.address) for p in device.points}
    driver_type.validate_device(conn, addresses)
    return driver_type.create(device, conn, addresses)


@contextlib.asynccontextmanager
async def pymodbus_server(
    image: UnitImage,
    *,
    unit: int = 1,
    size: int = 512,
    framer: FramerType = FramerType.SOCKET,
    ssl_context: ssl.SSLContext | None = None,
    identity: Mapping[str, str] | None = None,
) -> AsyncIterator[int]:
    """pymodbus' own server serving the first ``size`` addresses of ``image``; yields its port.

    ``identity`` (pymodbus field names: VendorName, ProductCode, MajorMinorRevision …)
    is set on pymodbus' process-wide control block and reset on exit.
    """
    bits = DataType.BITS
    simdata = (
        [SimData(0, values=[bool(v) for v in image.coils[:size]], datatype=bits)],
        [SimData(0, values=[bool(v) for v in image.discrete[:size]], datatype=bits)],
        [SimData(0, values=[int(v) for v in image.holding[:size]], datatype=DataType.REGISTERS)],
        [SimData(0, values=[int(v) for v in image.input[:size]], datatype=DataType.REGISTERS)],
    )
    device = SimDevice(id=unit, simdata=simdata)
    ident = (
        ModbusDeviceIdentification(info_name=dict(identity))  # type: ignore[no-untyped-call]
        if identity
        else None
    )
    server: ModbusTcpServer
    if ssl_context is not None:
        server = ModbusTlsServer(
            [device], address=("127.0.0.1", 0), sslctx=ssl_context, identity=ident
        )
    else:
        server = ModbusTcpServer([device], address=("127.0.0.1", 0), framer=framer, identity=ident)
    await server.serve_forever(background=True)
    try:
        sockets: Sequence[Any] = getattr(server.transport, "sockets", None) or []
        yield int(sockets[0].getsockname()[1])
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        if identity:
            blank = dict.fromkeys(identity, "")
            server.control.Identity.update(
                ModbusDeviceIdentification(info_name=blank)  # type: ignore[no-untyped-call]
            )


@dataclass(frozen=True, slots=True)
class Certificates:
    """PEM files of a test CA, a device (server) and the gateway (client)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path, *, host: str = "127.0.0.1", tag: str = "") -> Certificates:
    """A fresh CA, and device and gateway certificates it signed, written to ``directory``.

    The device certificate carries ``host`` (an IP address or a DNS name) so the
    gateway's name check passes; ``tag`` keeps several sets apart in one directory.
    """
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"PlantGuard test CA {tag}"))
        .issuer_name(_name(f"PlantGuard test CA {tag}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)

    def leaf(common_name: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]) -> Any:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("modbus device", ExtendedKeyUsageOID.SERVER_AUTH, [san])
    client_cert, client_key = leaf("plantguard gateway", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    directory.mkdir(parents=True, exist_ok=True)

    def pem(cert: x509.Certificate, name: str) -> Path:
        path = directory / f"{name}{tag}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    return Certificates(
        ca=pem(ca_cert, "ca"),
        server_cert=pem(server_cert, "device"),
        server_key=_write_key(server_key, directory / f"device{tag}.key"),
        client_cert=pem(client_cert, "gateway"),
        client_key=_write_key(client_key, directory / f"gateway{tag}.key"),
    )


def server_tls_context(certs: Certificates, *, require_client: bool = True) -> ssl.SSLContext:
    """A device-side context: its certificate, and (Modbus/TCP Security) client certificates
    required and verified against the same CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
    return context
