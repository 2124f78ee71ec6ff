"""Discovery: a gateway announcing itself over mDNS as ``_opcua-tcp._tcp`` (OPC UA Part 12).

The announcement is handed to the flow as Home Assistant's zeroconf integration
would (no multicast here); the flow then connects to the real gateway.  The
gateway's side of the announcement is tested in the gateway's own suite
(tests/test_announce.py, on the loopback interface).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from homeassistant.config_entries import SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.loader import async_get_zeroconf

from custom_components.plantguard.config_flow import _discovered_url
from custom_components.plantguard.const import CONF_SECURITY_MODE, DOMAIN

from .conftest import APPLICATION_URI, entry_for
from .gateway import Gateway

SERVICE_TYPE = "_opcua-tcp._tcp.local."


def announcement(gateway: Gateway, **properties: Any) -> ZeroconfServiceInfo:
    """What the gateway announces with ``services.opcua.announce: true``."""
    return ZeroconfServiceInfo(
        ip_address=ip_address("127.0.0.1"),
        ip_addresses=[ip_address("127.0.0.1")],
        port=gateway.opcua_port,
        hostname="plantguard-demo.local.",
        type=SERVICE_TYPE,
        name=f"PlantGuard demo.{SERVICE_TYPE}",
        properties={
            "path": "/plantguard",
            "caps": "DA,AC,HD,HE",
            "site": "demo",
            "uri": APPLICATION_URI,
            "sec": "none,sign_and_encrypt",
        }
        | properties,
    )


async def _discover(hass: HomeAssistant, info: ZeroconfServiceInfo) -> dict[str, Any]:
    result: dict[str, Any] = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )
    return result


async def test_manifest_matches_only_plantguard_announcements(hass: HomeAssistant) -> None:
    """Other vendors' OPC UA servers announce the same type: the TXT uri tells them apart."""
    matchers = (await async_get_zeroconf(hass))[SERVICE_TYPE]
    assert {"domain": DOMAIN, "properties": {"uri": "urn:plantguard:*"}} in matchers


async def test_discovered_gateway_is_offered_then_set_up(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    result = await _discover(hass, announcement(shared_gateway))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {
        "name": "demo",
        "url": shared_gateway.url,
        "security": "none, sign_and_encrypt",
    }
    [flow] = hass.config_entries.flow.async_progress()
    assert flow["context"]["title_placeholders"] == {"name": "demo"}
    assert flow["context"]["unique_id"] == APPLICATION_URI

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "discovery_auth"
    schema = result["data_schema"].schema
    [mode] = [key for key in schema if key == CONF_SECURITY_MODE]
    assert mode.default() == "none"  # the first mode the gateway offers

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_USERNAME: "operator", CONF_PASSWORD: "wrong", CONF_SECURITY_MODE: "none"},
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_USERNAME: "operator", CONF_PASSWORD: "operator", CONF_SECURITY_MODE: "none"},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "PlantGuard demo plant"
    assert result["result"].unique_id == APPLICATION_URI
    assert result["data"] == {
        CONF_URL: shared_gateway.url,
        CONF_USERNAME: "operator",
        CONF_PASSWORD: "operator",
        CONF_SECURITY_MODE: "none",
    }
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_discovery_without_account_is_read_only(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    result = await _discover(hass, announcement(shared_gateway, sec="sign_and_encrypt,none"))
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_SECURITY_MODE: "none"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_USERNAME] == ""
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_discovery_updates_the_address_of_a_configured_gateway(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    """The gateway moved (new address or port): the entry follows the announcement."""
    entry = entry_for(shared_gateway)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_URL: "opc.tcp://127.0.0.1:1/plantguard"}
    )
    result = await _discover(hass, announcement(shared_gateway))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_URL] == shared_gateway.url
    assert entry.data[CONF_USERNAME] == "operator"
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_discovery_of_a_gateway_being_set_up_is_one_flow(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    first = await _discover(hass, announcement(shared_gateway))
    second = await _discover(hass, announcement(shared_gateway))
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"
    hass.config_entries.flow.async_abort(first["flow_id"])


async def test_other_opcua_servers_are_not_offered(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    info = announcement(shared_gateway, uri="urn:example:other:server")
    result = await _discover(hass, info)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_plantguard"
    info = announcement(shared_gateway)
    info.properties.pop("uri")
    result = await _discover(hass, info)
    assert result["reason"] == "not_plantguard"


def test_discovered_url_brackets_ipv6() -> None:
    address = ip_address("fd00::20")
    info = ZeroconfServiceInfo(
        ip_address=address,
        ip_addresses=[address],
        port=4840,
        hostname="plantguard-demo.local.",
        type=SERVICE_TYPE,
        name=f"PlantGuard demo.{SERVICE_TYPE}",
        properties={},
    )
    assert _discovered_url(info, "/pg") == "opc.tcp://[fd00::20]:4840/pg"
