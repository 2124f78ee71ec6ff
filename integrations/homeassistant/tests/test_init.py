"""Setting up against the real gateway: devices, entities, values, unload."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er

from custom_components.plantguard.const import DOMAIN

from .conftest import APPLICATION_URI


async def test_devices_and_entities(hass: HomeAssistant, loaded_entry) -> None:
    assert loaded_entry.state is ConfigEntryState.LOADED
    devices = dr.async_get(hass)
    pump = devices.async_get_device(
        identifiers={(DOMAIN, f"{APPLICATION_URI}-demo/utilities/pump1")}
    )
    assert pump is not None
    assert pump.name == "Transfer pump 1"
    assert pump.manufacturer == "Demo Pumps Co."
    assert pump.model == "CP-200"
    assert pump.serial_number == "CP200-2023-00117"
    assert pump.sw_version == "4.3.0"
    assert pump.hw_version == "2.1"
    hub = devices.async_get_device(identifiers={(DOMAIN, APPLICATION_URI)})
    assert hub is not None
    assert pump.via_device_id == hub.id
    entities = er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    by_id = {e.entity_id: e for e in entities}
    print(sorted(by_id))
    level = hass.states.get("sensor.buffer_tank_1_level")
    assert level is not None
    assert level.attributes["unit_of_measurement"] == "%"
    assert 40 < float(level.state) < 80
