"""Actions on alarms and maintenance — each one through the gateway's own OPC UA methods.

Alarms: acknowledge, confirm, add a comment, shelve and unshelve, remove from
service and place in service (Part 9 Acknowledge, Confirm, AddComment,
TimedShelve/OneShotShelve/Unshelve, RemoveFromService/PlaceInService); devices:
record maintenance (the device's RecordMaintenance); the site: report a hidden
danger (隐患, the site's ReportHazard, which the gateway offers with its risk
plugin).  The gateway checks the role of the account the integration logs in
with, journals the action and publishes it to every other client.  The gateway
journals that account; the Home Assistant user who acted is named in the comment
(``[Home Assistant: Alice] …``, for a hidden danger in its description), so the
journal answers "who" for a shared account too.

Gateway refusals are mapped to Home Assistant errors in one place,
:func:`_raise_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    Context,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
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
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DESCRIPTION,
    ATTR_DEVICE,
    ATTR_DEVICE_ID,
    ATTR_DURATION,
    ATTR_PLAN,
    ATTR_POINT,
    ATTR_RESULT,
    ATTR_SUMMARY,
    ATTR_TITLE,
    DOMAIN,
    HA_USER_PREFIX,
    SERVICE_ACKNOWLEDGE,
    SERVICE_ADD_COMMENT,
    SERVICE_CONFIRM,
    SERVICE_PLACE_IN_SERVICE,
    SERVICE_RECORD_MAINTENANCE,
    SERVICE_REMOVE_FROM_SERVICE,
    SERVICE_REPORT_HAZARD,
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
    "BadConditionBranchAlreadyConfirmed": (ServiceValidationError, "already_confirmed"),
    "BadInvalidState": (ServiceValidationError, "invalid_state"),
    "BadConditionAlreadyShelved": (ServiceValidationError, "already_shelved"),
    "BadConditionNotShelved": (ServiceValidationError, "not_shelved"),
    "BadShelvingTimeOutOfRange": (ServiceValidationError, "shelving_time_out_of_range"),
    "BadConditionAlreadyDisabled": (ServiceValidationError, "already_out_of_service"),
    "BadConditionAlreadyEnabled": (ServiceValidationError, "not_out_of_service"),
    "BadConditionDisabled": (ServiceValidationError, "alarm_disabled"),
}

#: ReportHazard's refusals, before :data:`_REFUSALS`: the gateway checks the device
#: and point ids and the title; a gateway without the risk plugin has no method.
_HAZARD_REFUSALS: dict[str, tuple[type[HomeAssistantError], str]] = {
    "BadInvalidArgument": (ServiceValidationError, "hazard_invalid"),
    # No ReportHazard node (asyncua answers BadNodeIdInvalid for a method it lacks).
    "BadMethodInvalid": (HomeAssistantError, "hazards_not_offered"),
    "BadNodeIdInvalid": (HomeAssistantError, "hazards_not_offered"),
}

RESULTS = ["completed", "partial", "not_done"]

ALARM_SCHEMA = vol.Schema({vol.Required(ATTR_ENTITY_ID): cv.entity_ids})
COMMENT_SCHEMA = ALARM_SCHEMA.extend({vol.Optional(ATTR_COMMENT, default=""): cv.string})
ADD_COMMENT_SCHEMA = ALARM_SCHEMA.extend(
    {vol.Required(ATTR_COMMENT): vol.All(cv.string, vol.Length(min=1))}
)
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
REPORT_HAZARD_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_TITLE): vol.All(cv.string, vol.Strip, vol.Length(min=1)),
        vol.Optional(ATTR_DESCRIPTION, default=""): cv.string,
        vol.Optional(ATTR_DEVICE): cv.string,
        vol.Optional(ATTR_POINT): cv.entity_id,
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    }
)


def _raise_for(
    err: PlantGuardError,
    account: str | None,
    refusals: Mapping[str, tuple[type[HomeAssistantError], str]] | None = None,
) -> NoReturn:
    """Turn a client error into the Home Assistant error the user sees."""
    if isinstance(err, ActionRefused):
        found = (refusals or {}).get(err.status) or _REFUSALS.get(err.status)
        cls, key = found or (HomeAssistantError, "action_refused")
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


@dataclass(frozen=True, slots=True)
class AlarmCall:
    """One alarm named in an action call, with what acting on it needs."""

    coordinator: PlantGuardCoordinator
    client: GatewayClient
    alarm: AlarmInfo
    data: Mapping[str, Any]
    user: str

    @property
    def event_id(self) -> bytes | None:
        """The condition's latest EventId as reported (None: read it at the gateway)."""
        status = self.coordinator.data.alarms.get(self.alarm.key)
        return status.event_id if status else None

    @property
    def comment(self) -> str:
        """The call's comment, after the name of the Home Assistant user who acted."""
        parts = (HA_USER_PREFIX.format(user=self.user), self.data.get(ATTR_COMMENT, ""))
        return " ".join(part for part in parts if part)


type AlarmAction = Callable[[AlarmCall], Coroutine[Any, Any, None]]


async def _acknowledge(call: AlarmCall) -> None:
    await call.client.acknowledge(call.alarm, call.event_id, call.comment)


async def _confirm(call: AlarmCall) -> None:
    await call.client.confirm(call.alarm, call.event_id, call.comment)


async def _add_comment(call: AlarmCall) -> None:
    await call.client.add_comment(call.alarm, call.event_id, call.comment)


async def _shelve(call: AlarmCall) -> None:
    duration: timedelta | None = call.data.get(ATTR_DURATION)
    await call.client.shelve(call.alarm, duration.total_seconds() if duration else None)


async def _unshelve(call: AlarmCall) -> None:
    await call.client.unshelve(call.alarm)


async def _remove_from_service(call: AlarmCall) -> None:
    await call.client.remove_from_service(call.alarm)
    await _comment_if_given(call)


async def _place_in_service(call: AlarmCall) -> None:
    await call.client.place_in_service(call.alarm)
    await _comment_if_given(call)


async def _comment_if_given(call: AlarmCall) -> None:
    """Journal the reason given with a service change (the Part 9 methods take none).

    The change made a new event, so its EventId is read afresh at the gateway.
    """
    if call.data.get(ATTR_COMMENT):
        await call.client.add_comment(call.alarm, None, call.comment)


#: Action name → what it does to each alarm, and its fields.
ALARM_ACTIONS: dict[str, tuple[AlarmAction, vol.Schema]] = {
    SERVICE_ACKNOWLEDGE: (_acknowledge, COMMENT_SCHEMA),
    SERVICE_CONFIRM: (_confirm, COMMENT_SCHEMA),
    SERVICE_ADD_COMMENT: (_add_comment, ADD_COMMENT_SCHEMA),
    SERVICE_SHELVE: (_shelve, SHELVE_SCHEMA),
    SERVICE_UNSHELVE: (_unshelve, ALARM_SCHEMA),
    SERVICE_REMOVE_FROM_SERVICE: (_remove_from_service, COMMENT_SCHEMA),
    SERVICE_PLACE_IN_SERVICE: (_place_in_service, COMMENT_SCHEMA),
}


def _alarm_handler(
    hass: HomeAssistant, act: AlarmAction
) -> Callable[[ServiceCall], Coroutine[Any, Any, None]]:
    """The service handler applying ``act`` to every alarm the call names, in turn."""

    async def handle(call: ServiceCall) -> None:
        targets = _alarms(hass, call.data[ATTR_ENTITY_ID])
        user = await async_user_name(hass, call.context)
        for coordinator, alarm in targets:
            client = _connected_client(coordinator)
            try:
                await act(AlarmCall(coordinator, client, alarm, call.data, user))
            except PlantGuardError as err:
                _raise_for(err, client.username)

    return handle


def _maintained_device(hass: HomeAssistant, device_id: str) -> tuple[PlantGuardCoordinator, str]:
    """The gateway (its coordinator) and device key of a Home Assistant device."""
    device = dr.async_get(hass).async_get(device_id)
    entries = (
        [hass.config_entries.async_get_entry(e) for e in device.config_entries] if device else []
    )
    for entry in entries:
        if device is None or entry is None or entry.domain != DOMAIN:
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry": entry.title},
            )
        coordinator: PlantGuardCoordinator = entry.runtime_data.coordinator
        for d in coordinator.data.model.devices:
            if coordinator.device_identifiers(d.key) & device.identifiers:
                return coordinator, d.key
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_device",
        translation_placeholders={"device": device_id},
    )


def _entry_coordinator(hass: HomeAssistant, entry_id: str) -> PlantGuardCoordinator:
    """The coordinator of a loaded PlantGuard config entry."""
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_entry",
            translation_placeholders={"entry": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry": entry.title},
        )
    coordinator: PlantGuardCoordinator = entry.runtime_data.coordinator
    return coordinator


def _point_entity(hass: HomeAssistant, entity_id: str) -> tuple[PlantGuardCoordinator, str]:
    """The gateway and the gateway's point id (``device.point``) of a point's sensor."""
    entity = er.async_get(hass).async_get(entity_id)
    if entity is not None and entity.platform == DOMAIN and entity.config_entry_id:
        coordinator = _entry_coordinator(hass, entity.config_entry_id)
        model = coordinator.data.model
        point = model.points.get(entity.unique_id.removeprefix(f"{coordinator.uri}-"))
        device = model.device(point.device_key) if point is not None else None
        if point is not None and device is not None:
            return coordinator, f"{device.device_id}.{point.point_id}"
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_point",
        translation_placeholders={"entity_id": entity_id},
    )


@dataclass(frozen=True, slots=True)
class HazardTarget:
    """Where a hidden danger is reported: the gateway, and the gateway's device and point."""

    coordinator: PlantGuardCoordinator
    device_id: str = ""
    point_id: str = ""


def _hazard_target(hass: HomeAssistant, data: Mapping[str, Any]) -> HazardTarget:
    """The gateway named by the call's device, point or config entry — the same one if
    several are given; the only loaded gateway if none is."""
    found: list[PlantGuardCoordinator] = []
    device_id = point_id = ""
    if ATTR_POINT in data:
        coordinator, point_id = _point_entity(hass, data[ATTR_POINT])
        found.append(coordinator)
    if ATTR_DEVICE in data:
        coordinator, device_key = _maintained_device(hass, data[ATTR_DEVICE])
        device = coordinator.data.model.device(device_key)
        device_id = device.device_id if device is not None else ""
        found.append(coordinator)
    if ATTR_CONFIG_ENTRY_ID in data:
        found.append(_entry_coordinator(hass, data[ATTR_CONFIG_ENTRY_ID]))
    if not found:
        loaded = hass.config_entries.async_loaded_entries(DOMAIN)
        if len(loaded) != 1:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="which_gateway")
        found.append(loaded[0].runtime_data.coordinator)
    if any(c is not found[0] for c in found):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="other_gateway")
    return HazardTarget(found[0], device_id, point_id)


async def async_report_hazard(
    hass: HomeAssistant, data: Mapping[str, Any], context: Context | None
) -> str:
    """Report a hidden danger at the gateway; return its id there."""
    target = _hazard_target(hass, data)
    client = _connected_client(target.coordinator)
    user = await async_user_name(hass, context)
    parts = (HA_USER_PREFIX.format(user=user), data.get(ATTR_DESCRIPTION, "").strip())
    try:
        return await client.report_hazard(
            target.coordinator.data.model.site_id,
            data[ATTR_TITLE],
            " ".join(part for part in parts if part),
            target.device_id,
            target.point_id,
        )
    except PlantGuardError as err:
        _raise_for(err, client.username, _HAZARD_REFUSALS)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    for name, (act, schema) in ALARM_ACTIONS.items():
        hass.services.async_register(DOMAIN, name, _alarm_handler(hass, act), schema=schema)

    async def record_maintenance(call: ServiceCall) -> None:
        coordinator, device_key = _maintained_device(hass, call.data[ATTR_DEVICE_ID])
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
        DOMAIN, SERVICE_RECORD_MAINTENANCE, record_maintenance, schema=RECORD_SCHEMA
    )

    async def report_hazard(call: ServiceCall) -> ServiceResponse:
        hazard_id = await async_report_hazard(hass, call.data, call.context)
        return {"hazard_id": hazard_id}

    hass.services.async_register(
        DOMAIN,
        SERVICE_REPORT_HAZARD,
        report_hazard,
        schema=REPORT_HAZARD_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
