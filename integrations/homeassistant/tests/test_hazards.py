"""Hidden dangers (隐患) and the early-warning index, against a real gateway whose site has
the risk plugin's ``safety_index`` service and virtual device (docs/safety.md).

* the ``report_hazard`` action calls the site's ReportHazard with the entry's account:
  the gateway's register has the hidden danger, journalled with that account;
* the index sensor carries the warning level and the components as attributes, the
  same values as the component sensors, and follows them when a report moves them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.plantguard.const import DOMAIN
from custom_components.plantguard.sensor import INDEX_COMPONENTS, WARNING_LEVELS

from .conftest import APPLICATION_URI, entry_for, setup_entry
from .gateway import PLANTGUARD, Gateway

SAFETY = "demo/hse/safety"
COMPONENTS = ("hazards_open", "alarms_unack", "device_unavailability")


def _with_index(site: dict[str, Any]) -> None:
    site["services"]["safety_index"] = {}
    points = [
        {"id": "index", "address": {"component": "index"}},
        {"id": "level", "data_type": "int", "address": {"component": "level"}},
        *({"id": c, "address": {"component": c}} for c in COMPONENTS),
    ]
    device = {"id": "safety", "name": "Safety early warning", "driver": "safety_index"}
    site["areas"].append({"id": "hse", "name": "HSE", "devices": [device | {"points": points}]})


@pytest.fixture
def index_gateway(gateway: Gateway) -> Gateway:
    """The test's own gateway, restarted with the early-warning index in its site."""
    gateway.stop()
    gateway.use_site(_with_index)
    gateway.start()
    return gateway


def _hazard(gateway: Gateway, hazard_id: str) -> dict[str, Any]:
    """A hidden danger with its journal, through the gateway's CLI."""
    out = subprocess.run(
        [str(PLANTGUARD), "hazards", "show", hazard_id, "--json", "--db", str(gateway.db)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _hazard_count(gateway: Gateway) -> int:
    out = subprocess.run(
        [str(PLANTGUARD), "hazards", "list", "--json", "--db", str(gateway.db)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return len(json.loads(out.stdout))


def _entity(hass: HomeAssistant, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{APPLICATION_URI}-{key}")
    assert entity_id is not None, key
    return entity_id


def _number(hass: HomeAssistant, key: str) -> float:
    state = hass.states.get(_entity(hass, key))
    assert state is not None, key
    return float(state.state)


def _device(hass: HomeAssistant, key: str) -> str:
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{APPLICATION_URI}-{key}")})
    assert device is not None, key
    return device.id


async def _report(hass: HomeAssistant, data: dict[str, Any], **kwargs: Any) -> str:
    response = await hass.services.async_call(
        DOMAIN, "report_hazard", data, blocking=True, return_response=True, **kwargs
    )
    assert response is not None
    hazard_id = response["hazard_id"]
    assert isinstance(hazard_id, str)
    return hazard_id


async def _until(hass: HomeAssistant, check: Any) -> None:
    """Wait (up to 20 s) for ``check()``: values arrive at the device's poll interval."""
    for _ in range(100):
        await hass.async_block_till_done()
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_index_sensor_carries_level_and_components(
    hass: HomeAssistant, index_gateway: Gateway
) -> None:
    entry = await setup_entry(hass, entry_for(index_gateway))
    index = _entity(hass, f"{SAFETY}/Points/index")

    def attributes_match_the_sensors() -> bool:
        state = hass.states.get(index)
        assert state is not None
        expected: dict[str, Any] = {c: _number(hass, f"{SAFETY}/Points/{c}") for c in COMPONENTS}
        expected["level"] = WARNING_LEVELS[round(_number(hass, f"{SAFETY}/Points/level"))]
        shown = {k: v for k, v in state.attributes.items() if k in expected}
        return shown == expected and state.attributes["quality"] == "Good"

    await _until(hass, attributes_match_the_sensors)
    state = hass.states.get(index)
    assert state is not None
    # Only the components the device has; the others are not made up.
    assert set(INDEX_COMPONENTS) & set(state.attributes) == set(COMPONENTS)
    before = state.attributes["hazards_open"]

    # A new general hidden danger adds its weight (2) to hazards_open, and so to the index.
    await _report(hass, {"title": "Handrail loose on tank 1 stairs"})

    def moved() -> bool:
        now = hass.states.get(index)
        return now is not None and now.attributes["hazards_open"] == before + 2.0

    await _until(hass, moved)
    assert attributes_match_the_sensors()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_report_hazard_action(
    hass: HomeAssistant, index_gateway: Gateway, hass_admin_user: User
) -> None:
    entry = await setup_entry(hass, entry_for(index_gateway))
    level = _entity(hass, "demo/utilities/tank1/Points/level")
    hazard_id = await _report(
        hass,
        {
            "title": "Sight glass cracked",
            "description": "  found on the night round ",
            "device": _device(hass, "demo/utilities/tank1"),
            "point": level,
        },
        context=Context(user_id=hass_admin_user.id),
    )
    shown = await hass.async_add_executor_job(_hazard, index_gateway, hazard_id)
    hazard = shown["hazard"]
    assert (hazard["title"], hazard["state"], hazard["reported_by"]) == (
        "Sight glass cracked",
        "reported",
        "operator",
    )
    assert hazard["description"] == "[Home Assistant: Mock User] found on the night round"
    assert (hazard["device_id"], hazard["point_id"]) == ("tank1", "tank1.level")
    [entry_journal] = shown["journal"]
    assert (entry_journal["action"], entry_journal["user"]) == ("report", "operator")

    # Neither device nor point: the only gateway set up; the entry may also be named.
    plain = await _report(hass, {"title": "Oil on the floor", "config_entry_id": entry.entry_id})
    shown = await hass.async_add_executor_job(_hazard, index_gateway, plain)
    assert shown["hazard"]["device_id"] is None
    assert shown["hazard"]["description"] == "[Home Assistant: automation]"
    count = await hass.async_add_executor_job(_hazard_count, index_gateway)

    # The gateway checks the point against the device: nothing is written.
    with pytest.raises(ServiceValidationError) as err:
        await _report(
            hass, {"title": "x", "device": _device(hass, "demo/utilities/pump1"), "point": level}
        )
    assert err.value.translation_key == "hazard_invalid"
    for data, key in (
        ({"title": "x", "point": "sensor.not_there"}, "not_a_point"),
        ({"title": "x", "device": "not-a-device"}, "unknown_device"),
        ({"title": "x", "config_entry_id": "nope"}, "unknown_entry"),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await _report(hass, data)
        assert err.value.translation_key == key
    assert await hass.async_add_executor_job(_hazard_count, index_gateway) == count
    await hass.config_entries.async_unload(entry.entry_id)

    # An unloaded gateway is refused before anything is sent.
    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, {"title": "x", "config_entry_id": entry.entry_id})
    assert err.value.translation_key == "entry_not_loaded"
    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, {"title": "x"})
    assert err.value.translation_key == "which_gateway"


async def test_viewer_may_not_report(hass: HomeAssistant, index_gateway: Gateway) -> None:
    entry = await setup_entry(hass, entry_for(index_gateway, "viewer"))
    with pytest.raises(HomeAssistantError) as err:
        await _report(hass, {"title": "Guard missing"})
    assert err.value.translation_key == "access_denied"
    assert await hass.async_add_executor_job(_hazard_count, index_gateway) == 0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_gateway_without_hazard_reporting(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await _report(hass, {"title": "Guard missing"})
    assert err.value.translation_key == "hazards_not_offered"


async def test_two_gateways_need_one_named(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, index_gateway: Gateway
) -> None:
    other = MockConfigEntry(
        domain=DOMAIN,
        title="Second plant",
        unique_id="urn:plantguard:second",
        data=dict(entry_for(index_gateway).data),
    )
    await setup_entry(hass, other)
    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, {"title": "x"})
    assert err.value.translation_key == "which_gateway"
    point = _entity(hass, "demo/utilities/tank1/Points/level")
    with pytest.raises(ServiceValidationError) as err:
        await _report(hass, {"title": "x", "point": point, "config_entry_id": other.entry_id})
    assert err.value.translation_key == "other_gateway"
    await hass.config_entries.async_unload(other.entry_id)
