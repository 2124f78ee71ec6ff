"""Each blueprint in blueprints/automation/plantguard: valid, and working when fired.

An automation is created from the blueprint in a test Home Assistant and its
trigger is fired; the notify action and the PlantGuard actions it calls are
recorded by mock services, so what the automation does is checked exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
import shutil

from homeassistant.components.blueprint import models
from homeassistant.components.blueprint.schemas import BLUEPRINT_SCHEMA
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import async_fire_time_changed, async_mock_service

from .gateway import MAIN

BLUEPRINTS = MAIN / "blueprints" / "automation" / "plantguard"
EVENTS = "event.plantguard_demo_plant_alarm_events"
ALARM = "sensor.buffer_tank_1_alarm_level_limit"


def _install(hass: HomeAssistant, tmp_path: Path) -> None:
    """Blueprints are read from <config>/blueprints, as after an import."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "plantguard"
    shutil.copytree(BLUEPRINTS, target)


async def _automation(hass: HomeAssistant, name: str, inputs: dict) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {"automation": [{"use_blueprint": {"path": f"plantguard/{name}", "input": inputs}}]},
    )
    await hass.async_block_till_done()
    [state] = hass.states.async_all("automation")
    assert state.state == "on", state.attributes


async def _turn_off(hass: HomeAssistant) -> None:
    """Stop the automation: its time trigger must not outlive the test."""
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": "all", "stop_actions": True}, blocking=True
    )


async def _until(check: Callable[[], bool]) -> None:
    """Wait for a running automation (block_till_done would wait for its whole run)."""
    async with asyncio.timeout(10):
        while not check():  # noqa: ASYNC110 - the automation offers nothing to await
            await asyncio.sleep(0.01)


def test_blueprints_are_valid() -> None:
    names = sorted(p.name for p in BLUEPRINTS.glob("*.yaml"))
    assert names == [
        "escalate_unacknowledged.yaml",
        "maintenance_reminder.yaml",
        "notify_new_alarm.yaml",
    ]
    for path in BLUEPRINTS.glob("*.yaml"):
        blueprint = models.Blueprint(
            load_yaml_dict(str(path)), expected_domain="automation", schema=BLUEPRINT_SCHEMA
        )
        assert blueprint.domain == "automation"
        assert blueprint.metadata["source_url"].endswith(path.name)


def _event(hass: HomeAssistant, event_type: str, priority: str, when: str) -> None:
    hass.states.async_set(
        EVENTS,
        when,
        {
            "event_type": event_type,
            "alarm_id": "tank1.level.limit",
            "alarm_entity_id": ALARM,
            "priority": priority,
            "message": "Level HH: 95 % (limit 90)",
        },
    )


async def test_notify_new_alarm_and_acknowledge(hass: HomeAssistant, tmp_path: Path) -> None:
    await hass.async_add_executor_job(_install, hass, tmp_path)
    notified = async_mock_service(hass, "notify", "phone")
    acknowledged = async_mock_service(hass, "plantguard", "acknowledge")
    hass.states.async_set(EVENTS, "unknown", {"event_type": None})
    await _automation(
        hass,
        "notify_new_alarm.yaml",
        {"alarm_events": EVENTS, "minimum_priority": "high", "notify_action": "notify.phone"},
    )
    # Below the chosen priority, and transitions other than activation: no notification.
    _event(hass, "activated", "medium", "2026-01-01T00:00:00+00:00")
    _event(hass, "acknowledged", "urgent", "2026-01-01T00:00:01+00:00")
    await hass.async_block_till_done()
    assert notified == []

    _event(hass, "activated", "urgent", "2026-01-01T00:00:02+00:00")
    await _until(lambda: len(notified) == 1)
    [call] = notified
    assert call.data["message"] == "Level HH: 95 % (limit 90)"
    [button] = call.data["data"]["actions"]
    assert button["title"] == "Acknowledge"
    assert acknowledged == []

    # The phone's button press arrives as this event; the alarm is acknowledged.
    hass.bus.async_fire("mobile_app_notification_action", {"action": "SOMETHING_ELSE"})
    await asyncio.sleep(0.1)
    assert acknowledged == []
    hass.bus.async_fire("mobile_app_notification_action", {"action": button["action"]})
    await _until(lambda: len(acknowledged) == 1)
    await hass.async_block_till_done()
    [ack] = acknowledged
    assert ack.data == {"entity_id": ALARM, "comment": "Acknowledged from a phone notification"}


async def test_escalate_unacknowledged(hass: HomeAssistant, tmp_path: Path) -> None:
    await hass.async_add_executor_job(_install, hass, tmp_path)
    notified = async_mock_service(hass, "notify", "supervisor")
    hass.states.async_set(ALARM, "normal", {"friendly_name": "Buffer tank 1 Alarm level.limit"})
    await _automation(
        hass,
        "escalate_unacknowledged.yaml",
        {"alarms": [ALARM], "minutes": 10, "notify_action": "notify.supervisor"},
    )
    attributes = {
        "friendly_name": "Buffer tank 1 Alarm level.limit",
        "message": "Level HH: 95 % (limit 90)",
        "priority": "high",
    }
    hass.states.async_set(ALARM, "active_unacknowledged", attributes)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await hass.async_block_till_done()
    assert notified == []
    # Acknowledged in time: nothing to escalate.
    hass.states.async_set(ALARM, "active_acknowledged", attributes)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=11))
    await hass.async_block_till_done()
    assert notified == []
    # Left unacknowledged for the whole time: escalated once.
    hass.states.async_set(ALARM, "returned_unacknowledged", attributes)
    hass.states.async_set(ALARM, "active_unacknowledged", attributes)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=22))
    await hass.async_block_till_done()
    [call] = notified
    assert "10 minutes" in call.data["message"]
    assert call.data["title"] == "Unacknowledged alarm: Buffer tank 1 Alarm level.limit"


async def test_maintenance_reminder(hass: HomeAssistant, tmp_path: Path) -> None:
    await hass.async_add_executor_job(_install, hass, tmp_path)
    todo = "todo.plantguard_demo_plant_maintenance_due"
    notified = async_mock_service(hass, "notify", "lead")
    items = [
        {
            "summary": "Buffer tank 1: Tank wall thickness inspection",
            "due": "2026-11-25T00:00:00+00:00",
            "description": "overdue",
        },
        {
            "summary": "Transfer pump 1: Grease motor bearings",
            "due": "2026-12-02T00:00:00+00:00",
            "description": "due_soon",
        },
    ]
    asked: list[ServiceCall] = []

    async def get_items(call: ServiceCall) -> ServiceResponse:
        asked.append(call)
        return {todo: {"items": items}}

    hass.services.async_register(
        "todo", "get_items", get_items, supports_response=SupportsResponse.ONLY
    )
    hass.states.async_set(todo, "2")
    await _automation(
        hass,
        "maintenance_reminder.yaml",
        {"maintenance_list": todo, "time": "07:30:00", "notify_action": "notify.lead"},
    )
    now = dt_util.now()
    at = now.replace(hour=7, minute=30, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    async_fire_time_changed(hass, at)
    await hass.async_block_till_done()
    [call] = notified
    assert call.data["title"] == "Maintenance due: 2"
    assert "Tank wall thickness inspection" in call.data["message"]
    assert "OVERDUE" in call.data["message"]
    assert asked[0].data["status"] == "needs_action"

    # Nothing due: no reminder.
    hass.states.async_set(todo, "0")
    async_fire_time_changed(hass, at + timedelta(days=1))
    await hass.async_block_till_done()
    assert len(notified) == 1
    await _turn_off(hass)
