"""The config flow against a real gateway: every error, recovery, reauth, reconfigure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import patch

from asyncua import Server
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.plantguard.const import CONF_SECURITY_MODE, DOMAIN
from custom_components.plantguard.security import ensure_client_certificate

from .conftest import APPLICATION_URI, entry_for, setup_entry
from .gateway import Gateway, free_port


def _input(gateway: Gateway, **changes: str) -> dict[str, str]:
    return {
        CONF_URL: gateway.url,
        CONF_USERNAME: "operator",
        CONF_PASSWORD: "operator",
        CONF_SECURITY_MODE: "none",
    } | changes


@pytest.fixture
async def plain_opcua_server() -> AsyncIterator[str]:
    """An OPC UA server that is not a PlantGuard gateway."""
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}/other"
    server.set_endpoint(url)
    await server.start()
    yield url
    await server.stop()


async def test_user_flow_creates_entry(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "PlantGuard demo plant"
    assert result["result"].unique_id == APPLICATION_URI
    assert result["data"] == _input(shared_gateway)
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({CONF_URL: "http://127.0.0.1:4840"}, CONF_URL, "invalid_url"),
        ({CONF_PASSWORD: "wrong"}, "base", "invalid_auth"),
        ({CONF_USERNAME: "nobody"}, "base", "invalid_auth"),
        ({CONF_SECURITY_MODE: "sign"}, CONF_SECURITY_MODE, "security_mode_not_offered"),
        ({CONF_URL: "closed-port"}, "base", "cannot_connect"),
    ],
)
async def test_user_flow_errors_and_recovery(
    hass: HomeAssistant,
    shared_gateway: Gateway,
    tmp_path: Path,
    changes: dict[str, str],
    field: str,
    error: str,
) -> None:
    """Each error is shown on the form, and the same flow then succeeds."""
    hass.config.config_dir = str(tmp_path)  # the client certificate of the signed modes
    if changes.get(CONF_URL) == "closed-port":
        changes = {CONF_URL: f"opc.tcp://127.0.0.1:{free_port()}/plantguard"}
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_sign_and_encrypt(
    hass: HomeAssistant, shared_gateway: Gateway, tmp_path: Path
) -> None:
    """The demo offers SignAndEncrypt (trusting any client): a signed, encrypted session."""
    hass.config.config_dir = str(tmp_path)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway, **{CONF_SECURITY_MODE: "sign_and_encrypt"})
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert (tmp_path / ".storage" / "plantguard" / "client_cert.der").is_file()
    assert hass.states.get("sensor.buffer_tank_1_level").state != "unavailable"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_user_flow_not_a_plantguard_gateway(
    hass: HomeAssistant, shared_gateway: Gateway, plain_opcua_server: str
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _input(shared_gateway, **{CONF_URL: plain_opcua_server, CONF_USERNAME: ""}),
    )
    assert result["errors"] == {"base": "not_plantguard"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_user_flow_unexpected_error(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch(
        "custom_components.plantguard.api.GatewayClient.read_model",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _input(shared_gateway)
        )
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_user_flow_one_entry_per_gateway(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    entry = await setup_entry(hass, entry_for(shared_gateway))
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    # Another account and a different spelling of the address: still the same gateway.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _input(
            shared_gateway,
            **{
                CONF_USERNAME: "viewer",
                CONF_PASSWORD: "viewer",
                CONF_URL: shared_gateway.url + "/",
            },
        ),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reauth(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    """Wrong stored password: setup fails into a reauth flow, which fixes the entry."""
    entry = await setup_entry(hass, entry_for(shared_gateway, password="stale"))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    [flow] = hass.config_entries.flow.async_progress()
    assert flow["context"]["source"] == "reauth"
    assert flow["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_USERNAME: "operator", CONF_PASSWORD: "still wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_USERNAME: "operator", CONF_PASSWORD: "operator"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "operator"
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    entry = await setup_entry(hass, entry_for(shared_gateway))
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _input(shared_gateway, **{CONF_URL: "opc.tcp://127.0.0.1:1/x"})
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _input(shared_gateway, **{CONF_USERNAME: "engineer", CONF_PASSWORD: "engineer"}),
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_USERNAME] == "engineer"
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_to_another_gateway_is_refused(
    hass: HomeAssistant, shared_gateway: Gateway, tmp_path: Path
) -> None:
    other = Gateway(tmp_path)
    other.use_site(lambda site: site.update(id="other"))
    await hass.async_add_executor_job(other.start)
    try:
        entry = await setup_entry(hass, entry_for(shared_gateway))
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _input(other, **{CONF_USERNAME: "", CONF_PASSWORD: ""})
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "wrong_gateway"
        assert entry.data[CONF_URL] == shared_gateway.url
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(other.stop)


def test_client_certificate(tmp_path: Path) -> None:
    """The certificate of the signed modes is made once, then reused."""
    cert, key = ensure_client_certificate(tmp_path)
    parsed = x509.load_der_x509_certificate(cert)
    uris = parsed.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["urn:homeassistant:plantguard"]
    assert serialization.load_der_private_key(key, password=None).key_size == 2048
    assert ensure_client_certificate(tmp_path) == (cert, key)
