"""Config flow: connect to a gateway — entered or discovered — and later re-authenticate
or reconfigure.

The connection is tested before an entry is created or changed: the flow
connects with the given settings, checks the server is a PlantGuard gateway and
reads its application URI, which is the entry's unique id — so one gateway is
one entry, whatever URL (IP address, host name) reaches it.

A gateway with ``services.opcua.announce: true`` announces itself over mDNS as
the OPC UA service type ``_opcua-tcp._tcp`` (OPC UA Part 12), with its endpoint
path, application URI, site and security modes in the TXT record.  Discovery
offers it (confirm, then credentials); an announcement of a gateway already set
up updates the entry's address instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from .api import CannotConnect, InvalidAuth, NotAPlantGuardGateway, SecurityModeNotOffered
from .const import CONF_SECURITY_MODE, DOMAIN, LOGGER, SECURITY_MODES, SECURITY_NONE
from .coordinator import async_create_client
from .models import GatewayModel

DEFAULT_URL = "opc.tcp://127.0.0.1:4840/plantguard"

#: TXT keys of the gateway's announcement (see plantguard_opcua.announce).
TXT_PATH = "path"
TXT_URI = "uri"
TXT_SITE = "site"
TXT_SECURITY = "sec"

_SECURITY_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=list(SECURITY_MODES),
        translation_key=CONF_SECURITY_MODE,
        mode=SelectSelectorMode.DROPDOWN,
    )
)
_PASSWORD_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _connection_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_URL, default=defaults.get(CONF_URL, DEFAULT_URL)): str,
            vol.Optional(
                CONF_USERNAME, description={"suggested_value": defaults.get(CONF_USERNAME)}
            ): str,
            vol.Optional(CONF_PASSWORD): _PASSWORD_SELECTOR,
            vol.Required(
                CONF_SECURITY_MODE, default=defaults.get(CONF_SECURITY_MODE, SECURITY_NONE)
            ): _SECURITY_SELECTOR,
        }
    )


def _auth_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Optional(
                CONF_USERNAME, description={"suggested_value": defaults.get(CONF_USERNAME)}
            ): str,
            vol.Optional(CONF_PASSWORD): _PASSWORD_SELECTOR,
        }
    )


def _credentials_schema(security_mode: str) -> vol.Schema:
    return _auth_schema({}).extend(
        {vol.Required(CONF_SECURITY_MODE, default=security_mode): _SECURITY_SELECTOR}
    )


def _discovered_url(discovery_info: ZeroconfServiceInfo, path: str) -> str:
    """The endpoint a discovered gateway announces: its address, port and path."""
    address = discovery_info.ip_address
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"opc.tcp://{host}:{discovery_info.port}{path}"


def _offered_modes(announced: str) -> list[str]:
    """The security modes a gateway announces (``sec``), in the order the selector shows them."""
    offered = {mode.strip() for mode in announced.split(",")}
    return [mode for mode in SECURITY_MODES if mode in offered]


class PlantGuardConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a PlantGuard gateway."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}

    async def _async_try(self, data: dict[str, Any], errors: dict[str, str]) -> GatewayModel | None:
        """Connect with ``data``; fill ``errors`` (key ``base``) on failure."""
        if not data[CONF_URL].startswith("opc.tcp://"):
            errors[CONF_URL] = "invalid_url"
            return None
        client = await async_create_client(self.hass, data)
        try:
            await client.connect()
            return await client.read_model()
        except InvalidAuth:
            errors["base"] = "invalid_auth"
        except SecurityModeNotOffered:
            errors[CONF_SECURITY_MODE] = "security_mode_not_offered"
        except NotAPlantGuardGateway:
            errors["base"] = "not_plantguard"
        except CannotConnect:
            errors["base"] = "cannot_connect"
        except Exception:
            LOGGER.exception("Unexpected error connecting to %s", data[CONF_URL])
            errors["base"] = "unknown"
        finally:
            await client.disconnect()
        return None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the gateway's endpoint and credentials, and test them."""
        errors: dict[str, str] = {}
        if user_input is not None:
            model = await self._async_try(user_input, errors)
            if model is not None:
                await self.async_set_unique_id(model.application_uri)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(title=model.name, data=user_input)
        return self.async_show_form(
            step_id="user",
            data_schema=_connection_schema(user_input or {}),
            errors=errors,
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A gateway announced itself (``_opcua-tcp._tcp``, OPC UA Part 12)."""
        properties = discovery_info.properties
        uri = str(properties.get(TXT_URI) or "")
        if not uri.startswith("urn:plantguard:") or discovery_info.port is None:
            return self.async_abort(reason="not_plantguard")
        url = _discovered_url(discovery_info, str(properties.get(TXT_PATH) or "/"))
        await self.async_set_unique_id(uri)
        self._abort_if_unique_id_configured(updates={CONF_URL: url})
        name = str(properties.get(TXT_SITE) or uri)
        self._discovered = {
            CONF_URL: url,
            "name": name,
            "security": _offered_modes(str(properties.get(TXT_SECURITY) or SECURITY_NONE)),
        }
        self.context["title_placeholders"] = {"name": name}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the discovered gateway."""
        if user_input is not None:
            return await self.async_step_discovery_auth()
        self._set_confirm_only()
        return self.async_show_form(
            step_id="zeroconf_confirm", description_placeholders=self._placeholders()
        )

    async def async_step_discovery_auth(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the account (and security mode) to use with the discovered gateway."""
        errors: dict[str, str] = {}
        offered: list[str] = self._discovered["security"] or [SECURITY_NONE]
        if user_input is not None:
            data = {CONF_URL: self._discovered[CONF_URL], CONF_USERNAME: "", CONF_PASSWORD: ""}
            data |= user_input
            model = await self._async_try(data, errors)
            if model is not None:
                await self.async_set_unique_id(model.application_uri)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(title=model.name, data=data)
        return self.async_show_form(
            step_id="discovery_auth",
            data_schema=_credentials_schema((user_input or {}).get(CONF_SECURITY_MODE, offered[0])),
            errors=errors,
            description_placeholders=self._placeholders(),
        )

    def _placeholders(self) -> dict[str, str]:
        return {
            "name": self._discovered["name"],
            "url": self._discovered[CONF_URL],
            "security": ", ".join(self._discovered["security"]) or SECURITY_NONE,
        }

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The gateway refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials for the same gateway."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            data.setdefault(CONF_USERNAME, "")
            data.setdefault(CONF_PASSWORD, "")
            model = await self._async_try(data, errors)
            if model is not None:
                await self.async_set_unique_id(model.application_uri)
                self._abort_if_unique_id_mismatch(reason="wrong_gateway")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=_auth_schema(entry.data),
            errors=errors,
            description_placeholders={"url": entry.data[CONF_URL]},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the endpoint, security mode or credentials of a configured gateway."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_USERNAME: "", CONF_PASSWORD: "", **user_input}
            model = await self._async_try(data, errors)
            if model is not None:
                await self.async_set_unique_id(model.application_uri)
                self._abort_if_unique_id_mismatch(reason="wrong_gateway")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_connection_schema(user_input or entry.data),
            errors=errors,
        )
