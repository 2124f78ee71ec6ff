"""Transport security, the server certificate, the client trust list and user tokens.

Secure by default: unless the site says otherwise the endpoint offers only
SignAndEncrypt (Basic256Sha256 and Aes256_Sha256_RsaPss), refuses anonymous
sessions, and accepts a client only if its certificate is in the trust list.
The demo opts out (``security: [none, sign_and_encrypt]``, ``anonymous: true``,
``trust_all_clients: true``) so any client can look around at once.

Files, under ``pki_dir`` (created on first start; never commit them)::

    own/cert.der, own/key.pem    the server's self-signed application certificate
    trusted/                     client certificates to accept (DER or PEM)
    rejected/                    certificates of clients refused, by thumbprint:
                                 move one to trusted/ to accept that client

A rejected certificate and a refused login are published as security events
(``certificate_rejected``, ``failed_login``) for the security rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes, get_name_and_doc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantguard.events import SecurityEvent, publish

from .options import OpcUaOptions

__all__ = ["TrustList", "configure_security", "security_policies"]

log = logging.getLogger(__name__)

_POLICIES: dict[str, list[ua.SecurityPolicyType]] = {
    "none": [ua.SecurityPolicyType.NoSecurity],
    "sign": [
        ua.SecurityPolicyType.Basic256Sha256_Sign,
        ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ],
    "sign_and_encrypt": [
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
    ],
}


def security_policies(options: OpcUaOptions) -> list[ua.SecurityPolicyType]:
    """The ``ua.SecurityPolicyType`` values the endpoint offers."""
    return [policy for mode in options.security for policy in _POLICIES[mode]]


def thumbprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


class TrustList:
    """Client application certificates accepted by exact match (the OPC UA trust list).

    The directory is read at each connection attempt, so trusting a client is
    moving its file from ``rejected/`` to ``trusted/`` — no restart.
    """

    def __init__(self, pki: Path, *, trust_all: bool) -> None:
        self.trusted = pki / "trusted"
        self.rejected = pki / "rejected"
        self.trust_all = trust_all
        # Time range and application URI; the trust decision is ours, below.
        self._basic = CertificateValidator(
            CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        )

    def _trusted_prints(self) -> set[str]:
        prints = set()
        for path in self.trusted.glob("*"):
            try:
                data = path.read_bytes()
                cert = (
                    x509.load_pem_x509_certificate(data)
                    if data.lstrip().startswith(b"-----")
                    else x509.load_der_x509_certificate(data)
                )
            except (OSError, ValueError):
                log.warning("trust list: %s is not a certificate; ignored", path)
                continue
            prints.add(thumbprint(cert))
        return prints

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        try:
            await self._basic(cert, app)
            if not self.trust_all and thumbprint(cert) not in self._trusted_prints():
                raise ServiceError(StatusCodes.BadCertificateUntrusted)
        except ServiceError as exc:
            self._reject(cert, app, exc)
            raise

    def _reject(
        self, cert: x509.Certificate, app: ua.ApplicationDescription, exc: ServiceError
    ) -> None:
        reason = get_name_and_doc(exc.code)[0]
        self.rejected.mkdir(parents=True, exist_ok=True)
        path = self.rejected / f"{thumbprint(cert)}.der"
        path.write_bytes(cert.public_bytes(Encoding.DER))
        log.warning(
            "OPC UA client %s refused (%s); its certificate is in %s",
            app.ApplicationUri,
            reason,
            path,
        )
        publish(
            SecurityEvent(
                "certificate_rejected",
                source=str(app.ApplicationUri or ""),
                detail={
                    "reason": reason,
                    "subject": cert.subject.rfc4514_string(),
                    "file": str(path),
                },
            )
        )


def _prepare_pki(pki_dir: str) -> tuple[Path, Path, Path]:
    pki = Path(pki_dir).expanduser()
    (pki / "own").mkdir(parents=True, exist_ok=True)
    (pki / "trusted").mkdir(exist_ok=True)
    return pki, pki / "own" / "key.pem", pki / "own" / "cert.der"


async def configure_security(
    server: Server, options: OpcUaOptions, application_uri: str, *, user_names: bool = False
) -> None:
    """Apply policies, certificate, trust list and identity tokens before the server starts.

    ``user_names`` adds the user name token (when the gateway has a user directory).
    """
    policies = security_policies(options)
    server.set_security_policy(policies)
    if any(p is not ua.SecurityPolicyType.NoSecurity for p in policies):
        pki, key, cert = await asyncio.to_thread(_prepare_pki, options.pki_dir)
        await setup_self_signed_certificate(
            key,
            cert,
            application_uri,
            socket.gethostname(),  # clients compare it with the host name they connect to
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"PlantGuard {application_uri}", "organizationName": "PlantGuard"},
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_certificate_validator(TrustList(pki, trust_all=options.trust_all_clients))
        loaded = await uacrypto.load_certificate(str(cert))
        log.info("OPC UA server certificate %s (SHA-256 %s)", cert, thumbprint(loaded))
    tokens: list[type] = [ua.AnonymousIdentityToken] if options.anonymous else []
    if user_names:
        tokens.append(ua.UserNameIdentityToken)
    if not tokens:
        raise ValueError("the OPC UA endpoint accepts no identity: set anonymous or add users")
    server.set_identity_tokens(tokens)
