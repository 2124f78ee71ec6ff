"""Diagnostics: what the integration sees, with the credentials redacted."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry,
    snapshot: SnapshotAssertion,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["entry"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["username"] == "**REDACTED**"
    # Live values and instants change from run to run; the structure does not.
    # Live values, instants and alarm states (the gateway's rules raise maintenance
    # alarms some seconds after it starts) change from run to run; the structure does not.
    volatile = props(
        "value", "source_time", "time", "url", "remaining", "due", "quality", "user",
        "comment", "state", "active", "acknowledged", "confirmed", "severity", "message",
        "limit", "shelving", "last_update_success",
    )  # fmt: skip
    assert diagnostics == snapshot(exclude=volatile)


async def test_devices(hass: HomeAssistant, loaded_entry, snapshot: SnapshotAssertion) -> None:
    """One device per field device, with its basic information, below the gateway."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), loaded_entry.entry_id)
    summary = sorted(
        (
            d.name,
            d.manufacturer,
            d.model,
            d.serial_number,
            d.hw_version,
            d.sw_version,
            d.suggested_area,
        )
        for d in devices
    )
    assert summary == snapshot
