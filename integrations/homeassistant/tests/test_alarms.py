"""Alarms end to end: a value forced in the simulator, the alarm in HA, acknowledged from HA,
and the gateway's own journal showing the account and the Home Assistant user."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import math

from homeassistant.auth.models import User
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import Context, Event, HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
import voluptuous as vol

from custom_components.plantguard.api import ActionRefused
from custom_components.plantguard.const import DOMAIN

from .conftest import entry_for, setup_entry
from .gateway import TANK1, Gateway

LEVEL = "sensor.buffer_tank_1_level"
LEVEL_ALARM = "sensor.buffer_tank_1_alarm_level_limit"
BEARING_ALARM = "sensor.transfer_pump_1_alarm_bearing_temp_limit"
EVENTS = "event.plantguard_demo_plant_alarm_events"


async def wait_for(
    hass: HomeAssistant, entity_id: str, check: Callable[[State], bool], limit: float = 20
) -> State:
    """Wait until ``check(state)`` holds (the gateway pushes; no polling of the gateway)."""
    async with asyncio.timeout(limit):
        while True:
            state = hass.states.get(entity_id)
            if state is not None and check(state):
                return state
            await asyncio.sleep(0.1)


async def test_alarm_acknowledged_from_home_assistant(
    hass: HomeAssistant, gateway: Gateway, hass_admin_user: User
) -> None:
    entry = await setup_entry(hass, entry_for(gateway))
    fired: list[Event] = []

    @callback
    def record(event: Event) -> None:
        if event.data["entity_id"] == EVENTS:
            fired.append(event)

    hass.bus.async_listen("state_changed", record)
    assert hass.states.get(LEVEL_ALARM).state == "normal"
    active = "sensor.plantguard_demo_plant_active_alarms"
    unacknowledged = "sensor.plantguard_demo_plant_unacknowledged_alarms"
    # Other alarms (maintenance due) may be active already: count from here.
    before = int(hass.states.get(active).state), int(hass.states.get(unacknowledged).state)

    # A value change in the simulator reaches Home Assistant, and raises the HH alarm.
    await gateway.write_float(TANK1, 0, 95.0)
    await wait_for(
        hass, LEVEL, lambda s: s.state not in (STATE_UNKNOWN, "") and float(s.state) == 95.0
    )
    state = await wait_for(hass, LEVEL_ALARM, lambda s: s.state == "active_unacknowledged")
    await wait_for(hass, LEVEL_ALARM, lambda s: s.attributes["limit"] == "HighHigh")
    assert state.attributes["severity"] >= 700
    assert state.attributes["priority"] in ("high", "urgent")
    assert state.attributes["active"] is True
    assert state.attributes["acknowledged"] is False
    await wait_for(hass, active, lambda s: int(s.state) >= before[0] + 1)
    assert int(hass.states.get(unacknowledged).state) >= before[1] + 1
    await wait_for(hass, EVENTS, lambda s: s.attributes.get("event_type") == "activated")
    activated = hass.states.get(EVENTS).attributes
    assert activated["alarm_id"] == "tank1.level.limit"
    assert activated["alarm_entity_id"] == LEVEL_ALARM
    assert activated["priority"] in ("high", "urgent")

    # Confirming comes after acknowledging (ISA-18.2): the gateway refuses it before.
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "confirm", {"entity_id": LEVEL_ALARM}, blocking=True)
    assert err.value.translation_key == "invalid_state"

    # A stale EventId (another client acted since) is refreshed once, not failed on.
    client = entry.runtime_data.coordinator.client
    alarm = entry.runtime_data.coordinator.data.model.all_alarms[
        "demo/utilities/tank1/Alarms/pressure.limit"
    ]
    with pytest.raises(ActionRefused) as refused:
        await client.acknowledge(alarm, b"stale-event-id!!", "")
    assert refused.value.status == "BadConditionBranchAlreadyAcked"

    # Acknowledged by a Home Assistant user, through the gateway's Acknowledge method.
    await hass.services.async_call(
        DOMAIN,
        "acknowledge",
        {"entity_id": LEVEL_ALARM, "comment": "checked the level on site"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    state = await wait_for(hass, LEVEL_ALARM, lambda s: s.state == "active_acknowledged")
    assert state.attributes["user"] == "operator"
    assert state.attributes["comment"] == "[Home Assistant: Mock User] checked the level on site"
    await wait_for(hass, EVENTS, lambda s: s.attributes.get("event_type") == "acknowledged")

    journal = await hass.async_add_executor_job(gateway.journal, "tank1.level.limit")
    [ack] = [e for e in journal if e["action"] == "acknowledge"]
    assert ack["user"] == "operator"
    assert ack["comment"] == "[Home Assistant: Mock User] checked the level on site"

    # Acknowledging twice is the caller's mistake; shelving needs an engineer.
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "acknowledge", {"entity_id": LEVEL_ALARM}, blocking=True
        )
    assert err.value.translation_key == "already_acknowledged"
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "shelve", {"entity_id": LEVEL_ALARM, "duration": {"minutes": 5}}, blocking=True
        )
    assert err.value.translation_key == "access_denied"
    assert err.value.translation_placeholders["account"] == "operator"

    # The level returns: the alarm clears (waiting for its confirmation at the gateway).
    await gateway.write_float(TANK1, 0, math.nan)
    await wait_for(hass, LEVEL_ALARM, lambda s: s.state == "normal")
    await wait_for(hass, EVENTS, lambda s: s.attributes.get("event_type") == "cleared")
    assert hass.states.get(LEVEL_ALARM).attributes["confirmed"] is False

    # Confirmed from Home Assistant, then a comment: both journalled with the user.
    await hass.services.async_call(
        DOMAIN,
        "confirm",
        {"entity_id": LEVEL_ALARM, "comment": "transmitter drift found"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    await wait_for(hass, LEVEL_ALARM, lambda s: s.attributes["confirmed"] is True)
    await wait_for(hass, EVENTS, lambda s: s.attributes.get("event_type") == "confirmed")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "confirm", {"entity_id": LEVEL_ALARM}, blocking=True)
    assert err.value.translation_key == "already_confirmed"
    await hass.services.async_call(
        DOMAIN,
        "add_comment",
        {"entity_id": LEVEL_ALARM, "comment": "calibration booked"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    state = await wait_for(
        hass, LEVEL_ALARM, lambda s: s.attributes["comment"].endswith("calibration booked")
    )
    assert state.attributes["comment"] == "[Home Assistant: Mock User] calibration booked"
    journal = await hass.async_add_executor_job(gateway.journal, "tank1.level.limit")
    actions = {e["action"]: e for e in journal}
    assert actions["confirm"]["comment"] == "[Home Assistant: Mock User] transmitter drift found"
    assert actions["comment"]["comment"] == "[Home Assistant: Mock User] calibration booked"
    assert actions["comment"]["user"] == "operator"
    # A comment must say something.
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN, "add_comment", {"entity_id": LEVEL_ALARM, "comment": ""}, blocking=True
        )

    assert {e.data["new_state"].attributes["event_type"] for e in fired} >= {
        "activated",
        "acknowledged",
        "cleared",
        "confirmed",
    }
    await hass.config_entries.async_unload(entry.entry_id)


async def test_shelve_and_unshelve_as_engineer(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    entry = await setup_entry(hass, entry_for(shared_gateway, "engineer"))
    await hass.services.async_call(
        DOMAIN,
        "shelve",
        {"entity_id": BEARING_ALARM, "duration": timedelta(minutes=30)},
        blocking=True,
    )
    state = await wait_for(hass, BEARING_ALARM, lambda s: s.state == "shelved")
    assert state.attributes["shelving"] == "timed"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "shelve", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "already_shelved"
    await hass.services.async_call(DOMAIN, "unshelve", {"entity_id": BEARING_ALARM}, blocking=True)
    await wait_for(hass, BEARING_ALARM, lambda s: s.state == "normal")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "unshelve", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "not_shelved"
    # One-shot: shelved until the alarm next clears.
    await hass.services.async_call(DOMAIN, "shelve", {"entity_id": BEARING_ALARM}, blocking=True)
    state = await wait_for(hass, BEARING_ALARM, lambda s: s.state == "shelved")
    assert state.attributes["shelving"] == "oneshot"
    await hass.services.async_call(DOMAIN, "unshelve", {"entity_id": BEARING_ALARM}, blocking=True)
    await wait_for(hass, BEARING_ALARM, lambda s: s.state == "normal")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "shelve",
            {"entity_id": BEARING_ALARM, "duration": timedelta(days=2)},
            blocking=True,
        )
    assert err.value.translation_key == "shelving_time_out_of_range"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_out_of_service_as_engineer(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    """RemoveFromService / PlaceInService (Part 9), with the reason as a comment."""
    entry = await setup_entry(hass, entry_for(shared_gateway, "engineer"))
    await hass.services.async_call(
        DOMAIN,
        "remove_from_service",
        {"entity_id": BEARING_ALARM, "comment": "sensor replaced"},
        blocking=True,
    )
    state = await wait_for(hass, BEARING_ALARM, lambda s: s.state == "out_of_service")
    assert state.attributes["out_of_service"] is True
    await wait_for(hass, EVENTS, lambda s: s.attributes.get("event_type") == "removed_from_service")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "remove_from_service", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "already_out_of_service"
    # An alarm out of service is not shelved: place it in service first.
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "shelve", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "alarm_disabled"

    # An alarm out of service reports no events (Part 9): its reason reaches the journal
    # at once, and Home Assistant with the next event.
    await hass.services.async_call(
        DOMAIN,
        "place_in_service",
        {"entity_id": BEARING_ALARM, "comment": "calibrated"},
        blocking=True,
    )
    state = await wait_for(hass, BEARING_ALARM, lambda s: s.state == "normal")
    assert state.attributes["out_of_service"] is False
    await wait_for(hass, BEARING_ALARM, lambda s: s.attributes["comment"].endswith("calibrated"))
    assert hass.states.get(BEARING_ALARM).attributes["comment"] == (
        "[Home Assistant: automation] calibrated"
    )
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "place_in_service", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "not_out_of_service"
    journal = await hass.async_add_executor_job(shared_gateway.journal, "pump1.bearing_temp.limit")
    actions = [(e["action"], e["comment"]) for e in journal]
    removed = actions.index(("remove_from_service", ""))
    assert actions[removed + 1] == ("comment", "[Home Assistant: automation] sensor replaced")
    assert actions[removed + 2] == ("return_to_service", "")
    assert actions[removed + 3] == ("comment", "[Home Assistant: automation] calibrated")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_operator_may_not_take_alarms_out_of_service(
    hass: HomeAssistant, shared_gateway: Gateway
) -> None:
    entry = await setup_entry(hass, entry_for(shared_gateway, "operator"))
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "remove_from_service", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "access_denied"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_viewer_cannot_acknowledge(hass: HomeAssistant, shared_gateway: Gateway) -> None:
    entry = await setup_entry(hass, entry_for(shared_gateway, "viewer"))
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "acknowledge", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "access_denied"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_action_targets_must_be_plantguard_alarms(hass: HomeAssistant, loaded_entry) -> None:
    for entity_id in ("sensor.does_not_exist", "sensor.buffer_tank_1_level"):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, "acknowledge", {"entity_id": entity_id}, blocking=True
            )
        assert err.value.translation_key == "not_an_alarm"
    await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "acknowledge", {"entity_id": BEARING_ALARM}, blocking=True
        )
    assert err.value.translation_key == "entry_not_loaded"
