"""Base entities: one Home Assistant device per field device, below the gateway's device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import PlantGuardCoordinator
from .models import DeviceInfo as PlantDevice


def gateway_device_info(coordinator: PlantGuardCoordinator) -> DeviceInfo:
    """The gateway itself: the hub every field device is connected through."""
    model = coordinator.data.model
    return DeviceInfo(
        identifiers={(DOMAIN, coordinator.uri)},
        name=model.name,
        manufacturer="PlantGuard",
        model="Monitoring gateway",
        sw_version=model.software_version or None,
    )


def field_device_info(coordinator: PlantGuardCoordinator, device: PlantDevice) -> DeviceInfo:
    """A field device with its basic information (the gateway's DI properties)."""
    return DeviceInfo(
        identifiers=coordinator.device_identifiers(device.key),
        name=device.name,
        manufacturer=device.manufacturer or None,
        model=device.model or None,
        serial_number=device.serial_number or None,
        hw_version=device.hardware_version or None,
        sw_version=device.firmware_version or None,
        suggested_area=device.area or None,
        via_device=(DOMAIN, coordinator.uri),
    )


class PlantGuardEntity(CoordinatorEntity[PlantGuardCoordinator]):
    """An entity of the gateway (``device`` None) or of one of its field devices."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: PlantGuardCoordinator,
        description: EntityDescription,
        device: PlantDevice | None = None,
    ) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.uri}-{description.key}"
        self._attr_device_info = (
            gateway_device_info(coordinator)
            if device is None
            else field_device_info(coordinator, device)
        )
