"""The gateway stops and starts again; its configuration changes while it is away."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest

from custom_components.plantguard import async_remove_config_entry_device
from custom_components.plantguard.const import DOMAIN

from .conftest import APPLICATION_URI, entry_for, setup_entry
from .gateway import Gateway
from .test_alarms import LEVEL, wait_for

CONNECTED = "binary_sensor.plantguard_demo_plant_gateway_connection"


async def test_unavailable_while_gateway_is_down(hass: HomeAssistant, gateway: Gateway) -> None:
    entry = await setup_entry(hass, entry_for(gateway))
    assert hass.states.get(CONNECTED).state == STATE_ON
    await wait_for(hass, LEVEL, lambda s: s.state != STATE_UNAVAILABLE)

    await hass.async_add_executor_job(gateway.stop)
    await wait_for(hass, LEVEL, lambda s: s.state == STATE_UNAVAILABLE)
    assert hass.states.get(CONNECTED).state == STATE_OFF
    assert hass.states.get("sensor.buffer_tank_1_alarm_level_limit").state == STATE_UNAVAILABLE
    assert entry.state is ConfigEntryState.LOADED
    # Actions and the maintenance list need the gateway: a clear error, not a hang.
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "acknowledge",
            {"entity_id": "sensor.buffer_tank_1_alarm_level_limit"},
            blocking=True,
        )
    assert err.value.translation_key == "not_connected"
    maintenance = entry.runtime_data.maintenance
    await maintenance.async_refresh()
    assert not maintenance.last_update_success

    await hass.async_add_executor_job(gateway.start)
    await wait_for(hass, LEVEL, lambda s: s.state != STATE_UNAVAILABLE, limit=30)
    assert hass.states.get(CONNECTED).state == STATE_ON
    assert hass.states.get("sensor.buffer_tank_1_alarm_level_limit").state == "normal"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_retries_while_gateway_is_down(hass: HomeAssistant, gateway: Gateway) -> None:
    await hass.async_add_executor_job(gateway.stop)
    entry = await setup_entry(hass, entry_for(gateway))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    await hass.config_entries.async_unload(entry.entry_id)


async def test_devices_follow_the_gateway_configuration(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    entry = await setup_entry(hass, entry_for(gateway))
    devices = dr.async_get(hass)
    entities = er.async_get(hass)

    def device(key: str) -> dr.DeviceEntry | None:
        return devices.async_get_device(identifiers={(DOMAIN, f"{APPLICATION_URI}-{key}")})

    assert device("demo/process/gas1") is not None
    assert entities.async_get("sensor.buffer_tank_1_bottom_pressure") is not None

    def change(site: dict) -> None:
        site["areas"] = [a for a in site["areas"] if a["id"] != "process"]  # gas1 removed
        utilities = site["areas"][0]
        tank = next(d for d in utilities["devices"] if d["id"] == "tank1")
        tank["points"] = [p for p in tank["points"] if p["id"] != "pressure"]
        pump2 = {**utilities["devices"][0], "id": "pump2", "name": "Transfer pump 2"}
        pump2["info"] = {**pump2["info"], "serial_number": "CP200-2025-00301"}
        utilities["devices"].append(pump2)

    await hass.async_add_executor_job(gateway.stop)
    await wait_for(hass, LEVEL, lambda s: s.state == STATE_UNAVAILABLE)
    gateway.use_site(change)
    await hass.async_add_executor_job(gateway.start)
    await wait_for(
        hass, "sensor.transfer_pump_2_motor_current", lambda s: s.state != STATE_UNAVAILABLE, 30
    )
    assert device("demo/process/gas1") is None
    added = device("demo/utilities/pump2")
    assert added is not None
    assert added.serial_number == "CP200-2025-00301"
    assert entities.async_get("sensor.buffer_tank_1_bottom_pressure") is None
    assert entities.async_get("sensor.methane_detector_1_methane") is None
    assert hass.states.get("sensor.transfer_pump_2_alarm_vibration_limit").state == "normal"

    # A device the gateway still serves cannot be removed by hand; a stale one can.
    assert not await async_remove_config_entry_device(hass, entry, added)
    stale = devices.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, f"{APPLICATION_URI}-gone/device")}
    )
    assert await async_remove_config_entry_device(hass, entry, stale)
    await hass.config_entries.async_unload(entry.entry_id)
