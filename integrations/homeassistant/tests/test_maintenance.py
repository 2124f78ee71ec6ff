"""Maintenance due as a to-do list; completing an item records it at the gateway."""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.components.todo import DOMAIN as TODO_DOMAIN
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest

from custom_components.plantguard.const import DOMAIN

from .conftest import APPLICATION_URI, entry_for, setup_entry
from .gateway import Gateway, maintenance_records

TODO = "todo.plantguard_demo_plant_maintenance_due"
WALL = "demo/utilities/tank1/Maintenance/tank1-wall-inspection"


async def _items(hass: HomeAssistant) -> list[dict]:
    result = await hass.services.async_call(
        TODO_DOMAIN, "get_items", {"entity_id": TODO}, blocking=True, return_response=True
    )
    return result[TODO]["items"]


async def test_complete_due_maintenance(
    hass: HomeAssistant, gateway: Gateway, hass_admin_user: User
) -> None:
    entry = await setup_entry(hass, entry_for(gateway))
    items = await _items(hass)
    by_uid = {item["uid"]: item for item in items}
    assert by_uid[WALL]["summary"] == "Buffer tank 1: Tank wall thickness inspection"
    assert by_uid[WALL]["description"] == "overdue"
    assert by_uid[WALL]["due"]
    assert hass.states.get(TODO).state == str(len(items))

    await hass.services.async_call(
        TODO_DOMAIN,
        "update_item",
        {"entity_id": TODO, "item": WALL, "status": "completed"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    assert WALL not in {item["uid"] for item in await _items(hass)}
    records = await hass.async_add_executor_job(maintenance_records, gateway)
    [record] = [r for r in records if r["plan_id"] == "tank1-wall-inspection"]
    assert record["performer"] == "Mock User"
    assert record["result"] == "completed"

    # Renaming an item is not completing it: nothing is recorded.
    [other] = await _items(hass)
    await hass.services.async_call(
        TODO_DOMAIN,
        "update_item",
        {"entity_id": TODO, "item": other["uid"], "rename": "something else"},
        blocking=True,
    )
    assert len(await hass.async_add_executor_job(maintenance_records, gateway)) == len(records)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_record_maintenance_action(hass: HomeAssistant, gateway: Gateway) -> None:
    entry = await setup_entry(hass, entry_for(gateway))
    pump = dr.async_get(hass).async_get_device(
        identifiers={(DOMAIN, f"{APPLICATION_URI}-demo/utilities/pump1")}
    )
    await hass.services.async_call(
        DOMAIN,
        "record_maintenance",
        {"device_id": pump.id, "plan": "pump1-grease", "summary": "Greased both bearings"},
        blocking=True,
    )
    records = await hass.async_add_executor_job(maintenance_records, gateway)
    [record] = [r for r in records if r["plan_id"] == "pump1-grease"]
    assert record["work_done"] == "Greased both bearings"
    assert record["performer"] == "automation"

    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "record_maintenance",
            {"device_id": pump.id, "plan": "no-such-plan"},
            blocking=True,
        )
    assert err.value.translation_key == "action_refused"
    hub = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, APPLICATION_URI)})
    for device_id in (hub.id, "not-a-device"):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, "record_maintenance", {"device_id": device_id, "plan": "x"}, blocking=True
            )
        assert err.value.translation_key == "unknown_device"
    await hass.config_entries.async_unload(entry.entry_id)
