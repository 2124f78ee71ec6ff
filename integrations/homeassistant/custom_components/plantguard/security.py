"""The client certificate for signed and encrypted connections.

OPC UA's Sign and SignAndEncrypt modes need an application instance certificate
on the client side too.  One self-signed certificate is made for Home Assistant
on first use and kept in ``.storage/plantguard/``; the gateway's administrator
trusts it once.  Generating an RSA key and writing files is blocking work, so it
runs in the executor.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
import socket

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from homeassistant.core import HomeAssistant

from .api import CLIENT_APPLICATION_URI

CERT_FILE = "client_cert.der"
KEY_FILE = "client_key.der"


def ensure_client_certificate(directory: Path) -> tuple[bytes, bytes]:
    """Load the client certificate and key from ``directory/plantguard``, making them if absent.

    Returns ``(certificate DER, private key DER)``: asyncua reads key bytes as DER.
    """
    folder = directory / "plantguard"
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return cert_path.read_bytes(), key_path.read_bytes()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Home Assistant PlantGuard")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(CLIENT_APPLICATION_URI), x509.DNSName(host)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(key_der)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_der)
    return cert_der, key_der


async def async_client_certificate(hass: HomeAssistant, directory: Path) -> tuple[bytes, bytes]:
    """:func:`ensure_client_certificate` in the executor."""
    return await hass.async_add_executor_job(ensure_client_certificate, directory)
