"""Setting up against the real gateway: devices, entities, values, unload."""

from __future__ import annotations

import json
import re

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util.yaml import load_yaml_dict

from custom_components.plantguard.const import DOMAIN

from .conftest import APPLICATION_URI
from .gateway import MAIN


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
    assert len(by_id) >= 26
    level = hass.states.get("sensor.buffer_tank_1_level")
    assert level is not None
    assert level.attributes["unit_of_measurement"] == "%"
    assert 40 < float(level.state) < 80


async def test_lovelace_dashboard_matches_the_demo(hass: HomeAssistant, loaded_entry) -> None:
    """Every entity the dashboard shows exists; its buttons acknowledge alarm entities."""
    dashboard = await hass.async_add_executor_job(
        load_yaml_dict, str(MAIN / "dashboards" / "lovelace" / "plantguard.yaml")
    )
    text = json.dumps(dashboard)
    referenced = set(re.findall(r"\b(?:sensor|binary_sensor|event|todo)\.[a-z0-9_]+", text))
    registry = er.async_get(hass)
    assert referenced
    assert {e for e in referenced if registry.async_get(e) is None} == set()
    actions = re.findall(r'"perform_action": "([^"]+)", "data": \{"entity_id": "([^"]+)"', text)
    assert actions
    for action, entity_id in actions:
        assert action == "plantguard.acknowledge"
        assert hass.states.get(entity_id).attributes["alarm_id"]
