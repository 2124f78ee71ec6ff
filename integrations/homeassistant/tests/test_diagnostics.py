"""Diagnostics: what the integration sees, with the credentials redacted; the devices."""

from __future__ import annotations

from collections.abc import Iterator
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.types import PropertyPath

from .conftest import entry_for, setup_entry
from .gateway import Gateway
from .pinned import pinned_live_data


def _any_port(data: Any, path: PropertyPath) -> Any:
    """The gateway's URL without its port, which the tests pick free on every run."""
    if path and path[-1][0] == "url" and isinstance(data, str):
        return re.sub(r":\d+/", ":<port>/", data)
    return data


@pytest.fixture
def pinned() -> Iterator[None]:
    with pinned_live_data():
        yield


@pytest.mark.usefixtures("pinned")
async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    shared_gateway: Gateway,
    snapshot: SnapshotAssertion,
) -> None:
    """Everything is in the snapshot: live values are pinned (tests/pinned.py), the port masked."""
    entry = await setup_entry(hass, entry_for(shared_gateway))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["entry"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["username"] == "**REDACTED**"
    assert diagnostics == snapshot(matcher=_any_port)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_devices(hass: HomeAssistant, loaded_entry, snapshot: SnapshotAssertion) -> None:
    """One device per field device, with its basic information, below the gateway."""
    registry = dr.async_get(hass)
    devices = dr.async_entries_for_config_entry(registry, loaded_entry.entry_id)
    hub = next(d for d in devices if d.via_device_id is None)
    assert all(d.via_device_id == hub.id for d in devices if d is not hub)
    for device in sorted(devices, key=lambda d: d.name or ""):
        assert device == snapshot(name=device.name)
