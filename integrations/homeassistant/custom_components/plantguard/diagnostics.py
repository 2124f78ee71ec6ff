"""Diagnostics: what the integration sees of the gateway, without the credentials."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from . import PlantGuardConfigEntry

TO_REDACT = {CONF_PASSWORD, CONF_USERNAME, "serial_number", "event_id"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: PlantGuardConfigEntry
) -> dict[str, Any]:
    coordinator = entry.runtime_data.coordinator
    maintenance = entry.runtime_data.maintenance
    data = coordinator.data
    return {
        "entry": async_redact_data(dict(entry.data), TO_REDACT),
        "connected": coordinator.client is not None and coordinator.client.connected,
        "last_update_success": coordinator.last_update_success,
        "gateway": async_redact_data(asdict(data.model), TO_REDACT),
        "points": {key: asdict(value) for key, value in sorted(data.points.items())},
        "alarms": {
            key: async_redact_data(asdict(status), TO_REDACT) | {"state": status.state.value}
            for key, status in sorted(data.alarms.items())
        },
        "maintenance": [asdict(plan) for plan in maintenance.data or []],
    }
