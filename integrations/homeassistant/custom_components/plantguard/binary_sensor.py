"""Binary sensors: Boolean points, and whether the gateway is reachable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import PlantGuardConfigEntry
from .coordinator import PlantGuardCoordinator
from .entity import PlantGuardEntity
from .models import PointInfo

PARALLEL_UPDATES = 0  # pushed by the coordinator

#: Point id → device class, for the Boolean points whose meaning the id makes plain.
POINT_DEVICE_CLASSES: dict[str, BinarySensorDeviceClass] = {
    "running": BinarySensorDeviceClass.RUNNING,
    "run": BinarySensorDeviceClass.RUNNING,
    "fault": BinarySensorDeviceClass.PROBLEM,
    "trip": BinarySensorDeviceClass.PROBLEM,
    "tripped": BinarySensorDeviceClass.PROBLEM,
    "door": BinarySensorDeviceClass.DOOR,
    "open": BinarySensorDeviceClass.OPENING,
}


@dataclass(frozen=True, kw_only=True)
class PlantGuardBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor and how to read it from the coordinator."""

    is_on_fn: Callable[[PlantGuardCoordinator], bool | None]
    available_fn: Callable[[PlantGuardCoordinator], bool | None] = lambda _: None
    """None: available when the gateway is; else the availability itself."""


CONNECTIVITY = PlantGuardBinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
    is_on_fn=lambda coordinator: coordinator.last_update_success,
    # Stays available while the gateway is away: that is exactly what it reports.
    available_fn=lambda _: True,
)


def _point(point: PointInfo) -> PlantGuardBinarySensorEntityDescription:
    key = point.key

    def is_on(coordinator: PlantGuardCoordinator) -> bool | None:
        sample = coordinator.data.points.get(key)
        return None if sample is None or sample.value is None else bool(sample.value)

    def available(coordinator: PlantGuardCoordinator) -> bool | None:
        sample = coordinator.data.points.get(key)
        return False if sample is None or sample.bad else None

    return PlantGuardBinarySensorEntityDescription(
        key=key,
        name=point.name,
        device_class=POINT_DEVICE_CLASSES.get(point.point_id),
        is_on_fn=is_on,
        available_fn=available,
    )


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PlantGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add binary sensors now, and for every Boolean point the gateway adds later."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities([PlantGuardBinarySensor(coordinator, CONNECTIVITY)])
    known: set[str] = set()

    @callback
    def add_new() -> None:
        entities = []
        for device in coordinator.data.model.devices:
            for point in device.points:
                if point.data_type == "bool" and point.key not in known:
                    known.add(point.key)
                    entities.append(PlantGuardBinarySensor(coordinator, _point(point), device))
        if entities:
            async_add_entities(entities)

    add_new()
    entry.async_on_unload(coordinator.async_add_listener(add_new))


class PlantGuardBinarySensor(PlantGuardEntity, BinarySensorEntity):
    """A binary sensor read from the coordinator through its description."""

    entity_description: PlantGuardBinarySensorEntityDescription

    @property
    def available(self) -> bool:
        override = self.entity_description.available_fn(self.coordinator)
        if override is not None:
            return override
        return super().available

    @property
    def is_on(self) -> bool | None:
        return self.entity_description.is_on_fn(self.coordinator)
