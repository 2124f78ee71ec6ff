"""The engine: polls devices into the value table, scans rules, drives alarms.

Tasks, all on one asyncio loop::

    services (sim, OPC UA …) started first, in ``order``
    one poll task per (device, poll group) ── driver.read ──► table ──► history, listeners
    one scan task ── rules over the whole table ──► findings ──► alarm manager
    one history task ── batched bulk inserts
    one counters task ── every minute, drivers' counters ──► store (device statistics)

The scan follows the poll: a poll that changes the table wakes the scan task,
which evaluates the rules in the same event-loop turn the poll task yields in,
so an alarm is raised one poll after its value changed at the device, plus
processing — not a poll and a scan interval later.

One task per device and group means a dead device waits out its own timeouts
and backoff without delaying anyone else's poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import writes
from .alarms import AlarmManager
from .auth import Principal
from .build import StartError, build_engine_parts
from .config import LoadedSite
from .drivers import DeviceDriver, DriverError
from .errors import PlantGuardError
from .history import HistoryWriter
from .host import PluginHost
from .model import Device, DeviceStatus, Finding, Point, Quality, Site
from .rules import Rule
from .services import Service, ValuesListener
from .store import Store
from .table import ValueTable

__all__ = ["Engine"]

log = logging.getLogger(__name__)

_BACKOFF_START = 1.0
_BACKOFF_MAX = 30.0
#: Scans take at most this share of the time: a scan that took ``t`` is followed by
#: the next one no sooner than ``t / _MAX_SCAN_DUTY`` after it began.
_MAX_SCAN_DUTY = 0.25
#: How often the drivers' counters (:meth:`DeviceDriver.counters`) are written to the store.
COUNTERS_INTERVAL = 60.0


@dataclass(slots=True)
class _PollJob:
    device: Device
    driver: DeviceDriver
    points: tuple[Point, ...]
    idx: npt.NDArray[np.intp]
    interval: float


class Engine:
    """Runs one site.  Build it, then ``await engine.run(stop_event)``.

    Building it takes the steps ``plantguard check`` takes
    (:func:`~plantguard.build.build_engine_parts`: rules, drivers not connected,
    services not started, alarm sinks), then opens the store's side: point keys,
    history writer, alarm manager with the restored alarm states.  A setting a
    plugin refuses raises :class:`~plantguard.config.ConfigError` before any of
    that; a service that cannot start raises :class:`~plantguard.build.StartError`
    from :meth:`run`.
    """

    def __init__(
        self,
        loaded: LoadedSite,
        host: PluginHost,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._loaded = loaded
        self._host = host
        self.store = store
        self._clock = clock
        self._site = loaded.site
        # Everything but the store, devices and ports: what `plantguard check` builds too.
        parts = build_engine_parts(loaded, host, store=store, clock=clock)
        for warning in parts.warnings:
            log.warning("%s", warning)
        self._table = parts.table
        keys = store.register_points(self._site.points)
        self._history = HistoryWriter(
            store,
            self._site.store,
            np.array([keys[p] for p in self._table.point_ids], dtype=np.int64),
            clock,
        )
        self.rules: list[Rule] = parts.rules
        self.comm, self.identity, self.fault = parts.comm, parts.identity, parts.fault
        self._alarms = AlarmManager(store, parts.alarms, users=store.users, clock=clock)
        # Alarms of devices under maintenance or retired are suppressed by design.
        self._alarms.set_maintenance(
            d.id
            for d in self._site.devices
            if d.info.status in (DeviceStatus.UNDER_MAINTENANCE, DeviceStatus.RETIRED)
        )
        # Plugins receive transitions through sinks; each is fed from its own task.
        self._sinks = parts.sinks
        for feed in self._sinks:
            self._alarms.subscribe(feed)
        self.drivers: dict[str, DeviceDriver] = parts.drivers
        self.services: dict[str, Service] = parts.services
        self._listeners: list[ValuesListener] = []
        self._connect_locks = {d: asyncio.Lock() for d in self.drivers}
        store.records.sync_site(self._site)
        # Until a device answers, its state is unknown (this also closes the interval a
        # crash left open, so downtime of the gateway is not counted as the device's).
        self._connection: dict[str, str] = dict.fromkeys(self.drivers, "unknown")
        store.records.record_connection(list(self.drivers), clock(), "unknown")
        self.ready = asyncio.Event()
        #: Set when new values are in the table, so the next scan need not wait.
        self._fresh_values = asyncio.Event()
        self._stopping = False
        self._started = clock()  # when run() began: the drivers' counters count from here
        self._counters_failed = False

    # --- EngineView -------------------------------------------------------------------

    @property
    def site(self) -> Site:
        return self._site

    @property
    def table(self) -> ValueTable:
        return self._table

    @property
    def alarms(self) -> AlarmManager:
        return self._alarms

    def on_values(self, listener: ValuesListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def write_point(self, point_id: str, value: float, principal: Principal) -> None:
        """Write a point on its device, if it is writable and ``principal`` may write.

        The one write path (OPC UA uses it): refusals raise a
        :class:`~plantguard.writes.WriteError`, a device failure a ``DriverError``;
        done or refused, the write is traced for the security rules.
        """
        index = self._table.index.get(point_id)
        if index is None:
            writes.trace(point_id, value, principal, "unknown point")
            raise writes.UnknownPoint(f"no point {point_id!r}")
        point = self._site.points[index]
        if point.access != "read_write":
            writes.trace(point_id, value, principal, "read-only")
            raise writes.NotWritable(f"point {point_id!r} is read-only (access: {point.access})")
        if not principal.may(writes.WRITE_ROLE):
            writes.trace(point_id, value, principal, "denied")
            who = principal.name if principal.authenticated else "an anonymous session"
            raise writes.WriteDenied(
                f"{who} may not write {point_id!r} ({writes.WRITE_ROLE.label} or above may)"
            )
        try:
            await self.drivers[point.device_id].write(point, value)
        except DriverError:
            writes.trace(point_id, value, principal, "device error")
            raise
        writes.trace(point_id, value, principal, "written")
        log.info("%s wrote %r to %s", principal.name, value, point_id)

    # --- running ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start services, poll and scan until ``stop`` is set, then shut down cleanly."""
        self._started = self._clock()
        started: list[Service] = []
        workers: list[asyncio.Task[None]] = []
        writer: asyncio.Task[None] | None = None
        try:
            for feed in self._sinks:
                feed.start()
            for name, service in self.services.items():
                await self._start(name, service)
                started.append(service)
                log.info("service %s started", name)
            workers = [
                asyncio.create_task(self._poll(job), name=f"poll {job.device.id}")
                for job in self._poll_jobs()
            ]
            workers.append(asyncio.create_task(self._scan(), name="scan"))
            workers.append(asyncio.create_task(self._counters(), name="counters"))
            writer = asyncio.create_task(self._history.run(), name="history")
            _freeze_start_up_objects()
            self.ready.set()
            stop_wait = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                [stop_wait, writer, *workers], return_when=asyncio.FIRST_COMPLETED
            )
            stop_wait.cancel()
            for task in done:
                if task is not stop_wait and (error := task.exception()) is not None:
                    raise error
        finally:
            await self._shutdown(workers, writer, started)

    async def _start(self, name: str, service: Service) -> None:
        """Start one service; a failure names the service in the site file."""
        try:
            await service.start(self)
        except PlantGuardError:
            raise  # says what failed already (a port in use, a device that does not answer)
        except Exception as exc:
            log.debug("service %s failed to start", name, exc_info=exc)
            issue = self._loaded.location.issue(("services", name), f"cannot start: {exc}")
            raise StartError([issue]) from exc

    async def _shutdown(
        self,
        workers: Sequence[asyncio.Task[None]],
        writer: asyncio.Task[None] | None,
        started: Sequence[Service],
    ) -> None:
        self._stopping = True
        gc.unfreeze()
        await _cancel(workers)
        # The writer is closed, not cancelled, so its last write completes before we go on.
        self._history.close()
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)
        await self._history.flush()  # in case the writer failed or never started
        for driver in self.drivers.values():
            await driver.close()
        await self.write_counters()
        self.store.records.record_connection(list(self.drivers), self._clock(), "unknown")
        for service in reversed(started):
            await service.stop()
        for feed in self._sinks:  # after the services: operators act through them
            await feed.stop()
        self._host.shutdown(self)  # every plugin's hook, even if one raises
        log.info("engine stopped; %d samples written", self._history.written)

    def _poll_jobs(self) -> list[_PollJob]:
        jobs = []
        for device in self._site.devices:
            groups: dict[str, list[Point]] = {}
            for point in device.points:
                groups.setdefault(self._site.poll_group_of(device, point), []).append(point)
            for group, pts in groups.items():
                jobs.append(
                    _PollJob(
                        device,
                        self.drivers[device.id],
                        tuple(pts),
                        self._table.indices([p.id for p in pts]),
                        self._site.poll_groups[group].interval,
                    )
                )
        return jobs

    async def _poll(self, job: _PollJob) -> None:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_START
        next_tick = loop.time()
        while not self._stopping:
            if not job.driver.connected:
                if not await self._connect(job):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                    next_tick = loop.time()
                    continue
                backoff = _BACKOFF_START
            try:
                result = await job.driver.read(job.points)
            except DriverError as exc:
                log.warning("device %s: read failed: %s", job.device.id, exc)
                self._set_connection(job.device.id, "offline")
                await self._mark(job, Quality.BAD_COMMUNICATION_ERROR)
            else:
                self._set_connection(job.device.id, "online")
                await self._store_values(job.idx, result.values, result.quality, result.source_time)
            next_tick += job.interval
            delay = next_tick - loop.time()
            if delay < 0:  # overran: skip missed ticks instead of bursting
                next_tick = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def _connect(self, job: _PollJob) -> bool:
        async with self._connect_locks[job.device.id]:
            if job.driver.connected:
                return True
            try:
                await job.driver.connect()
            except DriverError as exc:
                log.warning("device %s: cannot connect: %s", job.device.id, exc)
                self._set_connection(job.device.id, "offline")
                await self._mark(job, Quality.BAD_NOT_CONNECTED)
                return False
            await self.identity.check(job.device.id, job.driver, self._clock())
            return True

    def _set_connection(self, device_id: str, state: str) -> None:
        """Journal a device's connection state when it changes (statistics read it)."""
        if self._connection.get(device_id) != state:
            self._connection[device_id] = state
            self.store.records.record_connection([device_id], self._clock(), state)

    async def _mark(self, job: _PollJob, quality: Quality) -> None:
        """A device's points keep their last value with a Bad quality."""
        await self._publish(self._table.set_quality(job.idx, quality, self._clock()))

    async def _store_values(
        self,
        idx: npt.NDArray[np.intp],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        source_time: float | npt.NDArray[np.float64],
    ) -> None:
        await self._publish(self._table.update(idx, values, quality, source_time))

    async def _publish(self, changed: npt.NDArray[np.intp]) -> None:
        """Changed slots go to history and to the value listeners (OPC UA …)."""
        if changed.size == 0:
            return
        self._fresh_values.set()
        self._history.append(
            changed,
            self._table.values[changed],
            self._table.quality[changed],
            self._table.source_time[changed],
        )
        for listener in tuple(self._listeners):
            try:
                await listener(changed)
            except Exception:
                log.exception("value listener %r failed", listener)

    async def _scan(self) -> None:
        """Scan as soon as new values arrive, and at least every ``scan_interval``.

        A poll that changed the table sets ``_fresh_values``; the scan task wakes
        on it and evaluates the rules over the values that poll brought, so an
        alarm is raised in the cycle of the poll that brought its value
        (``tests/test_alarm_latency.py``), never a ``scan_interval`` later.  Rules
        count each sample once whatever the scan rate (they look at source times),
        so scanning sooner changes when they judge, not what.  The only spacing is
        the duty limit: scans take at most ``_MAX_SCAN_DUTY`` of the time, so a
        site whose many devices deliver values continuously coalesces them into
        fewer scans instead of scanning back to back (a 1 ms scan waits at most
        4 ms for the next poll's values; a 20 ms one 80 ms).
        """
        interval = self._site.scan_interval
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            self._fresh_values.clear()
            await self.scan_once()
            took = loop.time() - began
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fresh_values.wait(), interval - took)
            rest = min(interval, took / _MAX_SCAN_DUTY) - (loop.time() - began)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _counters(self) -> None:
        while True:
            await asyncio.sleep(COUNTERS_INTERVAL)
            await self.write_counters()

    async def write_counters(self) -> None:
        """Store each driver's counters (those that have any), off the event loop.

        Statistics only: a store that fails is logged (once, until it works again)
        and never stops the engine.
        """
        now = self._clock()

        def write(snapshot: dict[str, dict[str, int]]) -> None:
            for device_id, counters in snapshot.items():
                if counters:
                    self.store.records.record_counters(
                        device_id, counters, since=self._started, now=now
                    )

        try:
            snapshot = {device_id: dict(d.counters()) for device_id, d in self.drivers.items()}
            if any(snapshot.values()):
                await asyncio.to_thread(write, snapshot)
        except Exception as exc:
            if not self._counters_failed:
                log.error("cannot store the device counters (tried again every minute): %s", exc)
            self._counters_failed = True
        else:
            self._counters_failed = False

    async def scan_once(self) -> None:
        """Evaluate every rule over the table and apply the findings."""
        now = self._clock()
        findings: list[Finding] = []
        for rule in self.rules:
            try:
                findings.extend(rule.evaluate(self._table, now))
            except Exception:
                log.exception("rule %r failed; its alarms keep their state", rule)
        if findings:
            await self._alarms.apply_findings(findings)
        await self._alarms.tick(now)  # shelving expiry, suppression by design


def _freeze_start_up_objects() -> None:
    """Keep what start-up built out of the cyclic garbage collector's way.

    The site model, rules, alarm state and OPC UA structures live as long as the
    gateway.  Python's full collections would rescan all of them every time (at
    10,000 points they stopped the event loop for ~2 s every ~30 s, long enough
    for an OPC UA client to drop its session); frozen, they are never scanned.
    """
    gc.collect()
    gc.freeze()


async def _cancel(tasks: Sequence[asyncio.Task[None]], rounds: int = 5) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that swallowed it.

    A library that catches ``CancelledError`` deep inside a read (or the
    ``wait_for`` race of Python 3.11) can leave a task running after one
    ``cancel()``; shutdown must not hang on it.
    """
    pending = {t for t in tasks if not t.done()}
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in pending:
        log.error("task %s did not stop; leaving it behind", task.get_name())
    for task in tasks:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.error("task %s had failed: %s", task.get_name(), error)
