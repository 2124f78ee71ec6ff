"""Config flow: connect to a gateway, and later re-authenticate or reconfigure.

The connection is tested before an entry is created or changed: the flow
connects with the given settings, checks the server is a PlantGuard gateway and
reads its application URI, which is the entry's unique id — so one gateway is
one entry, whatever URL (IP address, host name) reaches it.
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
import voluptuous as vol

from .api import CannotConnect, InvalidAuth, NotAPlantGuardGateway, SecurityModeNotOffered
from .const import CONF_SECURITY_MODE, DOMAIN, LOGGER, SECURITY_MODES, SECURITY_NONE
from .coordinator import async_create_client
from .models import GatewayModel

DEFAULT_URL = "opc.tcp://127.0.0.1:4840/plantguard"

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


class PlantGuardConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a PlantGuard gateway."""

    VERSION = 1
    MINOR_VERSION = 1

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
