"""Coordinators: the gateway's live data (pushed) and its maintenance plans (read slowly).

Two cadences, two coordinators:

* :class:`PlantGuardCoordinator` owns the OPC UA connection.  Values and alarm
  events are *pushed* by the gateway's subscription; nothing is polled.  When
  the connection drops every entity becomes unavailable at once, and a
  reconnect loop with back-off brings them back — re-reading the plant, so
  devices added to or removed from the gateway's configuration follow.
* :class:`PlantGuardMaintenanceCoordinator` reads maintenance due dates every
  few minutes: they change in days, and the gateway computes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from . import const
from .api import AlarmUpdate, ConnectionLost, GatewayClient, InvalidAuth, PlantGuardError, Update
from .const import CONF_SECURITY_MODE, DOMAIN, LOGGER, MAINTENANCE_INTERVAL, SECURITY_NONE
from .models import (
    AlarmInfo,
    AlarmStatus,
    GatewayModel,
    MaintenancePlanInfo,
    PointValue,
    Transition,
    transition,
)
from .security import async_client_certificate

if TYPE_CHECKING:
    from . import PlantGuardConfigEntry

type TransitionListener = Callable[[AlarmInfo, AlarmStatus, Transition], None]


@dataclass(slots=True)
class PlantGuardData:
    """The plant as last browsed, and the latest value of everything live in it."""

    model: GatewayModel
    points: dict[str, PointValue] = field(default_factory=dict)
    alarms: dict[str, AlarmStatus] = field(default_factory=dict)


async def async_create_client(hass: HomeAssistant, data: dict[str, Any]) -> GatewayClient:
    """A client for the entry's (or the flow's) settings; makes the certificate if needed."""
    mode = data.get(CONF_SECURITY_MODE, SECURITY_NONE)
    certificate = None
    if mode != SECURITY_NONE:
        certificate = await async_client_certificate(hass, Path(hass.config.path(".storage")))
    return GatewayClient(
        data[CONF_URL],
        username=data.get(CONF_USERNAME),
        password=data.get(CONF_PASSWORD),
        security_mode=mode,
        certificate=certificate,
    )


def device_identifier(application_uri: str, device_key: str) -> str:
    """The device registry identifier of a field device (stable across restarts)."""
    return f"{application_uri}-{device_key}"


class PlantGuardCoordinator(DataUpdateCoordinator[PlantGuardData]):
    """Keeps one subscription to the gateway and pushes what it reports to the entities."""

    config_entry: PlantGuardConfigEntry

    def __init__(self, hass: HomeAssistant, entry: PlantGuardConfigEntry) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=None,
        )
        self.client: GatewayClient | None = None
        self._listener: asyncio.Task[None] | None = None
        self._transition_listeners: list[TransitionListener] = []
        self._closing = False

    @property
    def uri(self) -> str:
        """The gateway's application URI: the entry's unique id, and the prefix of every id."""
        if self.config_entry.unique_id:
            return self.config_entry.unique_id
        return self.data.model.application_uri  # pragma: no cover - entries always have one

    def device_identifiers(self, device_key: str) -> set[tuple[str, str]]:
        return {(DOMAIN, device_identifier(self.uri, device_key))}

    # --- connecting ---------------------------------------------------------------------

    async def _async_update_data(self) -> PlantGuardData:
        """Connect (first refresh, or a manual refresh while disconnected)."""
        if self.client is not None and self.client.connected and self.data is not None:
            return self.data
        return await self._async_connect()

    async def _async_connect(self) -> PlantGuardData:
        client = await async_create_client(self.hass, dict(self.config_entry.data))
        try:
            await client.connect()
            model = await client.read_model()
            await client.subscribe(model)
            snapshot = await client.read_state(model)
        except InvalidAuth as err:
            await client.disconnect()
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except PlantGuardError as err:
            await client.disconnect()
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err) or type(err).__name__},
            ) from err
        except BaseException:
            # Whatever went wrong, the session and its tasks must not outlive the attempt.
            await client.disconnect()
            raise
        previous = self.data.model if self.data is not None else None
        self.client = client
        data = PlantGuardData(model=model, points=snapshot.points, alarms=snapshot.alarms)
        if previous is not None:
            self._async_remove_stale(previous, model)
        self._listener = self.config_entry.async_create_background_task(
            self.hass, self._async_listen(client, data), name=f"{DOMAIN} subscription {self.name}"
        )
        return data

    async def _async_listen(self, client: GatewayClient, data: PlantGuardData) -> None:
        """Apply pushed updates to ``data`` until the connection ends, then reconnect.

        ``data`` is passed in rather than read from ``self.data``: the first
        notifications can arrive before the first refresh has stored it.
        """
        try:
            async for batch in client.updates():
                self._async_apply(data, batch)
        except ConnectionLost:
            pass
        await client.disconnect()
        if self._closing or self.client is not client:
            return
        self.client = None
        LOGGER.warning("Lost the connection to the PlantGuard gateway %s", client.url)
        self.async_set_update_error(
            UpdateFailed(translation_domain=DOMAIN, translation_key="connection_lost")
        )
        await self._async_reconnect()

    async def _async_reconnect(self) -> None:
        delay = const.RECONNECT_MIN_DELAY
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                data = await self._async_connect()
            except ConfigEntryAuthFailed:
                # The gateway's users changed while we were away: ask for new credentials.
                self.config_entry.async_start_reauth(self.hass)
                return
            except UpdateFailed as err:
                LOGGER.debug("Reconnecting to %s failed: %s", self.name, err)
                delay = min(delay * 2, const.RECONNECT_MAX_DELAY)
                continue
            LOGGER.info("Reconnected to the PlantGuard gateway %s", self.name)
            self.async_set_updated_data(data)
            return

    async def async_shutdown(self) -> None:
        """Stop the subscription and close the session (the entry is unloading)."""
        self._closing = True
        await super().async_shutdown()
        task, self._listener = self._listener, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self.client = self.client, None
        if client is not None:
            await client.disconnect()

    # --- live data ----------------------------------------------------------------------

    @callback
    def _async_apply(self, data: PlantGuardData, batch: list[Update]) -> None:
        alarms_info = data.model.all_alarms
        changed: list[tuple[AlarmInfo, AlarmStatus, Transition]] = []
        for update in batch:
            if isinstance(update, AlarmUpdate):
                before = data.alarms.get(update.key, AlarmStatus())
                after = update.status
                if before.time and after.time and after.time < before.time:
                    continue  # an event older than the snapshot read after subscribing
                data.alarms[update.key] = after
                info = alarms_info.get(update.key)
                if info is not None and before.event_id != after.event_id:
                    changed.append((info, after, transition(before, after)))
            else:
                data.points[update.key] = update.value
        self.async_set_updated_data(data)
        for info, status, name in changed:
            for listener in list(self._transition_listeners):
                listener(info, status, name)

    @callback
    def async_add_transition_listener(self, listener: TransitionListener) -> CALLBACK_TYPE:
        """Be told of every alarm transition the gateway reports (for the event entity)."""
        self._transition_listeners.append(listener)

        @callback
        def remove() -> None:
            self._transition_listeners.remove(listener)

        return remove

    # --- configuration changes ------------------------------------------------------------

    @callback
    def _async_remove_stale(self, old: GatewayModel, new: GatewayModel) -> None:
        """Remove devices and entities the gateway no longer serves.

        New devices and entities need no work here: each platform adds entities
        for keys it has not seen when the coordinator next notifies it.
        """
        uri = self.uri
        device_registry = dr.async_get(self.hass)
        new_devices = {d.key for d in new.devices}
        for device in old.devices:
            if device.key in new_devices:
                continue
            entry = device_registry.async_get_device(
                identifiers=self.device_identifiers(device.key)
            )
            if entry is not None:
                LOGGER.info("Device %s is no longer on the gateway; removing it", device.name)
                device_registry.async_update_device(
                    entry.id, remove_config_entry_id=self.config_entry.entry_id
                )
        gone = (set(old.points) | set(old.all_alarms)) - (set(new.points) | set(new.all_alarms))
        entity_registry = er.async_get(self.hass)
        for entity in er.async_entries_for_config_entry(
            entity_registry, self.config_entry.entry_id
        ):
            key = entity.unique_id.removeprefix(f"{uri}-")
            if key in gone:
                entity_registry.async_remove(entity.entity_id)


class PlantGuardMaintenanceCoordinator(DataUpdateCoordinator[list[MaintenancePlanInfo]]):
    """Maintenance and inspection plans with their due state, read every few minutes."""

    config_entry: PlantGuardConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: PlantGuardConfigEntry, live: PlantGuardCoordinator
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} maintenance {entry.title}",
            update_interval=MAINTENANCE_INTERVAL,
        )
        self._live = live

    async def _async_update_data(self) -> list[MaintenancePlanInfo]:
        client = self._live.client
        if client is None or not client.connected or self._live.data is None:
            raise UpdateFailed(translation_domain=DOMAIN, translation_key="not_connected")
        try:
            return await client.read_maintenance(self._live.data.model)
        except PlantGuardError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
