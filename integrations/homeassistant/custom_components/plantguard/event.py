"""The event entity: every alarm transition the gateway reports, as it happens.

Automations (and the blueprints in ``blueprints/automation/plantguard``) trigger
on this entity: its event type names what happened (activated, acknowledged,
shelved …) and its attributes say which alarm, its priority and its entity.
"""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import PlantGuardConfigEntry
from .entity import PlantGuardEntity
from .models import AlarmInfo, AlarmStatus, Transition

PARALLEL_UPDATES = 0

ALARM_EVENTS = EventEntityDescription(
    key="alarm_events",
    translation_key="alarm_events",
    event_types=[t.value for t in Transition],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PlantGuardConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities([PlantGuardAlarmEvents(entry.runtime_data.coordinator, ALARM_EVENTS)])


class PlantGuardAlarmEvents(PlantGuardEntity, EventEntity):
    """Fires one event per alarm transition, on the gateway's device."""

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_transition_listener(self._async_transition))

    @callback
    def _async_transition(self, alarm: AlarmInfo, status: AlarmStatus, name: Transition) -> None:
        registry = er.async_get(self.hass)
        alarm_entity = registry.async_get_entity_id(
            "sensor", self.platform.platform_name, f"{self.coordinator.uri}-{alarm.key}"
        )
        self._trigger_event(
            name.value,
            {
                "alarm_id": alarm.alarm_id,
                "alarm_entity_id": alarm_entity,
                "state": status.state.value,
                "priority": status.priority.value,
                "severity": status.severity,
                "message": status.message,
                "limit": status.limit or None,
                "user": status.user,
                "comment": status.comment,
            },
        )
        self.async_write_ha_state()
