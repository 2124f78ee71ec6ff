"""Every entity of every platform, as a snapshot: registry entry and state.

The plant comes from the real demo gateway; its live values are pinned
(:mod:`.pinned`), so nothing is excluded from the snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from unittest.mock import patch

from homeassistant.components.todo import DOMAIN as TODO_DOMAIN
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.plantguard.api import AlarmUpdate
from custom_components.plantguard.models import AlarmStatus

from .conftest import entry_for, setup_entry
from .gateway import Gateway
from .pinned import FIXED_TIME, pinned_live_data


@pytest.fixture
def pinned() -> Iterator[None]:
    with pinned_live_data():
        yield


@pytest.mark.parametrize(
    "platform", [Platform.SENSOR, Platform.BINARY_SENSOR, Platform.EVENT, Platform.TODO]
)
@pytest.mark.usefixtures("pinned")
async def test_platform(
    hass: HomeAssistant,
    shared_gateway: Gateway,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    platform: Platform,
) -> None:
    with patch("custom_components.plantguard.PLATFORMS", [platform]):
        entry = await setup_entry(hass, entry_for(shared_gateway))
        if platform is Platform.EVENT:
            # One alarm transition, at a fixed instant: the event entity's state and attributes.
            coordinator = entry.runtime_data.coordinator
            key = "demo/utilities/tank1/Alarms/level.limit"
            activated = AlarmStatus(
                active=True,
                acknowledged=False,
                confirmed=False,
                severity=900,
                limit="HighHigh",
                message="tank1.level.limit: Above the HH limit",
                time=FIXED_TIME,
                event_id=b"pinned-event",
            )
            with patch("homeassistant.components.event.dt_util.utcnow", return_value=FIXED_TIME):
                coordinator._async_apply(coordinator.data, [AlarmUpdate(key, activated)])
        await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
        if platform is Platform.TODO:
            items = await hass.services.async_call(
                TODO_DOMAIN,
                "get_items",
                {"entity_id": "todo.plantguard_demo_plant_maintenance_due"},
                blocking=True,
                return_response=True,
            )
            assert items == snapshot(name="items")
        await hass.config_entries.async_unload(entry.entry_id)
