"""The MQTT device driver: values arrive as messages, the engine polls the latest.

Why it is shaped this way:

* The engine polls drivers (:meth:`read`), devices on MQTT push.  Messages are
  decoded as they arrive, in the broker client's callback, into plain Python
  lists (one slot per point: value, quality, source time, receive time); a poll
  turns the lists into arrays and marks Good values older than the point's
  ``stale_after`` Uncertain — the per-message path stays a dict lookup, a float
  or ``json.loads`` and four list stores.
* A device is *usable* while its broker is connected and it is alive: its Last
  Will, or a Sparkplug NDEATH/DDEATH, makes it unusable at once; a live value or
  a birth makes it usable again.  An unusable device reports
  ``connected = False``, so the engine marks its points Bad (not connected) and
  the comm-loss alarm rises, exactly as for a Modbus device whose socket broke.
* Bad input never stops the driver: a payload that is not JSON, a path that is
  not in it, a value that is not a number, an undecodable or out-of-sequence
  Sparkplug message make the points concerned Bad, with the reason in
  :attr:`faults` (the device-fault alarm names it) and in the log once per point
  (not per message), and a counter in :attr:`statistics` rises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
import pysparkplug as sp

from plantguard.plugin import (
    Device,
    DeviceDriver,
    DriverError,
    Point,
    ProbeReading,
    Quality,
    RawPoint,
    ReadResult,
)

from .broker import POOL, BrokerPool, BrokerSession, Handler
from .decode import NotANumber, as_number, as_time, plain_number
from .models import MqttAddress, MqttConnection
from .paths import JsonPath, PathMissing, extract, parse_path
from .sparkplug import NAMESPACE, command_payload, writable_type
from .spdata import Sample

__all__ = ["COUNTERS", "MqttDriver"]

log = logging.getLogger(__name__)

#: The device's statistics (:attr:`MqttDriver.statistics`), each a count since start.
COUNTERS = (
    "messages",  # messages received for the device's points (and births/data of its source)
    "values",  # point values taken from them
    "malformed",  # values or messages that could not be used, all reasons
    "not_json",  # a JSON point's payload is not JSON
    "no_value",  # the JSON path is not in the payload
    "not_a_number",  # the value is a string, null, an object, NaN …
    "bad_payload",  # a Sparkplug payload that does not decode (truncated protobuf …)
    "sequence_errors",  # a Sparkplug message out of the node's sequence
    "rebirth_requests",  # NCMD Node Control/Rebirth sent to the device's node
    "bad_timestamps",  # a payload timestamp that is no time (the receive time is used)
    "offline",  # times the device was marked offline (Last Will, NDEATH, DDEATH)
    "commands",  # writes published
)

_GOOD = int(Quality.GOOD)
_BAD = int(Quality.BAD)
_WAITING = int(Quality.BAD_WAITING_FOR_INITIAL_DATA)
_CONFIG = int(Quality.BAD_CONFIGURATION_ERROR)
_STALE = int(Quality.UNCERTAIN_LAST_USABLE)
_SEEN_LIMIT = 64


@dataclass(frozen=True, slots=True)
class _Entry:
    """One point as the message path needs it."""

    slot: int
    point_id: str
    path: JsonPath | None
    time_path: JsonPath | None
    scale: float
    offset: float


class MqttDriver(DeviceDriver):
    """One MQTT device: its points' topics (or Sparkplug metrics) on a shared broker client."""

    def __init__(
        self,
        device: Device,
        connection: MqttConnection,
        addresses: Mapping[str, MqttAddress],
        pool: BrokerPool = POOL,
    ) -> None:
        self.device = device
        self.connection = connection
        self.addresses = dict(addresses)
        self._pool = pool
        points = device.points
        n = len(points)
        self._slots = {p.id: i for i, p in enumerate(points)}
        self._values: list[float] = [math.nan] * n
        self._quality: list[int] = [_WAITING] * n
        self._times: list[float] = [0.0] * n
        self._received: list[float] = [-math.inf] * n
        self._stale = np.array(
            [self._stale_after(self.addresses.get(p.id)) for p in points], dtype=np.float64
        )
        #: Counts since start (:data:`COUNTERS`): the device's message statistics.
        self.statistics: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        #: Why points are Bad, by point id (read by the device-fault alarm).
        self.faults: dict[str, str] = {}
        self._alive = True
        self._why_down = ""
        self._session: BrokerSession | None = None
        self._usable = asyncio.Event()
        #: Tasks (the engine's poll of each poll group) told the device is down.
        self._told: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._probe_until: float | None = None
        self._seen: dict[int, tuple[Sequence[Point], npt.NDArray[np.intp]]] = {}
        self._routes, self._metrics = self._plan(points)

    def counters(self) -> Mapping[str, int]:
        """The device's :attr:`statistics`, a snapshot (the engine stores it every minute)."""
        return dict(self.statistics)

    def _stale_after(self, address: MqttAddress | None) -> float:
        if address is not None and address.stale_after is not None:
            return address.stale_after
        return self.connection.stale_after or math.inf

    def _plan(
        self, points: Sequence[Point]
    ) -> tuple[list[tuple[str, Handler]], dict[str, list[_Entry]]]:
        """Handlers by topic filter, and point entries by Sparkplug metric name."""
        by_topic: dict[str, list[_Entry]] = {}
        by_metric: dict[str, list[_Entry]] = {}
        default_time = self.connection.timestamp
        for slot, point in enumerate(points):
            address = self.addresses.get(point.id)
            if address is None:
                continue
            time_text = address.timestamp or default_time
            entry = _Entry(
                slot,
                point.id,
                address.path,
                parse_path(time_text) if time_text and address.path is not None else None,
                point.scale,
                point.offset,
            )
            if address.metric is not None:
                by_metric.setdefault(address.metric, []).append(entry)
            elif address.topic is not None:
                by_topic.setdefault(address.topic, []).append(entry)
        routes: list[tuple[str, Handler]] = []
        for topic, entries in by_topic.items():
            routes.append((topic, self._handler(entries)))
        if self.connection.will is not None:
            routes.append((self.connection.will.topic, self._on_will))
        return routes, by_metric

    def _handler(self, entries: list[_Entry]) -> Handler:
        if all(e.path is None for e in entries):

            def plain(topic: str, payload: bytes, retained: bool, now: float) -> None:
                self._on_plain(entries, topic, payload, retained, now)

            return plain

        def structured(topic: str, payload: bytes, retained: bool, now: float) -> None:
            self._on_json(entries, topic, payload, retained, now)

        return structured

    # --- state -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.connected and self._alive

    def broker_changed(self) -> None:
        """The shared client connected or lost the broker."""
        self._update_usable()

    def _update_usable(self) -> None:
        if self.connected:
            self._usable.set()
        else:
            self._usable.clear()

    def _set_alive(self, alive: bool, why: str) -> None:
        if alive == self._alive:
            return
        self._alive = alive
        if alive:
            log.info("mqtt device %s is back: %s", self.device.id, why)
        else:
            self._why_down = why
            self.statistics["offline"] += 1
            log.warning("mqtt device %s is offline: %s", self.device.id, why)
        self._update_usable()

    def _why_not(self) -> str:
        session = self._session
        broker = self.connection.broker.endpoint
        if session is None:
            return f"mqtt device {self.device.id!r} is not connected"
        if not session.connected:
            return f"mqtt broker {broker} not connected: {session.last_error}"
        return f"mqtt device {self.device.id!r} offline: {self._why_down}"

    # --- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Attach to the broker's shared client; fail while it or the device is down.

        The first failure raises at once (the engine marks the points Bad, not
        connected); the next call from the same task (the engine polls each poll
        group from its own) waits until the device is usable again, so it is seen
        back as soon as it is, whatever the engine's backoff.
        """
        if self._session is None:
            session = self._pool.acquire(self.connection.broker)
            source = self.connection.sparkplug
            session.attach(
                self,
                self._routes,
                self.connection.qos,
                (source, self) if source is not None else None,
            )
            self._session = session
            self._update_usable()
        session = self._session
        if not session.ever_connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    session.ever_connected.wait(), self.connection.broker.timeout
                )
        if self.connected:
            self._told.clear()
            return
        task = asyncio.current_task()
        if task is not None and task in self._told:
            await self._usable.wait()
            self._told.clear()
            return
        if task is not None:
            self._told.add(task)
        raise DriverError(self._why_not())

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await self._pool.release(session, self)
            except Exception:
                log.exception("mqtt device %s: closing its broker client failed", self.device.id)
        self._usable.clear()
        self._told.clear()
        self._probe_until = None

    # --- polls -------------------------------------------------------------------------

    async def read(self, points: Sequence[Point]) -> ReadResult:
        """The latest value of each point; Good ones older than ``stale_after`` Uncertain."""
        if not self.connected:
            raise DriverError(self._why_not())
        idx = self._indices(points)
        now = time.time()
        values = np.array(self._values, dtype=np.float64)[idx]
        quality = np.array(self._quality, dtype=np.uint8)[idx]
        times = np.array(self._times, dtype=np.float64)[idx]
        received = np.array(self._received, dtype=np.float64)[idx]
        stale = (quality == _GOOD) & (now - received > self._stale[idx])
        quality[stale] = _STALE
        # The engine stores a source time per point (ValueTable.update takes an array).
        return ReadResult(values, quality, times)

    async def probe(self, points: Sequence[Point]) -> ProbeReading:
        """Read ``points`` as :meth:`read` does, after waiting (at most the broker
        ``timeout``, for all of a probe's groups together) for a message for each:
        devices publish when they have something to say, not when asked."""
        if not self.connected:
            raise DriverError(self._why_not())
        loop = asyncio.get_running_loop()
        if self._probe_until is None:
            self._probe_until = loop.time() + self.connection.broker.timeout
        idx = self._indices(points).tolist()
        waiting = [i for i in idx if self._quality[i] == _WAITING]
        # Polled: an event set per message would cost the hot path for the probe's sake.
        while waiting and loop.time() < self._probe_until:
            await asyncio.sleep(0.05)
            waiting = [i for i in waiting if self._quality[i] == _WAITING]
        result = await self.read(points)
        raw = {
            point.id: self._raw_point(point, float(value))
            for point, value, quality in zip(
                points, result.values.tolist(), result.quality.tolist(), strict=True
            )
            if quality != _WAITING
        }
        return ProbeReading(result, raw)

    def _raw_point(self, point: Point, value: float) -> RawPoint:
        address = self.addresses[point.id]
        if address.metric is not None:
            where, kind = f"metric {address.metric}", "sparkplug"
        else:
            where = (
                f"{address.topic} {address.json_path}" if address.json_path else str(address.topic)
            )
            kind = "json" if address.json_path else "number"
        raw = (value - point.offset) / point.scale if point.scale else math.nan
        return RawPoint(where, kind, raw=raw)

    def _indices(self, points: Sequence[Point]) -> npt.NDArray[np.intp]:
        seen = self._seen.get(id(points))
        if seen is not None and seen[0] is points:
            return seen[1]
        try:
            idx = np.array([self._slots[p.id] for p in points], dtype=np.intp)
        except KeyError as exc:
            raise DriverError(f"point {exc} is not a point of {self.device.id!r}") from None
        if len(self._seen) < _SEEN_LIMIT:
            self._seen[id(points)] = (points, idx)
        return idx

    # --- messages ----------------------------------------------------------------------

    def _on_plain(
        self, entries: list[_Entry], topic: str, payload: bytes, retained: bool, now: float
    ) -> None:
        self.statistics["messages"] += 1
        if not (self._alive or retained):
            self._set_alive(True, f"a value on {topic}")
        try:
            raw = plain_number(payload)
        except NotANumber as exc:
            self._count("not_a_number")
            for entry in entries:
                self._fail(entry, _BAD, f"{topic}: {exc}", "", now)
            return
        for entry in entries:
            self._store(entry, raw, now, now)

    def _on_json(
        self, entries: list[_Entry], topic: str, payload: bytes, retained: bool, now: float
    ) -> None:
        self.statistics["messages"] += 1
        if not (self._alive or retained):
            self._set_alive(True, f"a value on {topic}")
        try:
            document = json.loads(payload)
        except ValueError as exc:
            why = f"{topic}: payload {payload[:40]!r} is not JSON ({exc})"
            self._count("not_json")  # once per message, whatever the points on it
            for entry in entries:
                self._fail(entry, _BAD, why, "", now)
            return
        time_path: JsonPath | None = None
        time_value = now
        for entry in entries:
            try:
                found = document if entry.path is None else extract(document, entry.path)
                raw = as_number(found)
            except PathMissing as exc:
                self._fail(entry, _CONFIG, f"{topic}: {exc}", "no_value", now)
                continue
            except NotANumber as exc:
                self._fail(entry, _BAD, f"{topic}: {exc}", "not_a_number", now)
                continue
            sent = now
            if entry.time_path is not None:
                if entry.time_path is not time_path:  # once per message, not per point
                    time_path = entry.time_path
                    time_value = self._source_time(document, time_path, topic, now)
                sent = time_value
            self._store(entry, raw, sent, now)

    def _source_time(self, document: object, path: JsonPath, topic: str, now: float) -> float:
        """The payload's time at ``path``; the receive time when it has none, or no time."""
        try:
            found = extract(document, path)
        except PathMissing:
            return now
        try:
            return as_time(found)
        except ValueError as exc:
            if self.statistics["bad_timestamps"] == 0:
                log.warning(
                    "mqtt device %s: %s: %s; the receive time is used",
                    self.device.id,
                    topic,
                    exc,
                )
            self.statistics["bad_timestamps"] += 1
            return now

    def _on_will(self, topic: str, payload: bytes, retained: bool, now: float) -> None:
        will = self.connection.will
        assert will is not None
        if payload == will.payload.encode():
            self._set_alive(False, f"last will {will.payload!r} on {topic}")
        else:
            self._set_alive(True, f"{payload[:40]!r} on {topic}")

    def _store(self, entry: _Entry, raw: float, sent: float, now: float) -> None:
        slot = entry.slot
        self._values[slot] = raw * entry.scale + entry.offset
        self._quality[slot] = _GOOD
        self._times[slot] = sent
        self._received[slot] = now
        self.statistics["values"] += 1
        if self.faults and entry.point_id in self.faults:
            del self.faults[entry.point_id]
            log.info("mqtt device %s: point %s is Good again", self.device.id, entry.point_id)

    def _fail(self, entry: _Entry, quality: int, reason: str, counter: str, now: float) -> None:
        """Point Bad with ``reason``: logged when it becomes Bad, counted every time."""
        if counter:
            self._count(counter)
        self._quality[entry.slot] = quality
        self._times[entry.slot] = now
        if entry.point_id not in self.faults:
            log.warning(
                "mqtt device %s: point %s is Bad: %s", self.device.id, entry.point_id, reason
            )
        self.faults[entry.point_id] = reason

    def _count(self, counter: str) -> None:
        """One more unusable message or value, of kind ``counter``."""
        self.statistics[counter] += 1
        self.statistics["malformed"] += 1

    # --- Sparkplug (called by the node tracker) ---------------------------------------

    def sparkplug_metrics(self, samples: Sequence[Sample], sent: float, now: float) -> None:
        """Values of a birth or data message: the per-metric loop of the Sparkplug path,
        so the common case (a finite number for one point) is stored inline."""
        self.statistics["messages"] += 1
        by_name = self._metrics
        values, quality, times, received = self._values, self._quality, self._times, self._received
        faults = self.faults
        taken = 0
        for name, raw, stamp in samples:
            entries = by_name.get(name) if name is not None else None
            if entries is None or raw is None:  # not mapped, or historical
                continue
            if isinstance(raw, str):
                why = f"Sparkplug metric {name!r}: {raw}"
                for entry in entries:
                    self._fail(entry, _BAD, why, "not_a_number", now)
                continue
            at = stamp / 1000.0 if stamp else sent
            for entry in entries:
                slot = entry.slot
                values[slot] = raw * entry.scale + entry.offset
                quality[slot] = _GOOD
                times[slot] = at
                received[slot] = now
                taken += 1
                if faults and entry.point_id in faults:
                    del faults[entry.point_id]
                    log.info(
                        "mqtt device %s: point %s is Good again", self.device.id, entry.point_id
                    )
        self.statistics["values"] += taken

    def sparkplug_alive(self, alive: bool, why: str) -> None:
        self._set_alive(alive, why)

    def sparkplug_fault(
        self, counter: str, reason: str, names: Sequence[str] | None, now: float
    ) -> None:
        if names is None:
            entries = [e for group in self._metrics.values() for e in group]
            if counter:
                self._count(counter)
            for entry in entries:
                self._fail(entry, _BAD, reason, "", now)
            return
        if not counter:
            self.statistics["malformed"] += 1
        for name in names:
            for entry in self._metrics.get(name, ()):
                self._fail(entry, _BAD, reason, counter, now)

    def sparkplug_count(self, counter: str) -> None:
        self.statistics[counter] += 1

    # --- writes ------------------------------------------------------------------------

    async def write(self, point: Point, value: float) -> None:
        """Publish ``value`` (engineering units) to the point's command topic, or as a
        Sparkplug NCMD/DCMD of its metric.

        Reached only through the engine's write path (role-checked, traced).
        """
        address = self.addresses.get(point.id)
        where = f"{point.id!r} of {self.device.id!r}"
        if address is None:
            raise DriverError(f"point {where} has no MQTT address")
        if point.access != "read_write":
            raise DriverError(f"point {where} is read-only (access: {point.access})")
        if point.scale == 0:
            raise DriverError(f"point {where} has scale 0; its raw value is undefined")
        raw = (value - point.offset) / point.scale
        if not math.isfinite(raw):
            raise DriverError(f"cannot write {value} to {where}: not a finite number")
        session = self._session
        if session is None or not session.connected:
            raise DriverError(self._why_not())
        topic, payload, qos = self._command(address, point, raw, session)
        try:
            await session.publish(topic, payload, qos, retain=address.retain)
        except aiomqtt.MqttError as exc:
            raise DriverError(f"cannot publish the write of {where} to {topic}: {exc}") from exc
        self.statistics["commands"] += 1
        log.info("mqtt device %s: wrote %g to %s (%s)", self.device.id, value, point.id, topic)

    def _command(
        self, address: MqttAddress, point: Point, raw: float, session: BrokerSession
    ) -> tuple[str, bytes, int]:
        source = self.connection.sparkplug
        if address.metric is None or source is None:
            assert address.command_topic is not None  # checked when the driver was made
            text = address.command.replace("{value}", _format(raw, point.data_type))
            return address.command_topic, text.encode(), self.connection.qos
        datatype = session.sparkplug_datatype(source, address.metric) or _DATATYPE[point.data_type]
        if not writable_type(datatype):
            raise DriverError(
                f"Sparkplug metric {address.metric!r} of {self.device.id!r} is a "
                f"{datatype.name}: not writable as a number"
            )
        if source.device is None:
            topic = f"{NAMESPACE}/{source.group}/NCMD/{source.node}"
        else:
            topic = f"{NAMESPACE}/{source.group}/DCMD/{source.node}/{source.device}"
        payload = command_payload(source.device is not None, address.metric, datatype, raw)
        return topic, payload, 0  # Sparkplug B: commands are QoS 0


_DATATYPE: dict[str, sp.DataType] = {
    "float": sp.DataType.DOUBLE,
    "int": sp.DataType.INT64,
    "bool": sp.DataType.BOOLEAN,
}


def _format(raw: float, data_type: str) -> str:
    """The number as a device expects it: integers without a decimal point."""
    if data_type in ("int", "bool") or raw.is_integer():
        return str(round(raw))
    return repr(raw)
