"""A private Mosquitto for tests that need their own broker: TLS with generated
certificates and a password file, or one a test may stop and start again.

The shared broker at 127.0.0.1:1883 serves every other MQTT test; this one is
started by the test, listens on 127.0.0.1 on a free port, keeps its
configuration, certificates and password file under the test's ``tmp_path``,
and is stopped by the test (``with PrivateBroker(...) as broker``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plantguard.testing import free_tcp_port

__all__ = ["MOSQUITTO", "Certificates", "PrivateBroker", "make_certificates"]

MOSQUITTO = Path("/usr/sbin/mosquitto")
PASSWD = Path("/usr/bin/mosquitto_passwd")


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA, the broker's certificate (for 127.0.0.1) and a client's."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of these


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
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer if issuer is not None else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_certificates(directory: Path) -> Certificates:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cert = _certificate("PlantGuard test CA", ca_key, None, ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_key, client_key, other_key = _key(), _key(), _key()
    return Certificates(
        ca=_write_cert(ca_cert, directory / "ca.pem"),
        server_cert=_write_cert(
            _certificate("127.0.0.1", server_key, issuer, server=True), directory / "server.pem"
        ),
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=_write_cert(
            _certificate("plantguard-gateway", client_key, issuer), directory / "client.pem"
        ),
        client_key=_write_key(client_key, directory / "client.key"),
        other_ca=_write_cert(
            _certificate("Some other CA", other_key, None, ca=True), directory / "other-ca.pem"
        ),
    )


class PrivateBroker:
    """``mosquitto -c <tmp>/mosquitto.conf`` on 127.0.0.1:<free port>.

    With ``certificates`` the listener is TLS and requires a client certificate;
    with ``users`` (name → password) anonymous clients are refused.
    """

    def __init__(
        self,
        directory: Path,
        *,
        certificates: Certificates | None = None,
        users: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_tcp_port()
        self.certificates = certificates
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            "per_listener_settings false",
            # Started by root, Mosquitto would switch to its own user, which cannot read
            # the files under pytest's private temporary directory: stay who we are.
            *([f"user {getpass.getuser()}"] if os.geteuid() == 0 else []),
            "persistence false",
            f"listener {self.port} 127.0.0.1",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if certificates is not None:
            lines += [
                f"cafile {certificates.ca}",
                f"certfile {certificates.server_cert}",
                f"keyfile {certificates.server_key}",
                "require_certificate true",
                "tls_version tlsv1.2",
            ]
        if users:
            passwd = directory / "passwd"
            passwd.write_text("")
            for name, password in users.items():
                subprocess.run(
                    [str(PASSWD), "-b", str(passwd), name, password], check=True, timeout=30
                )
            lines += [f"password_file {passwd}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "mosquitto.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self.directory / "mosquitto.log").read_text(errors="replace")
                raise RuntimeError(f"mosquitto exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
