"""Publishes Home Assistant MQTT discovery, states and availability; takes acknowledgements.

Its own connection: the Last Will is the retained ``offline`` on the node's status
topic, which HA's availability reads (the Sparkplug connection's Will is the NDEATH).
Per session: collect the retained configs the node left on the broker, publish the
current ones, remove the stale ones, then publish device states and alarm states
as they change.  A press of an alarm's button publishes the alarm id to the
acknowledge topic; it acts as the configured ``command_user`` with the role
``roles`` gives it, through the alarm manager's one entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt
import numpy as np

from plantguard.plugin import EngineView, Transition

from .catalogue import Catalogue, DeviceMetrics, build_catalogue
from .changes import Changes
from .connection import first_failure, make_client, run_connected, stop_connection
from .discovery import Topics, alarm_state, device_configs, device_state, stale_configs
from .options import HomeAssistantOptions, MqttPublishOptions
from .principals import principal_for

__all__ = ["HomeAssistantPublisher"]

log = logging.getLogger("plantguard.mqtt_publish.homeassistant")

#: Seconds to wait for the broker's retained configs before giving up on removals.
SYNC_TIMEOUT = 10.0


class HomeAssistantPublisher:
    def __init__(self, options: MqttPublishOptions, ha: HomeAssistantOptions, node: str) -> None:
        self.options = options
        self.ha = ha
        self.node = node
        self.topics = Topics(ha.prefix, node)
        #: Config topics removed (stale) in the last session, for tests and the log.
        self.removed: list[str] = []
        self._engine: EngineView | None = None
        self._catalogue: Catalogue | None = None
        self._changes: Changes | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._alarm_devices: set[str] = set()
        self._last_state: dict[str, str] = {}
        self._client: aiomqtt.Client | None = None

    async def start(self, engine: EngineView) -> None:
        self._engine = engine
        self._catalogue = build_catalogue(
            engine.site, engine.table.index, engine.alarms.definitions.values()
        )
        self._changes = Changes(len(engine.table))
        self._unsubscribe = engine.on_values(self._changes)
        will = aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_connected(
                self.options.broker,
                lambda: make_client(self.options.broker, f"plantguard-ha-{self.topics.node}", will),
                self._session,
                on_lost=lambda: None,
                what=f"Home Assistant discovery of {self.node}",
                stop=self._stop,
            ),
            name=f"homeassistant {self.node}",
        )

    async def stop(self) -> None:
        """Say ``offline`` (a clean disconnect sends no Will), then disconnect."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self._client.publish(
                    self.topics.status, b"offline", qos=1, retain=True, timeout=2.0
                )
        if self._task is not None:
            await stop_connection(
                self._task,
                self._stop,
                self.options.broker,
                what=f"Home Assistant discovery of {self.node}",
            )
            self._task = None

    def on_transition(self, transition: Transition) -> None:
        if self._catalogue is None or self._changes is None:
            return
        device = self._catalogue.alarm_device.get(transition.alarm_id)
        if device is not None:
            self._alarm_devices.add(device.id)
            self._changes.poke()

    # --- session ----------------------------------------------------------------------

    async def _session(self, client: aiomqtt.Client) -> None:
        catalogue, _ = self._parts()
        async with client.messages() as messages:
            retained = await self._retained_configs(client, messages)
            current = []
            for device in catalogue.devices:
                for topic, config in device_configs(self.topics, device):
                    await client.publish(topic, json.dumps(config), qos=1, retain=True)
                    current.append(topic)
            self.removed = stale_configs(retained, current)
            for topic in self.removed:
                await client.publish(topic, b"", qos=1, retain=True)
            if self.removed:
                log.info("Home Assistant discovery: removed %d stale configs", len(self.removed))
            await client.publish(self.topics.status, b"online", qos=1, retain=True)
            await client.subscribe(self.topics.acknowledge, qos=1)
            self._last_state.clear()
            self._alarm_devices = {d.id for d in catalogue.devices if d.alarms}
            await self._publish_states(client, np.arange(len(self._engine_view().table)))
            self._client = client
            try:
                await first_failure([self._publish_loop(client), self._commands(messages)])
            finally:
                self._client = None

    async def _retained_configs(self, client: aiomqtt.Client, messages: Any) -> dict[str, bytes]:
        """The configs the broker holds for this node: retained messages arrive right
        after the subscription, before a marker published after it comes back."""
        marker = f"{self.topics.base}/sync/{uuid.uuid4().hex}"
        await client.subscribe(self.topics.config_filter, qos=1)
        await client.subscribe(marker, qos=1)
        await client.publish(marker, b"", qos=1)
        found: dict[str, bytes] = {}
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                async for message in messages:
                    topic = message.topic.value
                    if topic == marker:
                        break
                    if message.retain:
                        found[topic] = bytes(message.payload)
        except TimeoutError:
            log.warning("Home Assistant discovery: no answer from the broker; stale configs kept")
        await client.unsubscribe(self.topics.config_filter)
        await client.unsubscribe(marker)
        return found

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        _, changes = self._parts()
        while True:
            changed = await changes.take()
            await self._publish_states(client, changed)

    async def _publish_states(self, client: aiomqtt.Client, changed: Any) -> None:
        engine = self._engine_view()
        catalogue, _ = self._parts()
        table = engine.table
        touched = {d.id for d in catalogue.devices if np.isin(d.index, changed).any()}
        for device in catalogue.devices:
            if device.id in touched:
                bad = table.quality[device.index] >= 128
                state = device_state(
                    device.names,
                    table.values[device.index].tolist(),
                    bad.tolist(),
                    [p.data_type for p in device.points],
                )
                await self._put(client, self.topics.state(device.id), json.dumps(state))
                online = b"offline" if bad.all() else b"online"
                await self._put(client, self.topics.availability(device.id), online.decode())
            if device.id in self._alarm_devices:
                self._alarm_devices.discard(device.id)
                await self._put(client, self.topics.alarms(device.id), self._alarms_json(device))

    def _alarms_json(self, device: DeviceMetrics) -> str:
        status = self._engine_view().alarms.status
        return json.dumps(
            {a.name: alarm_state(status[a.alarm_id], a.priority) for a in device.alarms}
        )

    async def _put(self, client: aiomqtt.Client, topic: str, payload: str) -> None:
        """Publish a retained state if it differs from the last one published."""
        if self._last_state.get(topic) != payload:
            self._last_state[topic] = payload
            await client.publish(topic, payload, qos=0, retain=True)

    async def _commands(self, messages: Any) -> None:
        engine = self._engine_view()
        catalogue, _ = self._parts()
        principal = principal_for(self.ha.command_user, self.options.roles)
        async for message in messages:
            if message.topic.value != self.topics.acknowledge:
                continue
            alarm_id = bytes(message.payload).decode("utf-8", "replace").strip()
            if alarm_id not in catalogue.alarm_device:
                log.warning("Home Assistant: acknowledge of unknown alarm %r ignored", alarm_id)
                continue
            try:
                await engine.alarms.acknowledge(alarm_id, user=principal)
            except Exception as exc:
                log.warning(
                    "Home Assistant: acknowledge %s as %s refused: %s",
                    alarm_id,
                    principal.name or "nobody",
                    exc,
                )
        raise aiomqtt.MqttError("the broker connection's message stream ended")

    def _engine_view(self) -> EngineView:
        if self._engine is None:
            raise RuntimeError("the Home Assistant publisher is not started")
        return self._engine

    def _parts(self) -> tuple[Catalogue, Changes]:
        if self._catalogue is None or self._changes is None:
            raise RuntimeError("the Home Assistant publisher is not started")
        return self._catalogue, self._changes
