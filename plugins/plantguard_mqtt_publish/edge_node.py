"""The gateway as a Sparkplug B edge node.

Per connection: the Will is an NDEATH with a new bdSeq; once connected the node
subscribes to its NCMD and DCMD topics, publishes NBIRTH (seq 0, the same bdSeq)
and a DBIRTH per device, forwards from the history store what the broker missed
while it was away (flagged ``is_historical``), then reports by exception: DDATA
of points that moved past their deadband or changed quality, and of alarms whose
state changed.  ``Node Control/Rebirth`` by NCMD republishes the births; a DCMD
acknowledges alarms (``Alarms/<alarm>/Acknowledge``) or writes points, as the
broker user it names, through the alarm manager and the engine's write path.

Publishing takes turns (a lock): the live reports and, after an outage, the
forwarding of stored samples each number their messages and hand them to the
client within one turn, so every message's ``seq`` is the order the broker receives
them in.  A further task reads commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
from pysparkplug import DCmd, NCmd

from plantguard.plugin import EngineView, Quality, Transition

from . import payloads
from .catalogue import ACK_COMMAND, USER_METRIC, Catalogue, DeviceMetrics, build_catalogue
from .changes import Changes
from .connection import first_failure, make_client, run_connected, stop_connection
from .options import MqttPublishOptions, SparkplugOptions
from .principals import principal_for

__all__ = ["EdgeNode"]

log = logging.getLogger("plantguard.mqtt_publish.sparkplug")

NAMESPACE = "spBv1.0"
#: Metrics in one store-and-forward DDATA.
FORWARD_CHUNK = 500
#: DDATA messages handed to the client before waiting for the socket.
PUBLISH_BATCH = 10


class EdgeNode:
    def __init__(self, options: MqttPublishOptions, sparkplug: SparkplugOptions) -> None:
        self.options = options
        self.sparkplug = sparkplug
        self.node_id = sparkplug.edge_node_id
        self.bd_seq = -1
        #: Messages published since start (births, data), for statistics and tests.
        self.published = 0
        self._seq = 0
        self._engine: EngineView | None = None
        self._catalogue: Catalogue | None = None
        self._changes: Changes | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._rebirth = False
        #: Alarms whose state changed since the last report (read from the engine when
        #: reported: the sink hears every engine of the process).
        self._alarm_pending: set[str] = set()
        self._offline_since: float | None = None
        self._birth_time = 0.0
        self._device_of: npt.NDArray[np.intp] = np.empty(0, np.intp)
        self._position: npt.NDArray[np.intp] = np.empty(0, np.intp)
        self._deadband: npt.NDArray[np.float64] = np.empty(0)
        self._last_value: npt.NDArray[np.float64] = np.empty(0)
        self._last_quality: npt.NDArray[np.uint8] = np.empty(0, np.uint8)
        self._names: dict[str, dict[int, str]] = {}
        self._client: aiomqtt.Client | None = None
        #: Held while numbering messages and handing them to the client (see above).
        self._order = asyncio.Lock()
        #: The node is connected but waits for its primary host application.
        self.waiting_for_host = False
        #: Devices announced dead (DDEATH) since the last birth.
        self._dead: set[str] = set()

    # --- topics ---------------------------------------------------------------------

    def topic(self, kind: str, device_id: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.sparkplug.group_id}/{kind}/{self.node_id}"
        return base if device_id is None else f"{base}/{device_id}"

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, engine: EngineView) -> None:
        self._engine = engine
        self.node_id = self.sparkplug.edge_node_id or engine.site.id
        unknown = sorted(set(self.sparkplug.deadbands) - set(engine.table.index))
        if unknown:
            raise ValueError(f"sparkplug.deadbands names {unknown[0]!r}, not a point of this site")
        catalogue = build_catalogue(
            engine.site,
            engine.table.index,
            engine.alarms.definitions.values(),
            deadband=self.sparkplug.deadband,
            deadbands=self.sparkplug.deadbands,
        )
        self._catalogue = catalogue
        n = len(engine.table)
        self._device_of = np.full(n, -1, np.intp)
        self._position = np.zeros(n, np.intp)
        self._deadband = np.zeros(n)
        for k, device in enumerate(catalogue.devices):
            self._device_of[device.index] = k
            self._position[device.index] = np.arange(device.index.size)
            self._deadband[device.index] = device.deadband
            self._names[device.id] = _alias_names(device)
        self._last_value = np.full(n, np.nan)
        self._last_quality = np.full(n, 255, np.uint8)
        self._changes = Changes(n)
        self._unsubscribe = engine.on_values(self._changes)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_connected(
                self.options.broker,
                self._connect,
                self._session,
                on_lost=self._lost,
                what=f"Sparkplug edge node {self.node_id}",
                stop=self._stop,
            ),
            name=f"sparkplug {self.node_id}",
        )

    async def stop(self) -> None:
        """Publish the NDEATH (a clean disconnect sends no Will), then disconnect."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                death = payloads.node_death(self.bd_seq)
                await self._client.publish(self.topic("NDEATH"), death, qos=1, timeout=2.0)
        if self._task is not None:
            await stop_connection(
                self._task,
                self._stop,
                self.options.broker,
                what=f"Sparkplug edge node {self.node_id}",
            )
            self._task = None

    def on_transition(self, transition: Transition) -> None:
        """An alarm changed (from the plugin's alarm sink): report it with the next DDATA."""
        if self._catalogue is None or self._changes is None:
            return
        if transition.alarm_id in self._catalogue.alarm_device:
            self._alarm_pending.add(transition.alarm_id)
            self._changes.poke()

    # --- connection -----------------------------------------------------------------

    def _connect(self) -> aiomqtt.Client:
        self.bd_seq = (self.bd_seq + 1) % 256
        will = aiomqtt.Will(self.topic("NDEATH"), payloads.node_death(self.bd_seq), qos=1)
        client_id = f"plantguard-spb-{self.sparkplug.group_id}-{self.node_id}"
        return make_client(self.options.broker, client_id, will)

    def _lost(self) -> None:
        if self._offline_since is None:
            # Loss is noticed up to 1.5 keep-alives late; what was sent meanwhile may be gone.
            noticed = time.time() - 1.5 * self.options.broker.keepalive
            self._offline_since = max(noticed, self._birth_time)

    @property
    def state_topic(self) -> str | None:
        """The primary host application's STATE topic, if the node waits for one."""
        host = self.sparkplug.primary_host_id
        return None if host is None else f"{NAMESPACE}/STATE/{host}"

    async def _session(self, client: aiomqtt.Client) -> None:
        async with client.messages() as messages:
            if self.state_topic is not None:
                await client.subscribe(self.state_topic, qos=1)
                await self._host_online(messages)
            await client.subscribe(self.topic("NCMD"), qos=1)
            await client.subscribe(self.topic("DCMD") + "/+", qos=1)
            await self._births(client)
            tasks = [self._publish_loop(client), self._commands(messages)]
            if self._offline_since is not None:
                since, self._offline_since = self._offline_since, None
                tasks.append(self._forward(client, since, self._birth_time))
            self._client = client
            try:
                await first_failure(tasks)
            finally:
                self._client = None

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        await client.publish(topic, payload, qos=0)
        self.published += 1

    async def _publish_batch(
        self, client: aiomqtt.Client, messages: list[tuple[str, bytes]]
    ) -> None:
        """Publish several messages, waiting for the socket once for all of them rather
        than once each.  The client hands them to the socket in the order given (each
        publish's first step, in task start order), so ``seq`` order is kept."""
        if not messages:
            return
        results = await asyncio.gather(
            *(client.publish(topic, payload, qos=0) for topic, payload in messages),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.published += len(messages)

    # --- births -----------------------------------------------------------------------

    async def _births(self, client: aiomqtt.Client) -> None:
        engine, catalogue, changes = self._parts()
        table = engine.table
        values, quality = table.values.copy(), table.quality.copy()
        statuses = dict(engine.alarms.status)
        changes.clear()
        self._alarm_pending.clear()
        self._last_value[:] = values
        self._last_quality[:] = quality
        now = time.time()
        self._birth_time = now
        stamp = payloads.millis(now)
        self._seq = 0
        site = engine.site
        birth = payloads.node_birth(self.bd_seq, self._next_seq(), stamp, site.name or site.id)
        await self._publish(client, self.topic("NBIRTH"), birth)
        for device in catalogue.devices:
            payload = payloads.device_birth(
                device,
                values[device.index],
                quality[device.index],
                statuses,
                seq=self._next_seq(),
                timestamp_ms=stamp,
            )
            await self._publish(client, self.topic("DBIRTH", device.id), payload)
        self._dead = set()
        for device in catalogue.devices:
            if _link_lost(quality[device.index]):
                self._dead.add(device.id)
                death = payloads.device_death(self._next_seq(), stamp)
                await self._publish(client, self.topic("DDEATH", device.id), death)
        log.info(
            "Sparkplug edge node %s/%s born (bdSeq %d, %d devices)",
            self.sparkplug.group_id,
            self.node_id,
            self.bd_seq,
            len(catalogue.devices),
        )

    # --- report by exception ----------------------------------------------------------

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        _, _, changes = self._parts()
        while True:
            changed = await changes.take()
            async with self._order:
                if self._rebirth:
                    self._rebirth = False
                    await self._births(client)
                    continue
                await self.publish_values(client, changed)
                await self._publish_alarms(client)

    async def publish_values(self, client: aiomqtt.Client, changed: npt.NDArray[np.intp]) -> int:
        """DDATA for the points among ``changed`` past their deadband or with a new
        quality, one message per device; return the number of metrics sent."""
        engine, catalogue, _ = self._parts()
        if changed.size == 0:
            return 0
        skip = await self._deaths_and_rebirths(client, changed)
        if skip:
            changed = changed[~np.isin(self._device_of[changed], list(skip))]
        table = engine.table
        value, quality = table.values[changed], table.quality[changed]
        last_value, last_quality = self._last_value[changed], self._last_quality[changed]
        new_quality = quality != last_quality
        with np.errstate(invalid="ignore"):
            moved = np.abs(value - last_value) > self._deadband[changed]
        send = new_quality | (np.isnan(value) != np.isnan(last_value)) | moved
        send &= self._device_of[changed] >= 0
        if not send.any():
            return 0
        selected = changed[send]
        value, quality, new_quality = value[send], quality[send], new_quality[send]
        self._last_value[selected] = value
        self._last_quality[selected] = quality
        times = np.rint(table.source_time[selected] * 1000.0).astype(np.int64)
        devices = self._device_of[selected]
        stamp = payloads.millis(time.time())
        starts = np.concatenate(([0], np.flatnonzero(np.diff(devices)) + 1, [selected.size]))
        batch: list[tuple[str, bytes]] = []
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            device = catalogue.devices[int(devices[a])]
            payload = payloads.device_data(
                device,
                self._position[selected[a:b]],
                value[a:b],
                quality[a:b],
                times[a:b],
                seq=self._next_seq(),
                timestamp_ms=stamp,
                with_quality=new_quality[a:b],
            )
            batch.append((self.topic("DDATA", device.id), payload))
            if len(batch) == PUBLISH_BATCH:
                await self._publish_batch(client, batch)
                batch = []
        await self._publish_batch(client, batch)
        return int(selected.size)

    async def _deaths_and_rebirths(
        self, client: aiomqtt.Client, changed: npt.NDArray[np.intp]
    ) -> set[int]:
        """DDEATH for each device among ``changed`` whose every point lost its link
        (communication error, not connected); DBIRTH for each such device that is back.
        Return the devices whose points are not to go out as DDATA now."""
        engine, catalogue, _ = self._parts()
        skip: set[int] = set()
        for k in np.unique(self._device_of[changed]).tolist():
            if k < 0:
                continue
            device = catalogue.devices[k]
            dead = _link_lost(engine.table.quality[device.index])
            if dead and device.id not in self._dead:
                self._dead.add(device.id)
                death = payloads.device_death(self._next_seq(), payloads.millis(time.time()))
                await self._publish(client, self.topic("DDEATH", device.id), death)
            elif not dead and device.id in self._dead:
                self._dead.discard(device.id)
                await self._device_birth(client, device)
            else:
                continue
            skip.add(k)
        return skip

    async def _device_birth(self, client: aiomqtt.Client, device: DeviceMetrics) -> None:
        engine, _, _ = self._parts()
        values = engine.table.values[device.index].copy()
        quality = engine.table.quality[device.index].copy()
        self._last_value[device.index] = values
        self._last_quality[device.index] = quality
        payload = payloads.device_birth(
            device,
            values,
            quality,
            dict(engine.alarms.status),
            seq=self._next_seq(),
            timestamp_ms=payloads.millis(time.time()),
        )
        await self._publish(client, self.topic("DBIRTH", device.id), payload)

    async def _publish_alarms(self, client: aiomqtt.Client) -> None:
        engine, catalogue, _ = self._parts()
        if not self._alarm_pending:
            return
        pending, self._alarm_pending = self._alarm_pending, set()
        by_device: dict[str, list[tuple[Any, Any]]] = {}
        for alarm_id in sorted(pending):
            status = engine.alarms.status[alarm_id]
            device = catalogue.alarm_device[alarm_id]
            if device.id in self._dead:
                continue  # its next DBIRTH carries the alarm states
            alarm = next(a for a in device.alarms if a.alarm_id == alarm_id)
            by_device.setdefault(device.id, []).append((alarm, status))
        stamp = payloads.millis(time.time())
        for device_id, changes in by_device.items():
            payload = payloads.alarm_data(changes, self._next_seq(), stamp)
            await self._publish(client, self.topic("DDATA", device_id), payload)

    # --- store and forward ------------------------------------------------------------

    async def _forward(self, client: aiomqtt.Client, since: float, until: float) -> None:
        """Publish, flagged historical and in time order per device, the samples the
        history store holds from ``since`` to ``until`` (the new birth), at most
        ``store_forward.max_samples`` of the newest."""
        engine, catalogue, _ = self._parts()
        limit = self.sparkplug.store_forward.max_samples
        if engine.store is None or limit == 0 or until <= since:
            return
        # Samples reach the store at its flush interval: wait for those taken before the birth.
        await asyncio.sleep(engine.site.store.history.flush_interval + 0.5)
        try:
            rows = await asyncio.to_thread(_read_history, engine, catalogue, since, until, limit)
        except Exception:  # the store is away too: the live data goes on without the gap
            log.exception("store and forward: cannot read history from the store")
            return
        stamp = payloads.millis(time.time())
        sent = 0
        for device, (positions, times, values, quality) in rows:
            for a in range(0, positions.size, FORWARD_CHUNK):
                b = a + FORWARD_CHUNK
                async with self._order:
                    payload = payloads.device_data(
                        device,
                        positions[a:b],
                        values[a:b],
                        quality[a:b],
                        times[a:b],
                        seq=self._next_seq(),
                        timestamp_ms=stamp,
                        historical=True,
                    )
                    await self._publish(client, self.topic("DDATA", device.id), payload)
                sent += min(b, positions.size) - a
        log.info("Sparkplug edge node %s: forwarded %d stored samples", self.node_id, sent)

    # --- commands -----------------------------------------------------------------------

    async def _host_online(self, messages: Any) -> None:
        """Wait until the primary host application says it is online (Sparkplug 3.0:
        no NBIRTH before that); the time waited counts as an outage to forward."""
        self.waiting_for_host = True
        waiting_since = time.time()
        async for message in messages:
            if message.topic.value == self.state_topic and _host_state(message.payload):
                break
        else:
            raise aiomqtt.MqttError("the broker connection's message stream ended")
        self.waiting_for_host = False
        if self._offline_since is None and time.time() - waiting_since > 1.0:
            self._offline_since = waiting_since

    async def _host_gone(self, client: aiomqtt.Client) -> None:
        """The primary host went offline: NDEATH, then disconnect (by raising) and wait
        for it again on a new connection; samples meanwhile are forwarded later."""
        log.warning("Sparkplug edge node %s: primary host application offline", self.node_id)
        if self._offline_since is None:
            self._offline_since = time.time()
        death = payloads.node_death(self.bd_seq)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(self.topic("NDEATH"), death, qos=1, timeout=2.0)
        raise aiomqtt.MqttError("primary host application offline")

    async def _commands(self, messages: Any) -> None:
        async for message in messages:
            topic = message.topic.value
            raw = bytes(message.payload)
            parts = topic.split("/")
            if topic == self.state_topic:
                if _host_state(raw) is False and self._client is not None:
                    await self._host_gone(self._client)
                continue
            try:
                if len(parts) == 4 and parts[2] == "NCMD":
                    self._node_command(raw)
                elif len(parts) == 5 and parts[2] == "DCMD":
                    await self._device_command(parts[4], raw)
            except Exception as exc:  # a bad command never stops the node
                log.warning("Sparkplug command on %s ignored: %s", topic, exc)
        raise aiomqtt.MqttError("the broker connection's message stream ended")

    def _node_command(self, raw: bytes) -> None:
        command = NCmd.decode(raw)
        names = {1: payloads.BD_SEQ, 2: payloads.REBIRTH}
        for metric in command.metrics:
            name = metric.name or names.get(metric.alias or 0, "")
            if name == payloads.REBIRTH and metric.value:
                log.info("Sparkplug edge node %s: rebirth requested", self.node_id)
                self._rebirth = True
                self._parts()[2].poke()

    async def _device_command(self, device_id: str, raw: bytes) -> None:
        engine, catalogue, _ = self._parts()
        device = catalogue.by_id.get(device_id)
        if device is None:
            raise ValueError(f"no device {device_id!r} on this node")
        names = self._names[device_id]
        command = DCmd.decode(raw)
        metrics = [(m.name or names.get(m.alias or 0, ""), m.value) for m in command.metrics]
        user = next((str(v) for n, v in metrics if n == USER_METRIC and v is not None), "")
        principal = principal_for(user, self.options.roles)
        points = dict(zip(device.names, device.points, strict=True))
        for name, value in metrics:
            if name.startswith("Alarms/") and name.endswith(f"/{ACK_COMMAND}") and value:
                alarm = device.alarm_by_name.get(name[len("Alarms/") : -len(ACK_COMMAND) - 1])
                if alarm is None:
                    raise ValueError(f"no alarm metric {name!r} on device {device_id}")
                await _refusal_logged(
                    engine.alarms.acknowledge(alarm.alarm_id, user=principal),
                    f"acknowledge {alarm.alarm_id} as {user or 'nobody'}",
                )
            elif name in points and isinstance(value, int | float):
                await _refusal_logged(
                    engine.write_point(points[name].id, float(value), principal),
                    f"write {points[name].id} as {user or 'nobody'}",
                )

    # ---------------------------------------------------------------------------------

    def _parts(self) -> tuple[EngineView, Catalogue, Changes]:
        if self._engine is None or self._catalogue is None or self._changes is None:
            raise RuntimeError("the edge node is not started")
        return self._engine, self._catalogue, self._changes


#: Qualities that say the device cannot be reached (its comm-loss alarm's cause).
_LINK_LOST = np.array([int(Quality.BAD_COMMUNICATION_ERROR), int(Quality.BAD_NOT_CONNECTED)])


def _link_lost(quality: npt.NDArray[np.uint8]) -> bool:
    """Every point of a device lost its link: the device is dead to Sparkplug hosts."""
    return bool(quality.size) and bool(np.isin(quality, _LINK_LOST).all())


def _host_state(payload: object) -> bool | None:
    """``online`` of a Sparkplug 3.0 STATE payload (JSON); None if it is not one."""
    try:
        state = json.loads(bytes(payload))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        log.warning("Sparkplug STATE message that is not JSON ignored")
        return None
    online = state.get("online") if isinstance(state, dict) else None
    return online if isinstance(online, bool) else None


def _alias_names(device: DeviceMetrics) -> dict[int, str]:
    """Alias → name of the metrics a host may command (hosts may send aliases only)."""
    names = {int(a): n for a, n in zip(device.aliases.tolist(), device.names, strict=True)}
    for alarm in device.alarms:
        names[alarm.aliases[-1]] = f"Alarms/{alarm.name}/{ACK_COMMAND}"
    names[device.user_alias] = USER_METRIC
    return names


async def _refusal_logged(action: Coroutine[Any, Any, object], what: str) -> None:
    """Run an operator action from MQTT; a refusal (role, state) is logged, not raised."""
    try:
        await action
    except Exception as exc:
        log.warning("Sparkplug DCMD: %s refused: %s", what, exc)
    else:
        log.info("Sparkplug DCMD: %s", what)


def _read_history(
    engine: EngineView, catalogue: Catalogue, since: float, until: float, limit: int
) -> list[
    tuple[
        DeviceMetrics,
        tuple[
            npt.NDArray[np.intp],
            npt.NDArray[np.int64],
            npt.NDArray[np.float64],
            npt.NDArray[np.uint8],
        ],
    ]
]:
    """Per device, its points' stored samples in ``[since, until)`` in time order,
    the newest ``limit`` over the whole node."""
    store = engine.store
    assert store is not None
    columns: list[tuple[int, int, Any]] = []
    for k, device in enumerate(catalogue.devices):
        for slot, point in enumerate(device.points):
            trend = store.trend(point.id, since, until)
            if len(trend):
                columns.append((k, slot, trend))
    if not columns:
        return []
    device_of = np.concatenate([np.full(len(t), k, np.intp) for k, _, t in columns])
    position = np.concatenate([np.full(len(t), p, np.intp) for _, p, t in columns])
    times = np.concatenate([t.time for _, _, t in columns])
    values = np.concatenate([t.value for _, _, t in columns])
    quality = np.concatenate([t.quality for _, _, t in columns])
    order = np.argsort(times, kind="stable")[-limit:]
    if times.size > limit:
        log.warning("store and forward: %d samples, forwarding the newest %d", times.size, limit)
    result = []
    for k, device in enumerate(catalogue.devices):
        mine = order[device_of[order] == k]
        if mine.size:
            stamps = np.rint(times[mine] * 1000.0).astype(np.int64)
            result.append((device, (position[mine], stamps, values[mine], quality[mine])))
    return result
