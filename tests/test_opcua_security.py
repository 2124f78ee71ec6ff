"""The OPC UA endpoint is secure by default: SignAndEncrypt only, a trust list of
client certificates, no anonymous sessions, users checked — through a real engine,
a real server and real asyncua clients with their own certificates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import (
    SecurityPolicyAes256Sha256RsaPss,
    SecurityPolicyBasic256Sha256,
)
from asyncua.ua.uaerrors import UaError
from asyncua_typed import string_id
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantguard.auth import DEMO_USERS, ensure_users
from plantguard.events import EventReader, default_bus
from plantguard.store import Store
from plantguard.testing import RunningSite, free_tcp_port, wait_for

CLIENT_URI = "urn:plantguard:test:client"


def _site(sim: int, opcua: int, pki: Path) -> str:
    return f"""
id: plant
scan_interval: 0.1
rules:
  failed_logins: {{threshold: 2, window: 60}}
services:
  sim: {{port: {sim}, scenario: none}}
  opcua: {{port: {opcua}, pki_dir: "{pki}"}}
areas:
  - id: yard
    devices:
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, address: {{register: 0}}}}
"""


@pytest.fixture
def reader() -> EventReader:
    return default_bus().reader()


async def _client_cert(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "client-key.pem", tmp_path / "client-cert.der"
    await setup_self_signed_certificate(
        key,
        cert,
        CLIENT_URI,
        "127.0.0.1",
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "test HMI"},
    )
    return key, cert


async def _secure_client(
    endpoint: str,
    key: Path,
    cert: Path,
    user: str,
    password: str,
    *,
    policy: type = SecurityPolicyBasic256Sha256,
) -> Client:
    client = Client(endpoint, timeout=5)
    client.application_uri = CLIENT_URI
    await client.set_security(
        policy,
        certificate=str(cert),
        private_key=str(key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user(user)
    client.set_password(password)
    return client


async def test_secure_defaults(
    running_site: RunningSite, tmp_path: Path, reader: EventReader
) -> None:
    db, pki = str(tmp_path / "s.db"), tmp_path / "pki"
    store = Store(db)
    ensure_users(store.users, DEMO_USERS)
    store.close()
    sim, opcua = free_tcp_port(), free_tcp_port()
    endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
    key, cert = await _client_cert(tmp_path)
    async with running_site(_site(sim, opcua, pki), db=db) as engine:
        # Only encrypted endpoints are offered, with user name tokens only.
        endpoints = await Client(endpoint).connect_and_get_server_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}
        assert {e.SecurityPolicyUri.rsplit("#", 1)[1] for e in endpoints} == {
            "Basic256Sha256",
            "Aes256_Sha256_RsaPss",
        }
        tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
        assert tokens == {ua.UserTokenType.UserName}

        # An unencrypted, anonymous client gets nowhere.
        with pytest.raises((UaError, OSError, TimeoutError)):
            async with Client(endpoint, timeout=5):
                pass

        # A client whose certificate is not trusted is refused; its certificate is kept.
        client = await _secure_client(endpoint, key, cert, "operator", "operator")
        with pytest.raises((UaError, OSError, TimeoutError)):
            async with client:
                pass
        rejected = list((pki / "rejected").glob("*.der"))
        assert len(rejected) == 1
        events = [e for e in reader.drain() if e.kind == "certificate_rejected"]
        assert [(e.source, e.detail["reason"]) for e in events] == [
            (CLIENT_URI, "BadCertificateUntrusted")
        ]

        # Trusting it (moving the file) lets it in, without a restart; both policies work.
        shutil.move(rejected[0], pki / "trusted" / rejected[0].name)
        for policy in (SecurityPolicyBasic256Sha256, SecurityPolicyAes256Sha256RsaPss):
            client = await _secure_client(
                endpoint, key, cert, "operator", "operator", policy=policy
            )
            async with client:
                ns = await client.get_namespace_index("urn:plantguard")
                node = client.get_node(string_id("plant/yard/tank1/Points/level", ns))
                assert (
                    await node.read_data_value(raise_on_bad_status=False)
                ).StatusCode is not None

        # Wrong passwords are refused and reported; a burst raises the site's security alarm.
        for _ in range(2):
            client = await _secure_client(endpoint, key, cert, "operator", "guess")
            with pytest.raises((UaError, OSError, TimeoutError)):
                async with client:
                    pass
        failed = [(e.kind, e.user) for e in reader.drain() if e.kind == "failed_login"]
        assert failed == [("failed_login", "operator")] * 2
        await wait_for(lambda: engine.alarms.status["security.failed_logins"].state.active)
        client = await _secure_client(endpoint, key, cert, "operator", "operator")
        async with client:  # the site-wide alarm is a condition in the site's Alarms folder
            ns = await client.get_namespace_index("urn:plantguard")
            path = [f"{ns}:PlantGuard", f"{ns}:plant", f"{ns}:Alarms"]
            folder = await client.nodes.objects.get_child(path)
            names = [(await c.read_browse_name()).Name for c in await folder.get_children()]
            assert "security.failed_logins" in names, names

    server_cert = (pki / "own" / "cert.der").read_bytes()
    async with running_site(_site(sim, free_tcp_port(), pki), db=db):
        pass
    assert (pki / "own" / "cert.der").read_bytes() == server_cert  # kept across restarts
