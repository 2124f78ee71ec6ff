"""Fixtures: Home Assistant's test harness, and a real PlantGuard gateway process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.plantguard import coordinator as coordinator_module
from custom_components.plantguard.const import CONF_SECURITY_MODE, DOMAIN

from .gateway import Gateway

APPLICATION_URI = "urn:plantguard:demo:opcua"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components/plantguard in every test."""


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in Home Assistant's format (registry entries and states without their ids
    and times), as in Home Assistant's own tests; syrupy's own fixture would win otherwise."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture(autouse=True)
def allow_loopback(socket_enabled: None) -> None:
    """The harness blocks sockets; the gateway is a real server on 127.0.0.1."""


@pytest.fixture(autouse=True)
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect after 0.3 s, not seconds: tests restart the gateway at once."""
    monkeypatch.setattr(coordinator_module.const, "RECONNECT_MIN_DELAY", 0.3)
    monkeypatch.setattr(coordinator_module.const, "RECONNECT_MAX_DELAY", 1.0)


@pytest.fixture(scope="session")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One demo gateway for the tests that only read from it."""
    gateway = Gateway(tmp_path_factory.mktemp("shared-gateway"))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway of the test's own, for tests that stop it, change it or act on alarms."""
    gw = Gateway(tmp_path)
    gw.start()
    yield gw
    gw.stop()


def entry_for(
    gateway: Gateway, username: str = "operator", password: str | None = None
) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="PlantGuard demo plant",
        unique_id=APPLICATION_URI,
        data={
            CONF_URL: gateway.url,
            CONF_USERNAME: username,
            CONF_PASSWORD: username if password is None else password,
            CONF_SECURITY_MODE: "none",
        },
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, shared_gateway: Gateway
) -> AsyncIterator[MockConfigEntry]:
    """The shared gateway, set up as the operator."""
    entry = await setup_entry(hass, entry_for(shared_gateway))
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
