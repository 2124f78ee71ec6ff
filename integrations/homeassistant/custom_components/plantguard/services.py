"""Actions: acknowledge and shelve alarms, record maintenance — through the gateway.

Each action calls the gateway's own OPC UA method (Acknowledge, TimedShelve …,
RecordMaintenance), so the gateway checks the role of the account the
integration logs in with, journals the action and publishes it to every other
client.  The gateway journals that account; the Home Assistant user who acted is
named in the comment (``[Home Assistant: Alice] …``), so the journal answers
"who" for a shared account too.

Gateway refusals are mapped to Home Assistant errors in one place,
:func:`_raise_for`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import Context, HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
import voluptuous as vol

from .api import ActionRefused, GatewayClient, PlantGuardError
from .const import (
    ATTR_COMMENT,
    ATTR_DEVICE_ID,
    ATTR_DURATION,
    ATTR_PLAN,
    ATTR_RESULT,
    ATTR_SUMMARY,
    DOMAIN,
    HA_USER_PREFIX,
    SERVICE_ACKNOWLEDGE,
    SERVICE_RECORD_MAINTENANCE,
    SERVICE_SHELVE,
    SERVICE_UNSHELVE,
)
from .models import AlarmInfo

if TYPE_CHECKING:
    from .coordinator import PlantGuardCoordinator

#: Gateway status → (error class, translation key).  Misuse by the caller is a
#: validation error; everything else is an error of the gateway or the link.
_REFUSALS: dict[str, tuple[type[HomeAssistantError], str]] = {
    "BadUserAccessDenied": (HomeAssistantError, "access_denied"),
    "BadConditionBranchAlreadyAcked": (ServiceValidationError, "already_acknowledged"),
    "BadConditionAlreadyShelved": (ServiceValidationError, "already_shelved"),
    "BadConditionNotShelved": (ServiceValidationError, "not_shelved"),
    "BadShelvingTimeOutOfRange": (ServiceValidationError, "shelving_time_out_of_range"),
    "BadConditionDisabled": (ServiceValidationError, "alarm_disabled"),
}

RESULTS = ["completed", "partial", "not_done"]

ALARM_SCHEMA = vol.Schema({vol.Required(ATTR_ENTITY_ID): cv.entity_ids})
ACKNOWLEDGE_SCHEMA = ALARM_SCHEMA.extend({vol.Optional(ATTR_COMMENT, default=""): cv.string})
SHELVE_SCHEMA = ALARM_SCHEMA.extend(
    {
        vol.Optional(ATTR_DURATION): vol.All(cv.time_period, vol.Range(min=timedelta(seconds=1))),
    }
)
RECORD_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_PLAN): cv.string,
        vol.Optional(ATTR_SUMMARY, default=""): cv.string,
        vol.Optional(ATTR_RESULT, default="completed"): vol.In(RESULTS),
    }
)


def _raise_for(err: PlantGuardError, account: str | None) -> NoReturn:
    """Turn a client error into the Home Assistant error the user sees."""
    if isinstance(err, ActionRefused):
        cls, key = _REFUSALS.get(err.status, (HomeAssistantError, "action_refused"))
        raise cls(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"status": err.status, "account": account or "anonymous"},
        ) from err
    raise HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="communication_error",
        translation_placeholders={"error": str(err)},
    ) from err


async def async_user_name(hass: HomeAssistant, context: Context | None) -> str:
    """The name of the Home Assistant user behind ``context`` ("automation" if none)."""
    if context is not None and context.user_id:
        user = await hass.auth.async_get_user(context.user_id)
        if user is not None and user.name:
            return user.name
    return "automation"


def _connected_client(coordinator: PlantGuardCoordinator) -> GatewayClient:
    client = coordinator.client
    if client is None or not client.connected:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="not_connected")
    return client


def _alarms(
    hass: HomeAssistant, entity_ids: list[str]
) -> list[tuple[PlantGuardCoordinator, AlarmInfo]]:
    """Resolve alarm entities to their gateway and condition; reject anything else."""
    registry = er.async_get(hass)
    out = []
    for entity_id in entity_ids:
        entity = registry.async_get(entity_id)
        entry = (
            hass.config_entries.async_get_entry(entity.config_entry_id)
            if entity is not None and entity.platform == DOMAIN and entity.config_entry_id
            else None
        )
        if entity is None or entry is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_an_alarm",
                translation_placeholders={"entity_id": entity_id},
            )
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry": entry.title},
            )
        coordinator: PlantGuardCoordinator = entry.runtime_data.coordinator
        key = entity.unique_id.removeprefix(f"{coordinator.uri}-")
        alarm = coordinator.data.model.all_alarms.get(key)
        if alarm is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_an_alarm",
                translation_placeholders={"entity_id": entity_id},
            )
        out.append((coordinator, alarm))
    return out


async def async_record_maintenance(
    coordinator: PlantGuardCoordinator,
    device_key: str,
    plan_id: str,
    summary: str,
    performed_by: str,
    result: str,
) -> None:
    """Record maintenance of one device at the gateway (the to-do list uses this too)."""
    device = coordinator.data.model.device(device_key)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"device": device_key},
        )
    client = _connected_client(coordinator)
    try:
        await client.record_maintenance(device, plan_id, summary, performed_by, result)
    except PlantGuardError as err:
        _raise_for(err, client.username)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""

    def alarm_action(
        act: Callable[
            [PlantGuardCoordinator, GatewayClient, AlarmInfo, ServiceCall, str], Awaitable[None]
        ],
    ) -> Callable[[ServiceCall], Awaitable[None]]:
        async def handle(call: ServiceCall) -> None:
            targets = _alarms(hass, call.data[ATTR_ENTITY_ID])
            user = await async_user_name(hass, call.context)
            for coordinator, alarm in targets:
                client = _connected_client(coordinator)
                try:
                    await act(coordinator, client, alarm, call, user)
                except PlantGuardError as err:
                    _raise_for(err, client.username)

        return handle

    async def acknowledge(
        coordinator: PlantGuardCoordinator,
        client: GatewayClient,
        alarm: AlarmInfo,
        call: ServiceCall,
        user: str,
    ) -> None:
        comment = " ".join(
            part for part in (HA_USER_PREFIX.format(user=user), call.data[ATTR_COMMENT]) if part
        )
        status = coordinator.data.alarms.get(alarm.key)
        await client.acknowledge(alarm, status.event_id if status else None, comment)

    async def shelve(
        coordinator: PlantGuardCoordinator,
        client: GatewayClient,
        alarm: AlarmInfo,
        call: ServiceCall,
        user: str,
    ) -> None:
        duration: timedelta | None = call.data.get(ATTR_DURATION)
        await client.shelve(alarm, duration.total_seconds() if duration else None)

    async def unshelve(
        coordinator: PlantGuardCoordinator,
        client: GatewayClient,
        alarm: AlarmInfo,
        call: ServiceCall,
        user: str,
    ) -> None:
        await client.unshelve(alarm)

    async def record_maintenance(call: ServiceCall) -> None:
        device = dr.async_get(hass).async_get(call.data[ATTR_DEVICE_ID])
        coordinator = None
        device_key = ""
        if device is not None:
            for entry_id in device.config_entries:
                entry = hass.config_entries.async_get_entry(entry_id)
                if entry is None or entry.domain != DOMAIN:
                    continue
                if entry.state is not ConfigEntryState.LOADED:
                    raise ServiceValidationError(
                        translation_domain=DOMAIN,
                        translation_key="entry_not_loaded",
                        translation_placeholders={"entry": entry.title},
                    )
                coordinator = entry.runtime_data.coordinator
                for d in coordinator.data.model.devices:
                    if coordinator.device_identifiers(d.key) & device.identifiers:
                        device_key = d.key
        if coordinator is None or not device_key:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_device",
                translation_placeholders={"device": call.data[ATTR_DEVICE_ID]},
            )
        user = await async_user_name(hass, call.context)
        await async_record_maintenance(
            coordinator,
            device_key,
            call.data[ATTR_PLAN],
            call.data[ATTR_SUMMARY],
            user,
            call.data[ATTR_RESULT],
        )
        await coordinator.config_entry.runtime_data.maintenance.async_request_refresh()

    hass.services.async_register(
        DOMAIN, SERVICE_ACKNOWLEDGE, alarm_action(acknowledge), schema=ACKNOWLEDGE_SCHEMA
    )
    hass.services.async_register(DOMAIN, SERVICE_SHELVE, alarm_action(shelve), schema=SHELVE_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_UNSHELVE, alarm_action(unshelve), schema=ALARM_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_RECORD_MAINTENANCE, record_maintenance, schema=RECORD_SCHEMA
    )
