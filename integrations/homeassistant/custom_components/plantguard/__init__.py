"""PlantGuard: a plant's safety monitoring gateway in Home Assistant.

The integration is an OPC UA client of a PlantGuard gateway.  It mirrors the
gateway's field devices as Home Assistant devices, its points as sensors, its
alarms as entities carrying their ISA-18.2 state, alarm transitions as events,
and maintenance due as a to-do list; actions acknowledge and shelve alarms and
record maintenance through the gateway's own OPC UA methods, so the gateway's
journal sees every action with the account used.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .coordinator import PlantGuardCoordinator, PlantGuardMaintenanceCoordinator
from .services import async_setup_services

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.TODO,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(slots=True)
class PlantGuardRuntimeData:
    """What a loaded entry holds: the live coordinator and the maintenance one."""

    coordinator: PlantGuardCoordinator
    maintenance: PlantGuardMaintenanceCoordinator


type PlantGuardConfigEntry = ConfigEntry[PlantGuardRuntimeData]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whether or not an entry is loaded (so they validate)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: PlantGuardConfigEntry) -> bool:
    """Connect to the gateway, subscribe, and set up the platforms."""
    coordinator = PlantGuardCoordinator(hass, entry)
    await coordinator.async_config_entry_first_refresh()
    maintenance = PlantGuardMaintenanceCoordinator(hass, entry, coordinator)
    await maintenance.async_refresh()
    entry.runtime_data = PlantGuardRuntimeData(coordinator, maintenance)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: PlantGuardConfigEntry) -> bool:
    """Unload the platforms; the coordinators close the OPC UA session on unload."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_shutdown()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: PlantGuardConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow removing a device only when the gateway no longer serves it."""
    coordinator = entry.runtime_data.coordinator
    current = {
        identifier
        for d in coordinator.data.model.devices
        for identifier in coordinator.device_identifiers(d.key)
    }
    current.add((DOMAIN, coordinator.data.model.application_uri))
    return not any(identifier in current for identifier in device.identifiers)
