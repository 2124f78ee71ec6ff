"""OPC UA benchmark: PlantGuard's gateway side by side with a plain asyncua server.

Every figure is measured twice in the same run: for PlantGuard and for the floor
under it, a plain ``asyncua`` server of the same size (Double variables, 100 per
folder, added in batches).  The two sides alternate (A B, B A, A B …) and each
measurement is repeated (``--repeats``, default 3); tables show min / median / max
over the repeats.  The machine is shared, so read the *ratio* between the sides
of one run, not an absolute number, and compare runs only side by side.

What is measured
================

1. **Start-up and memory** (``startup``), per size in ``--sizes``.  PlantGuard: the
   real CLI, ``plantguard run SITE.yaml --db X``, in a subprocess; the clock runs
   from the moment the process is started until a real asyncua ``Client`` connects
   to the endpoint; then the process's RSS (``VmRSS``; ``VmHWM`` is the peak so far)
   is read from ``/proc``.  The site has 100 devices of N/100 points (unit and
   range on every point, a limit alarm on every tenth), shaped like
   ``bench/scale_bench.py``'s; the devices' Modbus address 127.0.0.1:1 refuses,
   so points go Bad quality, as intended.  Plain: ``python bench/opcua_bench.py
   --serve-plain N`` (imports asyncua only), the same clock and RSS.
2. **Event-loop stalls** (``stalls``), at ``--points``: the server runs in a
   process of this bench (PlantGuard: the whole gateway, ``Engine.run`` with its
   services, rule scan and history writer, its devices reading a Modbus server in
   that process once and then quiet for an hour; see "How PlantGuard is driven"),
   every point gets a new value once a second (a random walk inside the limits: no
   alarm transitions), and one client in another process, with asyncua's default
   client settings (1 s watchdog), is subscribed to every point.  A probe task in the server process sleeps
   10 ms in a loop and records how late it wakes; ``gc.callbacks`` record every
   collection.  ``--stall-seconds`` of observation per side, split into
   ``--repeats`` segments (a fresh server each).  A client that loses its
   connection is counted and reconnects.
3. **Subscription throughput** (``throughput``), at ``--points``, on one server
   per side and repeat:
   (a) *paced*: every point changes once a second for ``--paced-seconds``; one
   client subscribed to all (``--publish-ms``, ``--queue-size``) counts the
   notifications per item against the changes made (``delivered`` 100 % = every
   change arrived), and the delay from a value's source timestamp to its arrival;
   a second connection reads ``--read-nodes`` point values every
   ``--read-interval`` s (Read latency p50/p99).
   (b) *saturated*: all points change as fast as the server can write them, for
   ``--saturated-seconds``; changes/s made and notifications/s received.
   (c) *fan-out*: ``--fanout-clients`` clients each subscribed to all points, 1 Hz
   for ``--fanout-seconds``; delivered per client (the table shows the worst).
   Clients are separate processes, so their CPU shares the machine's second core,
   not the server's event loop (with 10 clients they compete with the server for
   the two cores: that is part of the figure).
4. **Alarm latency** (``alarms``, PlantGuard only): the full engine
   (``Engine.run``) polls a real Modbus server
   (``python -m plantguard_modbus.testserver``) every ``--poll-interval`` s; a client
   process writes a float32 above a point's HH limit with function 16 and times the
   alarm event (subscribed on the Server object, i=2253); ``--alarm-activations``
   activations, each followed by its return to normal.  The latency includes up to
   one poll interval and one scan interval by design: both are reported alongside.
5. **HistoryRead** (``history``): a day of one-second samples of one point
   (86,400 rows) in the gateway's store; alternately ``Store.trend`` of that range
   in the gateway process and a client's ``read_raw_history`` of it (continuation
   points followed).  Where ``plantguard_opcua.history`` does not exist (code from
   before it), only ``Store.trend`` is measured and HistoryRead is marked as not
   available.

How PlantGuard is driven: each round is what a driver read does, ``table.update``
of the block and then the engine's ``_publish`` of the changed slots (history
writer and every values listener, OPC UA's among them).  The gateway is started
with ``Engine.run`` so whatever the engine does at start (e.g. keeping start-up
objects away from the garbage collector) is in the figures.

Results go to ``bench/results/opcua.json`` (``--output``), with a markdown summary
printed and written beside it.  Everything binds to 127.0.0.1; every process the
bench starts is stopped by it, by PID.

    python bench/opcua_bench.py                       # full run (see below for how long)
    python bench/opcua_bench.py --quick               # 10k only, 120 s of stalls, shorter phases

How long: with the view-based gateway (Nov 2026) a ``--quick`` run took ~18 min here
(start-up 1 min, stalls 6, throughput 10.5); the full run is dominated by the stall
test (``--stall-seconds`` per side, 600 by default: ~21 min), throughput takes ~14 min
and start-up up to 100,000 points ~5, so ~40–45 min in all; ``--stall-seconds 300``
saves ~10 of them.  A slow gateway takes longer (its start-ups, its stalled clients).
    python bench/opcua_bench.py --only startup --sizes 10000 50000 --size-repeats 50000=1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, OpcEvent, StatusChangeEvent
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from plantguard.engine import Engine
    from plantguard.model import Site
    from plantguard.store import Store

RESULTS = Path(__file__).with_name("results") / "opcua.json"
HOST = "127.0.0.1"
PG_NS = "urn:plantguard"
PLAIN_NS = "urn:opcua-bench:plain"
PLANTGUARD, PLAIN = "plantguard", "plain"
TESTS = ("startup", "stalls", "throughput", "alarms", "history")
PHASES = ("paced", "saturated", "fanout")
#: Values of the random walk stay inside the site's limits (h=80): no alarm transitions.
WALK_LOW, WALK_HIGH, WALK_STEP = 10.0, 70.0, 0.5
#: Server writes between yields to the event loop (the value PlantGuard's publisher uses).
YIELD_EVERY = 2000
#: Probe period of the event-loop stall probe.
PROBE_INTERVAL = 0.01

Json = dict[str, Any]


def numeric(identifier: int) -> ua.NodeId:
    """A namespace-0 numeric NodeId (asyncua's typed constructor)."""
    return ua.NodeId(ua.Int32(identifier))


def string_node(identifier: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(identifier), ua.Int16(ns))


# --- small helpers ------------------------------------------------------------------------


def spread(values: Sequence[float], digits: int = 3) -> Json:
    """min / median / max of repeated measurements."""
    if not values:
        return {"n": 0}
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def latency_ms(values: Sequence[float]) -> Json:
    """p50 / p99 / max in milliseconds of latencies in seconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(1000 * percentile(values, 50), 2),
        "p99": round(1000 * percentile(values, 99), 2),
        "max": round(1000 * max(values), 2),
    }


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB (from /proc/PID/status)."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return math.inf


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def alternate(rep: int) -> tuple[str, str]:
    """Side order of repeat ``rep``: A B, B A, A B … so drift hits both alike."""
    return (PLANTGUARD, PLAIN) if rep % 2 == 0 else (PLAIN, PLANTGUARD)


# --- sites --------------------------------------------------------------------------------


def site_dict(
    points: int,
    *,
    devices: int = 100,
    modbus_port: int = 1,
    distinct_registers: bool = False,
    poll_interval: float | None = None,
) -> Json:
    """The shape of ``bench/scale_bench.py``'s ``site_text``: 100 devices of N/100 points.

    With the defaults it is that site exactly.  ``distinct_registers`` gives every
    device its own register range (for one shared Modbus test server).
    """
    per_device = points // devices
    site: Json = {
        "id": "scale",
        "services": {"opcua": {"port": 0, "security": ["none"], "anonymous": True}},
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": f"d{i}",
                        "driver": "modbus",
                        "connection": {"host": HOST, "port": modbus_port, "unit": 1},
                        "points": [
                            {
                                "id": f"p{j}",
                                "unit": "bar",
                                "range": [0, 100],
                                "address": {
                                    "register": register_of(i, j, per_device, distinct_registers)
                                },
                                **(
                                    {"rules": {"limit": {"h": 80, "hh": 90}}} if j % 10 == 0 else {}
                                ),
                            }
                            for j in range(per_device)
                        ],
                    }
                    for i in range(devices)
                ],
            }
        ],
    }
    if poll_interval is not None:
        site["poll_groups"] = {"default": {"interval": poll_interval}}
    return site


def register_of(device: int, point: int, per_device: int, distinct: bool) -> int:
    return (2 * per_device * device if distinct else 0) + 2 * point


def site_yaml(points: int, **kwargs: Any) -> str:
    import yaml

    return str(yaml.safe_dump(site_dict(points, **kwargs)))


def point_identifiers(site: Site) -> list[str]:
    """String NodeId identifiers of the point variables, in value-table order.

    The documented scheme (docs/opcua.md, NodeIds): ``<site>/<area>/<device>/Points/<point>``
    in namespace ``urn:plantguard``; a point's segment is its id under its device.
    """
    by_point: dict[str, str] = {}
    for area in site.areas:
        for device in area.devices:
            for point in device.points:
                local = point.id.removeprefix(f"{device.id}.")
                by_point[point.id] = f"{site.id}/{area.id}/{device.id}/Points/{local}"
    return [by_point[p.id] for p in site.points]


# --- probes in the server process -----------------------------------------------------------


class LoopProbe:
    """Sleeps ``interval`` in a loop and records how late each wake-up is (event-loop stalls)."""

    def __init__(self, interval: float = PROBE_INTERVAL) -> None:
        self.interval = interval
        self.lateness: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (seconds into the window, stall)
        self._t0 = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        self._t0 = time.perf_counter()
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - before - self.interval
            self.lateness.append(late)
            if late >= 0.1:
                self.stalls.append((round(before - self._t0, 2), late))

    def summary(self) -> Json:
        lat = self.lateness
        if not lat:
            return {"samples": 0}
        top = sorted(self.stalls, key=lambda s: -s[1])[:5]
        return {
            "samples": len(lat),
            "max_ms": round(1000 * max(lat), 1),
            "p99_ms": round(1000 * percentile(lat, 99), 2),
            "p999_ms": round(1000 * percentile(lat, 99.9), 2),
            "over_100ms": sum(1 for x in lat if x >= 0.1),
            "over_500ms": sum(1 for x in lat if x >= 0.5),
            "over_1s": sum(1 for x in lat if x >= 1.0),
            "worst": [{"at_s": t, "ms": round(1000 * s, 1)} for t, s in top],
        }


class GcMonitor:
    """Counts and times Python's garbage collections through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.long: list[Json] = []
        self._started = 0.0
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        took = now - self._started
        gen = info["generation"]
        self.count[gen] += 1
        self.total[gen] += took
        self.longest[gen] = max(self.longest[gen], took)
        if took >= 0.05 and len(self.long) < 50:
            self.long.append(
                {
                    "at_s": round(self._started - self._t0, 2),
                    "gen": gen,
                    "ms": round(1000 * took, 1),
                    "collected": info.get("collected", 0),
                }
            )

    def __enter__(self) -> GcMonitor:
        self._t0 = time.perf_counter()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def summary(self) -> Json:
        return {
            f"gen{g}": {
                "count": self.count[g],
                "total_ms": round(1000 * self.total[g], 1),
                "max_ms": round(1000 * self.longest[g], 1),
            }
            for g in range(3)
        } | {"long": self.long}


class LogCounter(logging.Handler):
    """Counts WARNING+ log records by logger and message (a worker's log, summarised)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        first = text.splitlines()[0] if text else ""
        self.counts[f"{record.levelname} {record.name}: {first[:140]}"] += 1

    def summary(self) -> Json:
        return {"records": sum(self.counts.values()), "top": dict(self.counts.most_common(8))}


def install_log_counter() -> LogCounter:
    counter = LogCounter()
    root = logging.getLogger()
    root.handlers[:] = [counter]
    root.setLevel(logging.WARNING)
    return counter


async def recv(conn: Connection) -> Any:
    """Receive from a pipe without blocking the event loop (and without a thread)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


# --- servers under test ----------------------------------------------------------------------


class Target(Protocol):
    endpoint: str
    namespace: str
    ids: list[str]
    build_s: float

    async def write_round(self, values: npt.NDArray[np.float64], now: float) -> None: ...

    async def stop(self) -> None: ...


class Walk:
    """A bounded random walk: every value changes every step, none crosses a limit."""

    def __init__(self, n: int, seed: int = 7) -> None:
        import numpy as np

        self._rng = np.random.default_rng(seed)
        self.values = self._rng.uniform(WALK_LOW + 5, WALK_HIGH - 5, n)

    def step(self) -> npt.NDArray[np.float64]:
        import numpy as np

        v = self.values + self._rng.normal(0.0, WALK_STEP, self.values.size)
        v = np.where(v > WALK_HIGH, 2 * WALK_HIGH - v, v)
        v = np.where(v < WALK_LOW, 2 * WALK_LOW - v, v)
        self.values = v
        return v


class RunningEngine:
    """A whole gateway, ``Engine.run``, in this process: services, drivers, scan, history."""

    def __init__(self, engine: Engine, store: Store, runner: asyncio.Task[None]) -> None:
        self.engine = engine
        self.store = store
        self.runner = runner
        self.stopping = asyncio.Event()

    @classmethod
    async def start(cls, text: str, workdir: Path, stop: asyncio.Event) -> RunningEngine:
        from plantguard.config import parse_site
        from plantguard.engine import Engine
        from plantguard.host import default_host
        from plantguard.store import Store

        host = default_host()
        loaded = parse_site(text, "opcua-bench", host)
        store = Store(str(workdir / "gateway.db"))
        engine = Engine(loaded, host, store)
        runner = asyncio.create_task(engine.run(stop), name="engine")
        ready = asyncio.create_task(engine.ready.wait())
        await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            ready.cancel()
            store.close()
            runner.result()  # raises what stopped it
            raise RuntimeError("the engine stopped during start-up")
        return cls(engine, store, runner)

    @property
    def endpoint(self) -> str:
        return str(getattr(self.engine.services["opcua"], "endpoint", ""))

    async def stop(self, stop: asyncio.Event) -> None:
        stop.set()
        try:
            await asyncio.wait_for(self.runner, timeout=180)
        finally:
            self.store.close()


class GatewayTarget:
    """The whole gateway (``Engine.run``) whose devices are quiet; new values come from here.

    The devices read a Modbus server in this process once (every register 0, Good
    quality), then wait ``QUIET_POLL`` s; the bench plays the drivers: each round is
    ``table.update`` of every point and the engine's own ``_publish`` of the changed
    slots (history writer and values listeners, OPC UA among them), as after a read.
    """

    namespace = PG_NS
    QUIET_POLL = 3600.0

    def __init__(
        self, gateway: RunningEngine, stop: asyncio.Event, modbus: Any, build_s: float
    ) -> None:
        import numpy as np

        from plantguard.model import Quality

        self.gateway = gateway
        self.engine = gateway.engine
        self.endpoint = gateway.endpoint
        self.ids = point_identifiers(self.engine.site)
        self.build_s = build_s
        self._stop = stop
        self._modbus = modbus
        n = len(self.engine.table)
        self._idx = np.arange(n, dtype=np.intp)
        self._good = np.full(n, Quality.GOOD, dtype=np.uint8)

    @classmethod
    async def start(cls, points: int, workdir: Path) -> GatewayTarget:
        from plantguard_modbus.testserver import MiniModbusServer

        modbus = MiniModbusServer(HOST, 0)  # every register 0
        await modbus.start()
        text = site_yaml(points, modbus_port=modbus.port, poll_interval=cls.QUIET_POLL)
        stop = asyncio.Event()
        try:
            gateway = await RunningEngine.start(text, workdir, stop)
        except BaseException:
            await modbus.stop()
            raise
        service = gateway.engine.services["opcua"]
        target = cls(gateway, stop, modbus, float(getattr(service, "build_seconds", math.nan)))
        await target._first_poll()
        await target.write_round(Walk(points, seed=1).values, time.time())
        return target

    async def _first_poll(self, timeout: float = 120.0) -> None:
        """Wait until every device has been read once (all points Good)."""
        quality = self.engine.table.quality
        for _ in range(int(timeout / 0.1)):
            if not quality.any():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{int((quality != 0).sum())} points still not Good after {timeout} s")

    async def write_round(self, values: npt.NDArray[np.float64], now: float) -> None:
        """What a driver read does: the table takes the block, the engine publishes the change."""
        engine = self.engine
        changed = engine.table.update(self._idx, values, self._good, now)
        await engine._publish(changed)

    async def stop(self) -> None:
        try:
            await self.gateway.stop(self._stop)
        finally:
            await self._modbus.stop()


async def build_plain_server(points: int) -> tuple[Server, str, list[ua.NodeId], list[str]]:
    """A plain asyncua server: ``points`` Double variables, 100 per folder, batched add_nodes."""
    server = Server()
    await server.init()
    endpoint = f"opc.tcp://{HOST}:{free_port()}/plain"
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(PLAIN_NS)
    session = server.iserver.isession
    objects = numeric(ObjectIds.ObjectsFolder)
    node_ids: list[ua.NodeId] = []
    identifiers: list[str] = []
    for folder_no in range(math.ceil(points / 100)):
        folder = string_node(f"f{folder_no}", ns)
        folder_item = ua.AddNodesItem()
        folder_item.RequestedNewNodeId = folder
        folder_item.ParentNodeId = objects
        folder_item.ReferenceTypeId = numeric(ObjectIds.Organizes)
        folder_item.BrowseName = ua.QualifiedName(f"f{folder_no}", ns)
        folder_item.NodeClass = ua.NodeClass.Object
        folder_item.TypeDefinition = numeric(ObjectIds.FolderType)
        folder_attrs = ua.ObjectAttributes()
        folder_attrs.DisplayName = ua.LocalizedText(f"f{folder_no}")
        folder_item.NodeAttributes = folder_attrs
        items = [folder_item]
        for k in range(100 * folder_no, min(points, 100 * (folder_no + 1))):
            identifier = f"f{folder_no}/v{k}"
            node_id = string_node(identifier, ns)
            item = ua.AddNodesItem()
            item.RequestedNewNodeId = node_id
            item.ParentNodeId = folder
            item.ReferenceTypeId = numeric(ObjectIds.Organizes)
            item.BrowseName = ua.QualifiedName(f"v{k}", ns)
            item.NodeClass = ua.NodeClass.Variable
            item.TypeDefinition = numeric(ObjectIds.BaseDataVariableType)
            attrs = ua.VariableAttributes()
            attrs.DisplayName = ua.LocalizedText(f"v{k}")
            attrs.Value = ua.Variant(math.nan, ua.VariantType.Double)
            attrs.DataType = numeric(ObjectIds.Double)
            attrs.ValueRank = ua.ValueRank.Scalar
            attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
            attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
            item.NodeAttributes = attrs
            items.append(item)
            node_ids.append(node_id)
            identifiers.append(identifier)
        for result in await session.add_nodes(items):
            if not result.StatusCode.is_good():
                raise RuntimeError(f"cannot add node: {result.StatusCode.name}")
        await asyncio.sleep(0)
    return server, endpoint, node_ids, identifiers


class PlainTarget:
    """The floor: a plain asyncua server written with ``server.write_attribute_value``."""

    namespace = PLAIN_NS

    def __init__(
        self,
        server: Server,
        endpoint: str,
        node_ids: list[ua.NodeId],
        ids: list[str],
        build_s: float,
    ) -> None:
        self.server = server
        self.endpoint = endpoint
        self.node_ids = node_ids
        self.ids = ids
        self.build_s = build_s
        self._good = ua.StatusCode(ua.UInt32(StatusCodes.Good))

    @classmethod
    async def start(cls, points: int) -> PlainTarget:
        began = time.perf_counter()
        server, endpoint, node_ids, ids = await build_plain_server(points)
        build_s = time.perf_counter() - began
        await server.start()
        target = cls(server, endpoint, node_ids, ids, build_s)
        await target.write_round(Walk(points, seed=1).values, time.time())
        return target

    async def write_round(self, values: npt.NDArray[np.float64], now: float) -> None:
        source = dt.datetime.fromtimestamp(now, tz=dt.UTC)
        stamp = dt.datetime.now(dt.UTC)
        write = self.server.write_attribute_value
        good = self._good
        double = ua.VariantType.Double
        for n, (node_id, value) in enumerate(zip(self.node_ids, values.tolist(), strict=True)):
            await write(
                node_id,
                ua.DataValue(
                    Value=ua.Variant(value, double),
                    StatusCode=good,
                    SourceTimestamp=cast(ua.DateTime, source),
                    ServerTimestamp=cast(ua.DateTime, stamp),
                ),
            )
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)

    async def stop(self) -> None:
        await self.server.stop()


async def run_load(target: Target, walk: Walk, command: Json) -> Json:
    """Change every point ``rate`` times a second (or as fast as possible) for ``seconds``.

    The stall probe and the GC monitor cover exactly this window.
    """
    mode, seconds = command["mode"], float(command["seconds"])
    paced = mode == "paced"
    period = 1.0 / float(command.get("rate", 1.0))
    max_rounds = int(seconds / period) + 1 if paced else 1_000_000
    probe = LoopProbe()
    stop = asyncio.Event()
    probe_task = asyncio.create_task(probe.run(stop), name="stall probe")
    write_s: list[float] = []
    overruns = 0
    await asyncio.sleep(0.05)  # the probe's first sample comes before the first round
    with GcMonitor() as gcm:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        next_tick = t0
        while len(write_s) < max_rounds:
            now = time.perf_counter()
            if paced:
                if next_tick >= deadline:
                    break
                if next_tick > now:
                    await asyncio.sleep(next_tick - now)
                elif now - next_tick > period:
                    overruns += 1
                    next_tick = now
            elif now >= deadline:
                break
            values = walk.step()
            began = time.perf_counter()
            await target.write_round(values, time.time())
            write_s.append(time.perf_counter() - began)
            if paced:
                next_tick += period
            else:
                await asyncio.sleep(0)
        if paced:
            remaining = deadline - time.perf_counter()
            if remaining > 0:
                await asyncio.sleep(remaining)
        elapsed = time.perf_counter() - t0
    stop.set()
    await probe_task
    rounds = len(write_s)
    return {
        "mode": mode,
        "seconds": round(elapsed, 2),
        "rounds": rounds,
        "changes": rounds * len(target.ids),
        "changes_per_s": round(rounds * len(target.ids) / elapsed),
        "round_ms": latency_ms(write_s),
        "overruns": overruns,
        "stalls": probe.summary(),
        "gc": gcm.summary(),
    }


def server_process(side: str, points: int, options: Json, conn: Connection) -> None:
    """Worker: a server under test in its own process, driven by commands over ``conn``."""
    counter = install_log_counter()
    try:
        asyncio.run(_serve(side, points, options, conn, counter))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


async def _serve(side: str, points: int, options: Json, conn: Connection, log: LogCounter) -> None:
    with tempfile.TemporaryDirectory(prefix="opcua-bench-server-") as tmp:
        if side == "engine":
            await _serve_engine(points, options, conn, log, Path(tmp))
            return
        if side == "history":
            await _serve_history(points, options, conn, log, Path(tmp))
            return
        began = time.perf_counter()
        target: Target
        if side == PLANTGUARD:
            target = await GatewayTarget.start(points, Path(tmp))
        else:
            target = await PlainTarget.start(points)
        start_s = time.perf_counter() - began
        gc_objects = len(gc.get_objects())  # what full collections scan (frozen ones excluded)
        conn.send(
            {
                "endpoint": target.endpoint,
                "namespace": target.namespace,
                "ids": target.ids,
                "build_s": round(target.build_s, 2),
                "start_s": round(start_s, 2),
                "gc_tracked_objects": gc_objects,
                "gc_frozen_objects": gc.get_freeze_count(),
                **proc_status(os.getpid()),
            }
        )
        walk = Walk(points)
        try:
            while True:
                command = await recv(conn)
                if command["cmd"] == "stop":
                    break
                if command["cmd"] == "load":
                    conn.send(await run_load(target, walk, command) | proc_status(os.getpid()))
        finally:
            await target.stop()
        conn.send({"stopped": True, "log": log.summary()})


async def _serve_engine(
    points: int, options: Json, conn: Connection, log: LogCounter, workdir: Path
) -> None:
    """The whole gateway polling the Modbus server at ``options['modbus_port']`` (alarm latency)."""
    if 2 * points > 65536:
        raise ValueError(
            "the alarm test gives every point its own registers: 32,768 points at most"
        )
    text = site_yaml(
        points,
        modbus_port=options["modbus_port"],
        distinct_registers=True,
        poll_interval=options["poll_interval"],
    )
    stop = asyncio.Event()
    gateway = await RunningEngine.start(text, workdir, stop)
    site = gateway.engine.site
    probe = LoopProbe()
    probe_stop = asyncio.Event()
    try:
        conn.send(
            {
                "endpoint": gateway.endpoint,
                "namespace": PG_NS,
                "poll_interval": site.poll_groups["default"].interval,
                "scan_interval": site.scan_interval,
                **proc_status(os.getpid()),
            }
        )
        with GcMonitor() as gcm:
            probe_task = asyncio.create_task(probe.run(probe_stop))
            command = await recv(conn)
            assert command["cmd"] == "stop"
            probe_stop.set()
            await probe_task
    finally:
        await gateway.stop(stop)
    conn.send(
        {"stopped": True, "stalls": probe.summary(), "gc": gcm.summary(), "log": log.summary()}
    )


async def _serve_history(
    points: int, options: Json, conn: Connection, log: LogCounter, workdir: Path
) -> None:
    """The whole gateway, its store holding ``samples`` one-second values of point d0.p0."""
    import numpy as np

    target = await GatewayTarget.start(points, workdir)
    try:
        store = target.gateway.store
        point_id = target.engine.site.points[0].id
        keys = store.register_points(target.engine.site.points[:1])
        samples, t0 = int(options["samples"]), float(options["t0"])
        store.write_history(
            np.full(samples, keys[point_id], dtype=np.int64),
            t0 + np.arange(samples, dtype=np.float64),
            np.round(50 + 10 * np.sin(np.arange(samples) / 600), 4),
            np.zeros(samples, dtype=np.uint8),
        )
        conn.send(
            {
                "endpoint": target.endpoint,
                "namespace": target.namespace,
                "identifier": target.ids[0],
                "point": point_id,
            }
        )
        while (await recv(conn))["cmd"] == "trend":
            began = time.perf_counter()
            trend = store.trend(point_id, t0, t0 + samples)
            conn.send({"seconds": time.perf_counter() - began, "values": int(trend.value.size)})
    finally:
        await target.stop()
    conn.send({"stopped": True, "log": log.summary()})


# --- clients (each in its own process) -------------------------------------------------------


def client_process(kind: str, endpoint: str, namespace: str, spec: Json, conn: Connection) -> None:
    counter = install_log_counter()
    try:
        runner = {
            "subscriber": _subscriber,
            "reader": _reader,
            "alarms": _alarm_client,
            "history": _history_client,
        }[kind]
        asyncio.run(runner(endpoint, namespace, spec, conn, counter))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


#: A client's connect (or connect and subscribe) is retried this often, 1 s apart.
CONNECT_ATTEMPTS = 10
CONNECT_ERRORS = (OSError, TimeoutError, UaError)
#: A subscriber that loses its session reconnects at most this often.
MAX_RECONNECTS = 20


async def connect_client(endpoint: str, timeout: float = 4.0) -> Client:
    """A connected client; attempts that time out (a stalled server) are retried."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        client = Client(endpoint, timeout=timeout)
        try:
            await client.connect()
        except CONNECT_ERRORS:
            with contextlib.suppress(Exception):
                await client.disconnect()
            if attempt == CONNECT_ATTEMPTS:
                raise
            await asyncio.sleep(1.0)
        else:
            return client
    raise AssertionError("unreachable")


class Subscriber:
    """One client session subscribed to every point; reconnects (counted) when it is lost."""

    def __init__(self, endpoint: str, namespace: str, spec: Json) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.ids: list[str] = spec["ids"]
        self.period_ms = float(spec["publish_ms"])
        self.queue_size = int(spec["queue_size"])
        self.counts = [0] * len(self.ids)
        self.total = 0
        self.status_changes = 0
        self.first = self.last = 0.0
        self.delays: list[float] = []
        self.disconnects: list[float] = []
        self.lost = asyncio.Event()
        self.subscribe_s: list[float] = []
        self.connect_failures = 0
        self._client: Client | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._index: dict[ua.NodeId, int] = {}

    async def connect(self) -> None:
        """Connect and subscribe every item; an attempt that times out (a stalled server) is retried."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                await self._connect_once()
                return
            except CONNECT_ERRORS:
                self.connect_failures += 1
                await self.close()
                if attempt == CONNECT_ATTEMPTS:
                    raise
                await asyncio.sleep(1.0)

    async def _connect_once(self) -> None:
        client = Client(self.endpoint)  # asyncua's defaults: 4 s timeout, 1 s watchdog
        client.connection_lost_callback = self._on_lost
        self._client = client
        began = time.perf_counter()
        await client.connect()
        ns = await client.get_namespace_index(self.namespace)
        nodes = [client.get_node(string_node(i, ns)) for i in self.ids]
        self._index = {node.nodeid: k for k, node in enumerate(nodes)}
        sub = await client.create_subscription(self.period_ms, None, queue_maxsize=0)
        self._consumer = asyncio.create_task(self._consume(sub), name="consume")
        for first in range(0, len(nodes), 1000):
            await sub.subscribe_data_change(
                nodes[first : first + 1000],
                queuesize=self.queue_size,
                sampling_interval=ua.Double(0.0),
            )
        self.subscribe_s.append(time.perf_counter() - began)

    async def _on_lost(self, exc: Exception) -> None:
        self.disconnects.append(time.time())
        self.lost.set()

    async def _consume(self, sub: Any) -> None:
        index, counts = self._index, self.counts
        async for event in sub:
            now = time.perf_counter()
            if isinstance(event, DataChangeEvent):
                k = index.get(event.node.nodeid)
                if k is not None:
                    counts[k] += 1
                self.total += 1
                if not self.first:
                    self.first = now
                self.last = now
                if self.total % 10 == 0:  # one delay in ten: source timestamp → arrival
                    stamp = event.data.monitored_item.Value.SourceTimestamp
                    if stamp is not None:
                        if stamp.tzinfo is None:
                            stamp = stamp.replace(tzinfo=dt.UTC)
                        self.delays.append(time.time() - stamp.timestamp())
            elif isinstance(event, StatusChangeEvent):
                self.status_changes += 1

    def reset(self) -> None:
        self.counts[:] = [0] * len(self.ids)  # in place: the consumer holds this list
        self.total = self.status_changes = 0
        self.first = self.last = 0.0
        self.delays = []

    async def settle(self, timeout: float = 120.0) -> None:
        """Wait for the initial value of every item, then a quiet second."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if min(self.counts, default=1) > 0:
                break
            await asyncio.sleep(0.2)
        await self.quiet(1.0, 30.0)

    async def quiet(self, seconds: float, limit: float) -> float:
        """Wait until no notification arrived for ``seconds`` (at most ``limit`` s)."""
        began = time.perf_counter()
        while time.perf_counter() - began < limit:
            last = self.last or began
            if time.perf_counter() - last >= seconds and time.perf_counter() - began >= seconds:
                break
            await asyncio.sleep(0.1)
        return time.perf_counter() - began

    async def reconnect(self) -> None:
        await self.close()
        self.lost.clear()
        await self.connect()

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
            self._consumer = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.disconnect(), timeout=10)
            self._client = None


async def _subscriber(
    endpoint: str, namespace: str, spec: Json, conn: Connection, log: LogCounter
) -> None:
    sub = Subscriber(endpoint, namespace, spec)
    await sub.connect()
    await sub.settle()
    sub.reset()
    conn.send({"ready": True, "subscribe_s": round(sub.subscribe_s[0], 2)})
    stop = asyncio.create_task(recv(conn))
    reconnects = 0
    while not stop.done():
        if not sub.lost.is_set():
            lost = asyncio.create_task(sub.lost.wait())
            await asyncio.wait([stop, lost], return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            continue
        if reconnects >= MAX_RECONNECTS:
            await stop
            break
        reconnects += 1
        attempt = asyncio.create_task(sub.reconnect())
        await asyncio.wait([stop, attempt], return_when=asyncio.FIRST_COMPLETED)
        if not attempt.done():  # stopped while reconnecting
            attempt.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await attempt
        elif attempt.exception() is not None:
            sub.lost.set()  # every attempt failed: try again (bounded by MAX_RECONNECTS)
    stopped_at = time.perf_counter()
    drain_s = await sub.quiet(max(2.0, 3 * sub.period_ms / 1000), float(spec["drain_limit"]))
    window = sub.last - sub.first if sub.total > 1 else 0.0
    result = {
        "counts": sub.counts,
        "notifications": sub.total,
        "notifications_per_s": round(sub.total / window) if window > 0 else 0,
        "status_changes": sub.status_changes,
        "arrival_ms": latency_ms(sub.delays),
        "drain_s": round(max(0.0, sub.last - stopped_at), 2) if sub.last else 0.0,
        "drain_wait_s": round(drain_s, 2),
        "disconnects": len(sub.disconnects),
        "reconnects": reconnects,
        "connect_failures": sub.connect_failures,
        "subscribe_s": [round(s, 2) for s in sub.subscribe_s],
        "log": log.summary(),
    }
    await sub.close()
    conn.send(result)


class Reader:
    """A second connection reading a few point values; reconnects (counted) when it is lost."""

    def __init__(self, endpoint: str, namespace: str, spec: Json) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        ids: list[str] = spec["ids"]
        count = int(spec["read_nodes"])
        self.ids = ids[:: max(1, len(ids) // count)][:count]
        self.lost = asyncio.Event()
        self.disconnects = 0
        self.client: Client | None = None
        self.nodes: list[Any] = []

    async def _on_lost(self, exc: Exception) -> None:
        self.disconnects += 1
        self.lost.set()

    async def connect(self) -> None:
        await self.close()
        client = await connect_client(self.endpoint)
        client.connection_lost_callback = self._on_lost
        self.client = client
        ns = await client.get_namespace_index(self.namespace)
        self.nodes = [client.get_node(string_node(i, ns)) for i in self.ids]
        self.lost.clear()

    async def read(self) -> None:
        assert self.client is not None
        await self.client.read_values(self.nodes)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), timeout=10)


async def _reader(
    endpoint: str, namespace: str, spec: Json, conn: Connection, log: LogCounter
) -> None:
    """Read ``read_nodes`` point values every ``interval`` s until told to stop."""
    reader = Reader(endpoint, namespace, spec)
    await reader.connect()
    with contextlib.suppress(*CONNECT_ERRORS):
        await reader.read()  # warm-up
    conn.send({"ready": True})
    go = await recv(conn)
    assert go["cmd"] == "go"
    stop = asyncio.create_task(recv(conn))
    interval = float(spec["interval"])
    latencies: list[float] = []
    errors = reconnects = 0
    next_tick = time.perf_counter()
    while not stop.done() and len(latencies) + errors < 100_000:
        if reader.lost.is_set():  # the session was lost: a new one (bounded), unless stopped
            if reconnects >= MAX_RECONNECTS:
                await stop
                break
            reconnects += 1
            attempt = asyncio.create_task(reader.connect())
            await asyncio.wait([stop, attempt], return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attempt
            elif attempt.exception() is not None:
                reader.lost.set()
            next_tick = time.perf_counter()
            continue
        began = time.perf_counter()
        try:
            await reader.read()
            latencies.append(time.perf_counter() - began)
        except Exception:
            errors += 1
        next_tick += interval
        delay = next_tick - time.perf_counter()
        if delay < 0:
            next_tick = time.perf_counter()
            delay = 0
        await asyncio.wait([stop], timeout=delay)
    if not stop.done():
        await stop
    await reader.close()
    conn.send(
        {
            "reads": len(latencies),
            "nodes_per_read": len(reader.ids),
            "errors": errors,
            "latency_ms": latency_ms(latencies),
            "disconnects": reader.disconnects,
            "reconnects": reconnects,
            "log": log.summary(),
        }
    )


async def _history_client(
    endpoint: str, namespace: str, spec: Json, conn: Connection, log: LogCounter
) -> None:
    """HistoryRead (raw, no bounds) of one point's range, each time it is asked to."""
    client = await connect_client(endpoint, timeout=60)  # a read may take more than 4 s
    ns = await client.get_namespace_index(namespace)
    node = client.get_node(string_node(spec["identifier"], ns))
    start = dt.datetime.fromtimestamp(float(spec["t0"]), tz=dt.UTC)
    end = dt.datetime.fromtimestamp(float(spec["t0"]) + int(spec["samples"]), tz=dt.UTC)
    conn.send({"ready": True})
    while (await recv(conn))["cmd"] == "read":
        began = time.perf_counter()
        try:
            values = await node.read_raw_history(start, end, return_bounds=False)
        except Exception as exc:
            conn.send({"error_text": f"{type(exc).__name__}: {exc}"})
            continue
        conn.send({"seconds": time.perf_counter() - began, "values": len(values)})
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), timeout=10)
    conn.send({"stopped": True, "log": log.summary()})


# --- alarms: Modbus write → OPC UA event -------------------------------------------------------


def float_words(value: float) -> list[int]:
    """A float32 as two big-endian registers (the Modbus driver's default order)."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def _fc16(tid: int, address: int, words: Sequence[int]) -> bytes:
    pdu = struct.pack(">BHHB", 16, address, len(words), 2 * len(words)) + struct.pack(
        f">{len(words)}H", *words
    )
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, 1) + pdu


def modbus_clear(port: int, registers: int) -> None:
    """Zero holding registers 0…registers-1 of unit 1 (the test server starts with a pattern)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        for n, first in enumerate(range(0, registers, 120)):
            count = min(120, registers - first)
            sock.sendall(_fc16(n & 0xFFFF, first, [0] * count))
            reply = b""
            while len(reply) < 12:
                chunk = sock.recv(12 - len(reply))
                if not chunk:
                    raise ConnectionError("Modbus server closed the connection")
                reply += chunk
            if reply[7] != 16:
                raise RuntimeError(f"Modbus write refused: {reply.hex()}")


def alarm_event_filter() -> ua.EventFilter:
    """SourceName and ActiveState/Id of every event (no where clause: filtered here)."""
    evfilter = ua.EventFilter()
    for path in ("SourceName", "ActiveState/Id"):
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = numeric(ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(p, 0) for p in path.split("/")]
        op.AttributeId = AttributeIds.Value
        evfilter.SelectClauses.append(op)
    return evfilter


class ModbusWriter:
    """Writes float32 values with function 16 over one connection; returns when answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._tid = 0

    @classmethod
    async def open(cls, port: int) -> ModbusWriter:
        return cls(*await asyncio.open_connection(HOST, port))

    async def write(self, register: int, value: float) -> float:
        """Write ``value`` at ``register``; the perf_counter time the answer came back."""
        self._tid = (self._tid + 1) & 0xFFFF
        self._writer.write(_fc16(self._tid, register, float_words(value)))
        await self._writer.drain()
        reply = await self._reader.readexactly(12)
        if reply[7] != 16:
            raise RuntimeError(f"Modbus write refused: {reply.hex()}")
        return time.perf_counter()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class AlarmEvents:
    """(arrival, SourceName, active) of every event of one subscription, in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, str, bool]] = asyncio.Queue()

    async def consume(self, sub: Any) -> None:
        async for item in sub:
            if isinstance(item, OpcEvent):
                fields = item.event.get_event_props_as_fields_dict()
                name, active = fields.get("SourceName"), fields.get("ActiveState/Id")
                self.queue.put_nowait(
                    (
                        time.perf_counter(),
                        str(name.Value) if name is not None else "",
                        bool(active.Value) if active is not None else False,
                    )
                )

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def wait(self, source: str, active: bool, timeout: float) -> float | None:
        """Arrival time of the next event of ``source`` with that active state, or None."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                at, name, is_active = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                return None
            if name == source and is_active == active:
                return at
        return None


async def _alarm_client(
    endpoint: str, namespace: str, spec: Json, conn: Connection, log: LogCounter
) -> None:
    """Write a value over HH, time the alarm event; write 0, time the return to normal."""
    client = await connect_client(endpoint)
    sub = await client.create_subscription(100, None, queue_maxsize=0)
    await sub.subscribe_events(client.nodes.server, evfilter=alarm_event_filter())
    events = AlarmEvents()
    consumer = asyncio.create_task(events.consume(sub))
    modbus = await ModbusWriter.open(int(spec["modbus_port"]))
    poll, timeout = float(spec["poll_interval"]), float(spec["timeout"])
    await asyncio.sleep(2 * poll + 1)  # every device polled, the start-up events are in
    events.clear()
    raise_s: list[float] = []
    clear_s: list[float] = []
    missed = 0
    rng = random.Random(11)
    for source, register in spec["targets"]:
        written = await modbus.write(register, 95.0)
        got = await events.wait(source, True, timeout)
        if got is None:
            missed += 1
        else:
            raise_s.append(got - written)
        written = await modbus.write(register, 0.0)
        got = await events.wait(source, False, timeout)
        if got is not None:
            clear_s.append(got - written)
        await asyncio.sleep(rng.uniform(0.0, poll))  # de-phase from the poll cycle
    await modbus.close()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await consumer
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), timeout=10)
    conn.send(
        {
            "activations": len(spec["targets"]),
            "missed": missed,
            "raise_ms": latency_ms(raise_s),
            "clear_ms": latency_ms(clear_s),
            "raise_s": [round(x, 4) for x in raise_s],
            "log": log.summary(),
        }
    )


# --- orchestration -----------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """A spawned bench process with a pipe; stopped by its own PID, never by name."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.name = name
        self.proc = ctx.Process(target=target, args=(*args, child), name=name, daemon=True)
        self.proc.start()
        child.close()

    def send(self, message: Json) -> None:
        self.conn.send(message)

    def recv(self, timeout: float) -> Json:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.poll(1.0):
                try:
                    message: Json = self.conn.recv()
                except EOFError as exc:
                    raise WorkerError(f"{self.name} exited (code {self.proc.exitcode})") from exc
                if "error" in message:
                    raise WorkerError(f"{self.name}: {message['error']}")
                return message
            if not self.proc.is_alive():
                raise WorkerError(f"{self.name} exited (code {self.proc.exitcode})")
        raise WorkerError(f"{self.name}: no answer within {timeout:.0f} s")

    def close(self, timeout: float = 60.0) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive() and self.proc.pid is not None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.join(10)
        if self.proc.is_alive() and self.proc.pid is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join(5)
        self.conn.close()


def start_server(
    side: str, points: int, timeout: float, options: Json | None = None
) -> tuple[Worker, Json]:
    worker = Worker(server_process, (side, points, options or {}), f"{side} server")
    try:
        return worker, worker.recv(timeout)
    except BaseException:
        worker.close(0)
        raise


def stop_server(worker: Worker, timeout: float = 120.0) -> Json:
    try:
        worker.send({"cmd": "stop"})
        return worker.recv(timeout)
    except (WorkerError, OSError) as exc:
        return {"error": str(exc)}
    finally:
        worker.close(30)


def start_clients(kind: str, ready: Json, specs: Sequence[Json], timeout: float) -> list[Worker]:
    """Client processes, one after another: each has connected (and subscribed) before the
    next starts, so that set-up load does not make them drop each other's sessions."""
    workers: list[Worker] = []
    try:
        for n, spec in enumerate(specs):
            endpoint, namespace = ready["endpoint"], ready["namespace"]
            worker = Worker(client_process, (kind, endpoint, namespace, spec), f"{kind} {n}")
            workers.append(worker)
            worker.recv(timeout)
    except BaseException:
        for worker in workers:
            worker.close(0)
        raise
    return workers


def finish_clients(workers: Sequence[Worker], timeout: float) -> list[Json]:
    results = []
    try:
        for worker in workers:
            worker.send({"cmd": "stop"})
        for worker in workers:
            results.append(worker.recv(timeout))
    finally:
        for worker in workers:
            worker.close(30)
    return results


def delivered(result: Json, rounds: int) -> Json:
    """How many of the ``rounds`` changes of every item reached this client."""
    counts: list[int] = result.pop("counts")
    expected = rounds * len(counts)
    got = sum(min(c, rounds) for c in counts)
    return result | {
        "expected": expected,
        "delivered": got,
        "delivered_pct": round(100 * got / expected, 3) if expected else math.nan,
        "items_complete_pct": round(100 * sum(c >= rounds for c in counts) / len(counts), 3),
        "extra": sum(max(0, c - rounds) for c in counts),
    }


def subscriber_spec(args: argparse.Namespace, ids: list[str], drain_limit: float) -> Json:
    return {
        "ids": ids,
        "publish_ms": args.publish_ms,
        "queue_size": args.queue_size,
        "drain_limit": drain_limit,
    }


def server_timeout(points: int) -> float:
    """Generous: the first PlantGuard builds ~2 ms per point (and more at 100k)."""
    return 300.0 + points * 0.01


def load_phase(
    args: argparse.Namespace,
    server: Worker,
    ready: Json,
    *,
    clients: int,
    mode: str,
    seconds: float,
    reader: bool = False,
) -> Json:
    """Clients subscribe (and settle), the server changes values, clients report."""
    drain_limit = args.drain_limit
    specs = [subscriber_spec(args, ready["ids"], drain_limit) for _ in range(clients)]
    setup = max(180.0, len(ready["ids"]) * 0.02)  # per client
    subscribers = start_clients("subscriber", ready, specs, setup)
    readers: list[Worker] = []
    try:
        if reader:
            read_spec = {
                "ids": ready["ids"],
                "read_nodes": args.read_nodes,
                "interval": args.read_interval,
            }
            readers = start_clients("reader", ready, [read_spec], 120)
            readers[0].send({"cmd": "go"})
        server.send({"cmd": "load", "mode": mode, "seconds": seconds, "rate": 1.0})
        load = server.recv(seconds * 4 + 300)
    except BaseException:
        for worker in (*subscribers, *readers):
            worker.close(0)
        raise
    read = finish_clients(readers, 60) if readers else []
    subs = finish_clients(subscribers, drain_limit + 120)
    out: Json = {
        "server": load,
        "clients": [delivered(s, load["rounds"]) for s in subs],
    }
    if read:
        out["reader"] = read[0]
    return out


# --- 1. start-up and memory -------------------------------------------------------------------


ENDPOINT = re.compile(r"opc\.tcp://[0-9.]+:\d+\S*")


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


async def _wait_and_connect(
    proc: subprocess.Popen[bytes], log_path: Path, began: float, timeout: float
) -> Json:
    deadline = began + timeout
    endpoint = ""
    while not endpoint:
        if proc.poll() is not None:
            raise WorkerError(f"exited with {proc.returncode}: {read_log(log_path)[-2000:]}")
        if time.perf_counter() > deadline:
            raise WorkerError(f"no endpoint within {timeout:.0f} s")
        match = ENDPOINT.search(read_log(log_path))
        if match:
            endpoint = match.group(0).rstrip(".,;)")
        else:
            await asyncio.sleep(0.05)
    attempts = 0
    while True:
        attempts += 1
        client = Client(endpoint, timeout=5)
        try:
            await client.connect()
        except (OSError, TimeoutError, UaError):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        connected = time.perf_counter() - began
        memory = proc_status(proc.pid)
        with contextlib.suppress(Exception):
            await client.disconnect()
        return {"start_s": round(connected, 2), "connect_attempts": attempts} | memory


def stop_process(proc: subprocess.Popen[Any], timeout: float = 120.0) -> float:
    """SIGTERM by PID, wait, then SIGKILL; returns the seconds the process took to stop."""
    began = time.perf_counter()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return time.perf_counter() - began


def plantguard_cli() -> list[str]:
    script = Path(sys.executable).with_name("plantguard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plantguard"]


def startup_once(side: str, points: int, workdir: Path) -> Json:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{side}-{points}-", dir=workdir))
    log_path = run_dir / "output.log"
    if side == PLANTGUARD:
        site = run_dir / "site.yaml"
        site.write_text(site_yaml(points))
        command = [*plantguard_cli(), "run", str(site), "--db", str(run_dir / "x.db"), "--quiet"]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-plain", str(points)]
    with log_path.open("wb") as log:
        began = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=run_dir)
        try:
            row = asyncio.run(_wait_and_connect(proc, log_path, began, server_timeout(points) * 2))
        finally:
            stop_s = stop_process(proc)
    text = log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line]
    return row | {
        "stop_s": round(stop_s, 1),
        "exit_code": proc.returncode,
        "log_errors": len(errors),
        "log_error_lines": errors[:3],
    }


def parse_size_repeats(items: Sequence[str]) -> dict[int, int]:
    out = {}
    for item in items:
        size, _, count = item.partition("=")
        out[int(size)] = int(count)
    return out


def test_startup(args: argparse.Namespace, workdir: Path) -> Json:
    overrides = parse_size_repeats(args.size_repeats)
    rows = []
    for points in args.sizes:
        repeats = overrides.get(points, args.repeats)
        runs: dict[str, list[Json]] = {PLANTGUARD: [], PLAIN: []}
        skipped: list[str] = []
        for rep in range(repeats):
            for side in alternate(rep):
                previous = runs[side][-1]["VmHWM"] if runs[side] else 0.0
                need = max(1.5 * previous, points * (0.1 if side == PLANTGUARD else 0.012)) + 1024
                if mem_available_mb() < need:
                    skipped.append(f"{side} repeat {rep + 1}: {need:.0f} MB not available")
                    continue
                print(f"  startup {side} {points} points, repeat {rep + 1}/{repeats}", flush=True)
                try:
                    runs[side].append(startup_once(side, points, workdir))
                except (WorkerError, OSError, TimeoutError, UaError) as exc:
                    skipped.append(f"{side} repeat {rep + 1}: {exc}")
                    print(f"    failed: {exc}", flush=True)
        row: Json = {"points": points, "repeats": repeats, "runs": runs, "skipped": skipped}
        for side, side_runs in runs.items():
            row[side] = {
                "start_s": spread([r["start_s"] for r in side_runs], 2),
                "rss_mb": spread([r["VmRSS"] for r in side_runs], 1),
                "hwm_mb": spread([r["VmHWM"] for r in side_runs], 1),
                "rss_kb_per_point": spread([1024 * r["VmRSS"] / points for r in side_runs], 2),
            }
        rows.append(row)
    return {"rows": rows, "marginal_kb_per_point": marginal_memory(rows)}


def merge_startup(earlier: Json, new: Json) -> Json:
    """Start-up rows of both runs by size, the new run's row where both measured one."""
    rows = {row["points"]: row for row in earlier["rows"]}
    rows |= {row["points"]: row for row in new["rows"]}
    merged = [rows[size] for size in sorted(rows)]
    return {"rows": merged, "marginal_kb_per_point": marginal_memory(merged)}


def marginal_memory(rows: Sequence[Json]) -> list[Json]:
    """RSS added per point from one size to the next (median RSS; the fixed base cancels)."""
    out = []
    for a, b in itertools.pairwise(rows):
        entry: Json = {"from": a["points"], "to": b["points"]}
        for side in (PLANTGUARD, PLAIN):
            ra, rb = a[side]["rss_mb"].get("median"), b[side]["rss_mb"].get("median")
            if ra is not None and rb is not None:
                entry[side] = round(1024 * (rb - ra) / (b["points"] - a["points"]), 1)
        out.append(entry)
    return out


async def serve_plain_main(points: int) -> None:
    """``--serve-plain N``: the plain server for the start-up measurement, until SIGTERM."""
    server, endpoint, _, _ = await build_plain_server(points)
    await server.start()
    print(f"plain asyncua server on {endpoint} ({points} variables)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


# --- 2. event-loop stalls ------------------------------------------------------------------------


def test_stalls(args: argparse.Namespace, workdir: Path) -> Json:
    segment = args.stall_seconds / args.repeats
    runs: dict[str, list[Json]] = {PLANTGUARD: [], PLAIN: []}
    failed: dict[str, list[str]] = {PLANTGUARD: [], PLAIN: []}
    for rep in range(args.repeats):
        for side in alternate(rep):
            print(
                f"  stalls {side}, segment {rep + 1}/{args.repeats} ({segment:.0f} s)", flush=True
            )
            try:
                server, ready = start_server(side, args.points, server_timeout(args.points))
            except WorkerError as exc:
                failed[side].append(str(exc))
                continue
            try:
                measured = phase(args, server, ready, clients=1, mode="paced", seconds=segment)
            finally:
                final = stop_server(server)
            if "error" in measured:
                failed[side].append(measured["error"])
                continue
            load = measured["server"]
            client = measured["clients"][0]
            runs[side].append(
                {
                    "seconds": load["seconds"],
                    "rounds": load["rounds"],
                    "overruns": load["overruns"],
                    "round_ms": load["round_ms"],
                    "stalls": load["stalls"],
                    "gc": load["gc"],
                    "rss_mb": round(load.get("VmRSS", math.nan), 1),
                    "gc_tracked_objects": ready["gc_tracked_objects"],
                    "client_disconnects": client["disconnects"],
                    "client_reconnects": client["reconnects"],
                    "delivered_pct": client["delivered_pct"],
                    "client_log": client["log"],
                    "server_log": final.get("log"),
                }
            )
    summary: Json = {}
    for side, side_runs in runs.items():
        summary[side] = {
            "max_stall_ms": spread([r["stalls"]["max_ms"] for r in side_runs], 1),
            "worst_stall_ms": max((r["stalls"]["max_ms"] for r in side_runs), default=math.nan),
            "p99_ms": spread([r["stalls"]["p99_ms"] for r in side_runs], 2),
            "stalls_over_100ms": sum(r["stalls"]["over_100ms"] for r in side_runs),
            "stalls_over_1s": sum(r["stalls"]["over_1s"] for r in side_runs),
            "client_disconnects": sum(r["client_disconnects"] for r in side_runs),
            "gen2_collections": sum(r["gc"]["gen2"]["count"] for r in side_runs),
            "gen2_max_ms": max((r["gc"]["gen2"]["max_ms"] for r in side_runs), default=math.nan),
            "gc_tracked_objects": spread([r["gc_tracked_objects"] for r in side_runs], 0),
            "failed_segments": failed[side],
        }
    return {
        "points": args.points,
        "seconds_per_side": args.stall_seconds,
        "segments": args.repeats,
        "summary": summary,
        "runs": runs,
    }


# --- 3. subscription throughput --------------------------------------------------------------------


def phase(args: argparse.Namespace, server: Worker, ready: Json, **kwargs: Any) -> Json:
    """:func:`load_phase`, its failure recorded (the run goes on with the next measurement)."""
    try:
        return load_phase(args, server, ready, **kwargs)
    except WorkerError as exc:
        print(f"      failed: {exc}", flush=True)
        return {"error": str(exc)}


def throughput_summary(side_runs: Sequence[Json]) -> Json:
    def ok(key: str) -> list[Json]:
        return [r[key] for r in side_runs if key in r and "error" not in r[key]]

    def col(items: Sequence[Json], value: Callable[[Json], float], digits: int) -> Json:
        return spread([value(x) for x in items], digits)

    def first(p: Json) -> Json:
        client: Json = p["clients"][0]
        return client

    paced, sat, fan = ok("paced"), ok("saturated"), ok("fanout")
    return {
        "paced_delivered_pct": col(paced, lambda p: first(p)["delivered_pct"], 3),
        "paced_arrival_p50_ms": col(
            paced, lambda p: first(p)["arrival_ms"].get("p50", math.nan), 1
        ),
        "paced_arrival_p99_ms": col(
            paced, lambda p: first(p)["arrival_ms"].get("p99", math.nan), 1
        ),
        "paced_round_p50_ms": col(paced, lambda p: p["server"]["round_ms"].get("p50", math.nan), 1),
        "paced_max_stall_ms": col(paced, lambda p: p["server"]["stalls"]["max_ms"], 1),
        "read_p50_ms": col(paced, lambda p: p["reader"]["latency_ms"].get("p50", math.nan), 2),
        "read_p99_ms": col(paced, lambda p: p["reader"]["latency_ms"].get("p99", math.nan), 2),
        "read_max_ms": col(paced, lambda p: p["reader"]["latency_ms"].get("max", math.nan), 1),
        "subscribe_10k_s": col(paced, lambda p: first(p)["subscribe_s"][0], 2),
        "saturated_changes_per_s": col(sat, lambda s: s["server"]["changes_per_s"], 0),
        "saturated_notifications_per_s": col(sat, lambda s: first(s)["notifications_per_s"], 0),
        "saturated_delivered_pct": col(sat, lambda s: first(s)["delivered_pct"], 2),
        "saturated_max_stall_ms": col(sat, lambda s: s["server"]["stalls"]["max_ms"], 1),
        "fanout_worst_client_delivered_pct": col(
            fan, lambda f: min(c["delivered_pct"] for c in f["clients"]), 3
        ),
        "fanout_arrival_p99_ms": col(
            fan, lambda f: max(c["arrival_ms"].get("p99", math.nan) for c in f["clients"]), 1
        ),
        "fanout_max_stall_ms": col(fan, lambda f: f["server"]["stalls"]["max_ms"], 1),
        "client_disconnects": sum(
            c["disconnects"] for p in (*paced, *sat, *fan) for c in p["clients"]
        ),
        "reader_disconnects": sum(p["reader"]["disconnects"] for p in paced),
        "reads_ok": sum(p["reader"]["reads"] for p in paced),
        "reads_failed": sum(p["reader"]["errors"] for p in paced),
        "failed_phases": [
            f"{key}: {r[key]['error']}"
            for r in side_runs
            for key in PHASES
            if "error" in r.get(key, {})
        ],
    }


def test_throughput(args: argparse.Namespace, workdir: Path) -> Json:
    runs: dict[str, list[Json]] = {PLANTGUARD: [], PLAIN: []}
    for rep in range(args.repeats):
        for side in alternate(rep):
            print(f"  throughput {side}, repeat {rep + 1}/{args.repeats}", flush=True)
            try:
                server, ready = start_server(side, args.points, server_timeout(args.points))
            except WorkerError as exc:
                runs[side].append({key: {"error": str(exc)} for key in PHASES})
                continue
            run: Json = {"server_start_s": ready["start_s"], "rss_mb": round(ready["VmRSS"], 1)}
            try:
                print("    (a) paced, with a reader", flush=True)
                run["paced"] = phase(
                    args, server, ready, clients=1, mode="paced", seconds=args.paced_seconds,
                    reader=True,
                )  # fmt: skip
                print("    (b) saturated", flush=True)
                run["saturated"] = phase(
                    args, server, ready, clients=1, mode="saturated",
                    seconds=args.saturated_seconds,
                )  # fmt: skip
                print(f"    (c) fan-out to {args.fanout_clients} clients", flush=True)
                run["fanout"] = phase(
                    args, server, ready, clients=args.fanout_clients, mode="paced",
                    seconds=args.fanout_seconds,
                )  # fmt: skip
            finally:
                run["server_log"] = stop_server(server).get("log")
            runs[side].append(run)
    summary = {side: throughput_summary(side_runs) for side, side_runs in runs.items()}
    return {
        "points": args.points,
        "publish_ms": args.publish_ms,
        "queue_size": args.queue_size,
        "paced_seconds": args.paced_seconds,
        "saturated_seconds": args.saturated_seconds,
        "fanout_clients": args.fanout_clients,
        "fanout_seconds": args.fanout_seconds,
        "summary": summary,
        "runs": runs,
    }


# --- 4. alarm latency ---------------------------------------------------------------------------


def start_modbus_server(cwd: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "plantguard_modbus.testserver", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        stop_process(proc)
        raise WorkerError(f"Modbus test server did not start: {line!r}")
    return proc, int(line)


def test_alarms(args: argparse.Namespace, workdir: Path) -> Json:
    points = args.points
    per_device = points // 100
    modbus, port = start_modbus_server(workdir)
    try:
        modbus_clear(port, 2 * points)
        options = {"modbus_port": port, "poll_interval": args.poll_interval}
        print(f"  alarms: gateway of {points} points polling 127.0.0.1:{port}", flush=True)
        server, ready = start_server("engine", points, server_timeout(points), options)
        try:
            alarm_points = list(range(0, per_device, 10))
            targets = []
            for k in range(args.alarm_activations):
                device = (37 * k) % 100
                point = alarm_points[k % len(alarm_points)]
                register = register_of(device, point, per_device, True)
                targets.append((f"d{device}.p{point}", register))
            spec = {
                "modbus_port": port,
                "targets": targets,
                "poll_interval": ready["poll_interval"],
                "timeout": 30.0 + 5 * ready["poll_interval"],
            }
            worker = Worker(
                client_process, ("alarms", ready["endpoint"], ready["namespace"], spec), "alarms"
            )
            try:
                result = worker.recv(args.alarm_activations * (2 * spec["timeout"] + 5) + 120)
            finally:
                worker.close(30)
        finally:
            final = stop_server(server, 180)
    finally:
        stop_process(modbus)
    return {
        "points": points,
        "poll_interval_s": ready["poll_interval"],
        "scan_interval_s": ready["scan_interval"],
        "rss_mb": round(ready["VmRSS"], 1),
        **result,
        "gateway_stalls": final.get("stalls"),
        "gateway_gc": final.get("gc"),
        "gateway_log": final.get("log"),
    }


# --- 5. HistoryRead (placeholder) -----------------------------------------------------------------


HISTORY_SAMPLES = 86_400


def test_history(args: argparse.Namespace, workdir: Path) -> Json:
    """HistoryRead of 86,400 raw values of one point vs ``Store.trend`` of the same range.

    The gateway (``--points``) starts on a store holding a day of one-second samples
    of its first point; ``Store.trend`` in the gateway process and a client's
    ``read_raw_history`` alternate, ``--repeats`` times each.  Code without
    ``plantguard_opcua.history`` gets :func:`store_trend_only`.
    """
    if not history_module_present():
        return store_trend_only(args, workdir)
    t0 = time.time() - 3 * 86_400.0  # whole seconds, long before anything the devices send
    t0 = float(int(t0))
    options = {"samples": HISTORY_SAMPLES, "t0": t0}
    print(f"  history: gateway of {args.points} points, {HISTORY_SAMPLES:,} samples", flush=True)
    server, ready = start_server("history", args.points, server_timeout(args.points), options)
    trend_s: list[float] = []
    read_s: list[float] = []
    counts: set[tuple[str, int]] = set()
    errors: list[str] = []
    try:
        spec = {"identifier": ready["identifier"], **options}
        [client] = start_clients("history", ready, [spec], 120)
        try:
            for rep in range(args.repeats):
                for side in alternate(rep):
                    worker = server if side == PLANTGUARD else client
                    worker.send({"cmd": "trend" if side == PLANTGUARD else "read"})
                    answer = worker.recv(600)
                    if "error_text" in answer:
                        errors.append(answer["error_text"])
                        continue
                    (trend_s if side == PLANTGUARD else read_s).append(answer["seconds"])
                    counts.add(
                        ("Store.trend" if side == PLANTGUARD else "HistoryRead", answer["values"])
                    )
            client.send({"cmd": "stop"})
            client.recv(60)
        finally:
            client.close(30)
    finally:
        final = stop_server(server)
    return {
        "samples": HISTORY_SAMPLES,
        "points": args.points,
        "store_trend_ms": spread([1000 * s for s in trend_s], 1),
        "history_read_ms": spread([1000 * s for s in read_s], 1),
        "history_read": {"status": "measured" if read_s else "failed", "errors": errors[:3]},
        "values_returned": sorted(f"{side}: {n}" for side, n in counts),
        "gateway_log": final.get("log"),
    }


def history_module_present() -> bool:
    """Whether the plantguard_opcua in use has a history module of its own.

    Checked by location: with an older checkout first on PYTHONPATH, the editable
    install's finder would otherwise find the work tree's module instead.
    """
    from importlib.util import find_spec

    import plantguard_opcua

    spec = find_spec("plantguard_opcua.history")  # a module or a package
    if spec is None or spec.origin is None:
        return False
    return Path(plantguard_opcua.__file__).parent in Path(spec.origin).parents


def store_trend_only(args: argparse.Namespace, workdir: Path) -> Json:
    """Before ``plantguard_opcua.history``: only the floor, ``Store.trend`` of the 86,400 rows."""
    import numpy as np

    from plantguard.model import Point
    from plantguard.store import Store

    samples = HISTORY_SAMPLES
    store = Store(str(workdir / "history.db"))
    try:
        point = Point.model_validate({"id": "d0.p0", "device_id": "d0"})
        keys = store.register_points([point])
        t0 = 1_700_000_000.0
        store.write_history(
            np.full(samples, keys[point.id], dtype=np.int64),
            t0 + np.arange(samples, dtype=np.float64),
            np.round(50 + 10 * np.sin(np.arange(samples) / 600), 4),
            np.zeros(samples, dtype=np.uint8),
        )
        trend_s = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            trend = store.trend(point.id, t0, t0 + samples)
            trend_s.append(time.perf_counter() - began)
            assert trend.value.size == samples, trend.value.size
    finally:
        store.close()
    return {
        "samples": samples,
        "store_trend_ms": spread([1000 * s for s in trend_s], 1),
        "history_read_ms": {"n": 0},
        "history_read": {
            "status": "not available",
            "errors": ["plantguard_opcua.history does not exist in this code"],
        },
    }


# --- report ---------------------------------------------------------------------------------------


def fmt(s: Json | None, unit: str = "") -> str:
    if not s or not s.get("n"):
        return "—"

    def one(x: float) -> str:
        if isinstance(x, float) and math.isnan(x):
            return "nan"
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"

    return f"{one(s['min'])} / {one(s['median'])} / {one(s['max'])}{unit}"


def markdown(results: Json) -> str:
    lines = [f"# OPC UA benchmark — {results.get('label') or 'run'} ({results['measured_at']})", ""]
    lines.append("min / median / max over repeats; PlantGuard and plain asyncua interleaved.")
    for run in results.get("runs", []):
        code = run["code"]
        git = code.get("plantguard_opcua_git") or {}
        where = (
            f"git {git['head'][:7]}{' + uncommitted' if git.get('dirty') else ''}" if git else ""
        )
        lines.append(
            f"\n- {run['measured_at']}: {', '.join(run['tests'])} — plantguard_opcua from "
            f"{code['plantguard_opcua']} {where}, {run.get('seconds', '?')} s, load average "
            f"{run['machine']['loadavg_at_start'][0]:.1f} at start"
        )
    if "startup" in results:
        lines += [
            "",
            "## Start-up (process start → client connected) and memory",
            "",
            "| points | side | n | start s | RSS MB | KB per point |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["startup"]["rows"]:
            for side in (PLANTGUARD, PLAIN):
                s = row[side]
                lines.append(
                    f"| {row['points']:,} | {side} | {s['start_s'].get('n', 0)} | {fmt(s['start_s'])} "
                    f"| {fmt(s['rss_mb'])} | {fmt(s['rss_kb_per_point'])} |"
                )
            for note in row["skipped"]:
                lines.append(f"| {row['points']:,} | skipped | | {note} | | |")
        for m in results["startup"].get("marginal_kb_per_point", []):
            lines.append(
                f"\nRSS added per point from {m['from']:,} to {m['to']:,} points: "
                f"plantguard {m.get(PLANTGUARD, '—')} KB, plain {m.get(PLAIN, '—')} KB."
            )
    if "stalls" in results:
        st = results["stalls"]
        lines += [
            "",
            f"## Event-loop stalls at {st['points']:,} points, 1 Hz, one subscriber "
            f"({st['seconds_per_side']:.0f} s per side in {st['segments']} segments)",
            "",
            "| side | max stall ms per segment | worst ms | p99 ms | >100 ms | >1 s | client disconnects | gen2 GCs | gen2 max ms | GC-tracked objects |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for side in (PLANTGUARD, PLAIN):
            s = st["summary"][side]
            lines.append(
                f"| {side} | {fmt(s['max_stall_ms'])} | {s['worst_stall_ms']:,.0f} | {fmt(s['p99_ms'])} "
                f"| {s['stalls_over_100ms']} | {s['stalls_over_1s']} | {s['client_disconnects']} "
                f"| {s['gen2_collections']} | {s['gen2_max_ms']:,.0f} | {fmt(s['gc_tracked_objects'])} |"
            )
    if "throughput" in results:
        tp = results["throughput"]
        lines += [
            "",
            f"## Subscriptions at {tp['points']:,} points (publishing {tp['publish_ms']:.0f} ms, "
            f"queue {tp['queue_size']})",
            "",
            "| | plantguard | plain |",
            "|---|---|---|",
        ]
        labels = [
            ("subscribe all items, s", "subscribe_10k_s", ""),
            ("(a) 1 Hz: delivered %", "paced_delivered_pct", ""),
            ("(a) arrival delay p50 ms", "paced_arrival_p50_ms", ""),
            ("(a) arrival delay p99 ms", "paced_arrival_p99_ms", ""),
            ("(a) server round (update + publish) p50 ms", "paced_round_p50_ms", ""),
            ("(a) Read latency p50 ms", "read_p50_ms", ""),
            ("(a) Read latency p99 ms", "read_p99_ms", ""),
            ("(a) Read latency max ms", "read_max_ms", ""),
            ("(b) saturated: changes/s made", "saturated_changes_per_s", ""),
            ("(b) saturated: notifications/s received", "saturated_notifications_per_s", ""),
            (f"(c) {tp['fanout_clients']} clients 1 Hz: worst client delivered %", "fanout_worst_client_delivered_pct", ""),
            ("(c) arrival delay p99 ms (worst client)", "fanout_arrival_p99_ms", ""),
            ("(c) max event-loop stall ms", "fanout_max_stall_ms", ""),
            ("(a) max event-loop stall ms", "paced_max_stall_ms", ""),
            ("(b) max event-loop stall ms", "saturated_max_stall_ms", ""),
            ("(b) saturated: delivered %", "saturated_delivered_pct", ""),
        ]  # fmt: skip
        for label, key, unit in labels:
            pg, plain = tp["summary"][PLANTGUARD][key], tp["summary"][PLAIN][key]
            lines.append(f"| {label} | {fmt(pg, unit)} | {fmt(plain, unit)} |")
        pg, plain = tp["summary"][PLANTGUARD], tp["summary"][PLAIN]
        lines.append(
            f"| client / reader disconnects | {pg['client_disconnects']} / {pg['reader_disconnects']} "
            f"| {plain['client_disconnects']} / {plain['reader_disconnects']} |"
        )
        lines.append(
            f"| (a) Reads done / failed | {pg['reads_ok']} / {pg['reads_failed']} "
            f"| {plain['reads_ok']} / {plain['reads_failed']} |"
        )
        for side in (PLANTGUARD, PLAIN):
            for failure in tp["summary"][side]["failed_phases"]:
                lines.append(f"\n{side}: failed phase {failure}")
    if "alarms" in results:
        al = results["alarms"]
        raise_ms, clear_ms = al["raise_ms"], al["clear_ms"]
        lines += [
            "",
            f"## Alarm latency at {al['points']:,} points: Modbus write → event on i=2253 "
            f"(PlantGuard only)",
            "",
            "| poll s | scan s | activations | missed | raise p50 / p99 / max ms | clear p50 / p99 / max ms |",
            "|---|---|---|---|---|---|",
            f"| {al['poll_interval_s']} | {al['scan_interval_s']} | {al['activations']} | {al['missed']} "
            f"| {raise_ms.get('p50')} / {raise_ms.get('p99')} / {raise_ms.get('max')} "
            f"| {clear_ms.get('p50')} / {clear_ms.get('p99')} / {clear_ms.get('max')} |",
        ]
    if "history" in results:
        hi = results["history"]
        lines += [
            "",
            f"## History: {hi['samples']:,} raw values of one point",
            "",
            f"- Store.trend (in the gateway process): {fmt(hi['store_trend_ms'], ' ms')}",
            f"- HistoryRead from a client (its decoding included): {fmt(hi['history_read_ms'], ' ms')} "
            f"({hi['history_read']['status']}{'; ' if hi['history_read']['errors'] else ''}"
            f"{'; '.join(hi['history_read']['errors'])})",
        ]
    return "\n".join(lines) + "\n"


def code_info() -> Json:
    """Which PlantGuard code ran: module locations and the git state of the repo holding them."""
    import plantguard
    import plantguard_opcua

    source = Path(plantguard_opcua.__file__).resolve().parent
    return {
        "plantguard": str(Path(plantguard.__file__).resolve().parent),
        "plantguard_opcua": str(source),
        "plantguard_opcua_git": git_state(source),
        "bench_git": git_state(Path(__file__).resolve().parent),
    }


def git_state(folder: Path) -> Json | None:
    """HEAD and whether ``folder`` has uncommitted changes (None: not in a git work tree)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head, "dirty": bool(dirty)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=TESTS, default=list(TESTS))
    parser.add_argument("--quick", action="store_true",
                        help="10k only, 120 s of stalls, 15/8/15 s load phases")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000],
                        help="start-up sizes (points)")  # fmt: skip
    parser.add_argument("--size-repeats", nargs="*", default=[], metavar="SIZE=N",
                        help="fewer start-up repeats for a size, e.g. 100000=1")  # fmt: skip
    parser.add_argument("--points", type=int, default=10_000, help="size of tests 2–4")
    parser.add_argument("--stall-seconds", type=float, default=600.0,
                        help="observation per side, split into --repeats segments")  # fmt: skip
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--saturated-seconds", type=float, default=15.0)
    parser.add_argument("--fanout-clients", type=int, default=10)
    parser.add_argument("--fanout-seconds", type=float, default=30.0)
    parser.add_argument("--publish-ms", type=float, default=500.0)
    parser.add_argument("--queue-size", type=int, default=10)
    parser.add_argument("--read-nodes", type=int, default=100)
    parser.add_argument("--read-interval", type=float, default=0.05)
    parser.add_argument("--drain-limit", type=float, default=30.0,
                        help="seconds a client waits for late notifications")  # fmt: skip
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--alarm-activations", type=int, default=20)
    parser.add_argument("--label", default="", help="recorded in the results, e.g. 'before'")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true",
                        help="replace only the tests run now in an existing --output")  # fmt: skip
    parser.add_argument("--serve-plain", type=int, metavar="POINTS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [10_000]
        args.stall_seconds = 120.0
        args.paced_seconds, args.saturated_seconds, args.fanout_seconds = 15.0, 8.0, 15.0
    return args


RUNNERS: dict[str, Callable[[argparse.Namespace, Path], Json]] = {
    "startup": test_startup,
    "stalls": test_stalls,
    "throughput": test_throughput,
    "alarms": test_alarms,
    "history": test_history,
}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_plain:
        asyncio.run(serve_plain_main(args.serve_plain))
        return
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # the start-up probe's connects
    began = time.perf_counter()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run: Json = {
        "measured_at": now,
        "tests": list(args.only),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "code": code_info(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(),
        },
    }
    results: Json = {"label": args.label, "measured_at": now, "seconds": {}, "runs": []}
    earlier: Json = {}
    if args.update and args.output.exists():  # keep the other tests of an earlier run
        results = json.loads(args.output.read_text())
        for name in args.only:
            earlier[name] = results.pop(name, None)
            results.pop(name + "_error", None)
    results["runs"].append(run)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opcua-bench-") as tmp:
        for name in TESTS:
            if name not in args.only:
                continue
            print(f"{name} …", flush=True)
            test_began = time.perf_counter()
            try:
                results[name] = RUNNERS[name](args, Path(tmp))
                if name == "startup" and earlier.get(name):  # other sizes of the earlier run stay
                    results[name] = merge_startup(earlier[name], results[name])
            except (WorkerError, OSError, TimeoutError) as exc:
                results[name + "_error"] = f"{type(exc).__name__}: {exc}"
                print(f"  {name} failed: {exc}", flush=True)
            results["seconds"][name] = round(time.perf_counter() - test_began, 1)
            run["seconds"] = round(time.perf_counter() - began, 1)
            run["machine"]["loadavg_at_end"] = os.getloadavg()
            args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")
    report = markdown(results)
    args.output.with_suffix(".md").write_text(report)
    print(report)
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
