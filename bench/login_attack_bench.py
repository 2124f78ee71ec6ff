"""Login attack benchmark: does password guessing on the OPC UA server slow the plant side?

Before :mod:`plantguard.throttle`, every wrong password was an scrypt check on the
event loop: four clients guessing made Modbus polling (due every 0.5 s) go 0.71 s
without a poll.  This bench measures the Modbus poll gaps with and without an attack.

Set-up (all on 127.0.0.1):

* **plant** — the simulated plant of ``plantguard_sim`` (pump, tank, gas detector) on a
  real Modbus TCP server, in its own process (``--serve-plant``), as field devices are;
* **gateway** — the whole engine (``Engine.run``: drivers, rules, alarm manager, history,
  OPC UA service) in this process, the demo's site with every device polled every
  0.5 s, OPC UA with the demo's users and the policy None endpoint (the cheapest for an
  attacker);
* **attackers** — ``--clients`` processes (default 4) hammering wrong passwords for the
  user ``operator`` with asyncua: even-numbered ones open a new connection and session
  per guess, odd-numbered ones repeat ActivateSession over one secure channel.

Phases, ``--seconds`` each (default 20), interleaved and rotated over ``--repeats``
(default 3): ``idle`` (no attack), ``throttled`` (attack; the gateway as shipped, a fresh
:class:`~plantguard.throttle.LoginThrottle` with the default settings at the start of
the phase — delays start after 5 failures, the lock at 20 comes ~55 s into an attack,
after the phase), ``locked`` (the same, with the attacked user and 127.0.0.1 locked as
the phase starts: the flood of instantly refused attempts that follows a lock),
``unthrottled`` (attack; the user manager swapped for the code before the throttle —
scrypt on the event loop, a WARNING per guess — for comparison).

Measured per phase: the gap between consecutive completed polls of each device (the
driver's ``read`` is wrapped to timestamp each poll cycle): the longest and the p99;
the event loop's lateness (a task sleeping 5 ms); the gateway's CPU seconds; attempts
the attackers made and how they were answered; the server's own counts (passwords
hashed, attempts refused unchecked by a lock); WARNING lines logged; and whether the
right password, tried from 127.0.0.1 at the end of the phase, was accepted.

    python bench/login_attack_bench.py                   # 3 repeats x 4 phases x 20 s (~6 min)
    python bench/login_attack_bench.py --seconds 5 --repeats 1

Results: ``bench/results/login_attack.json`` and ``.md`` beside it.  Every process the
bench starts is stopped by it, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

HOST = "127.0.0.1"
RESULTS = Path(__file__).with_name("results") / "login_attack.json"
POLL_INTERVAL = 0.5
PHASES = ("idle", "throttled", "locked", "unthrottled")
ATTACKED_USER = "operator"
Json = dict[str, Any]


# --- helpers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


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


# --- the plant, in its own process ---------------------------------------------------------


def serve_plant(port: int) -> None:
    from plantguard_sim.plant import PlantModel
    from plantguard_sim.server import SimServer

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with SimServer(PlantModel(scenario="none"), host=HOST, port=port):
            print("ready", flush=True)
            await stop.wait()

    asyncio.run(run())


def start_plant() -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-plant", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the plant simulator did not start")
    return proc, port


# --- attackers, in their own processes -----------------------------------------------------


def attacker(endpoint: str, index: int, seconds: float, conn: Connection) -> None:
    logging.disable(logging.CRITICAL)  # asyncua's client logs every refusal
    conn.send(asyncio.run(_attack(endpoint, index, seconds)))
    conn.close()


async def _attack(endpoint: str, index: int, seconds: float) -> Json:
    from asyncua.client.client import Client
    from asyncua.ua.status_codes import StatusCodes
    from asyncua.ua.uaerrors import UaError, UaStatusCodeError

    one_channel = index % 2 == 1
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    guess = 0
    while time.monotonic() < deadline:
        client = Client(endpoint, timeout=10)
        try:
            await client.connect_socket()
            await client.send_hello()
            await client.open_secure_channel()
            await client.create_session()
        except Exception:
            counts["connect_errors"] += 1
            client.disconnect_socket()
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < deadline:
                guess += 1
                counts["attempts"] += 1
                try:
                    await client.activate_session(ATTACKED_USER, f"guess-{index}-{guess}")
                    counts["accepted"] += 1
                except UaStatusCodeError as exc:
                    denied = exc.code == StatusCodes.BadUserAccessDenied
                    counts["denied" if denied else f"status_{exc.code:#x}"] += 1
                except (TimeoutError, OSError, UaError):
                    counts["errors"] += 1
                    break
                if not one_channel:
                    break
        finally:
            client.disconnect_socket()
    counts["mode_one_channel" if one_channel else "mode_reconnect"] = 1
    return dict(counts)


# --- the gateway, in this process ----------------------------------------------------------


def site_text(opcua_port: int, modbus_port: int, db: str, pki: str) -> str:
    from plantguard.cli import demo_site_text

    data = yaml.safe_load(
        demo_site_text(opcua_port=opcua_port, modbus_port=modbus_port, db=db, scenario="none")
    )
    data["services"].pop("sim", None)  # the plant is another process
    data["services"]["opcua"].update(security=["none"], anonymous=True, pki_dir=pki)
    data["poll_groups"] = {name: {"interval": POLL_INTERVAL} for name in data["poll_groups"]}
    data["scan_interval"] = POLL_INTERVAL
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


class PollClock:
    """Timestamps of every completed poll cycle, per device (the driver's ``read`` wrapped)."""

    def __init__(self, drivers: dict[str, Any]) -> None:
        self.times: dict[str, list[float]] = {}
        for device_id, driver in drivers.items():
            stamps: list[float] = []
            self.times[device_id] = stamps
            read = driver.read

            async def timed(points: Any, _read: Any = read, _stamps: list[float] = stamps) -> Any:
                result = await _read(points)
                _stamps.append(time.monotonic())
                return result

            driver.read = timed

    def gaps(self, start: float, end: float) -> list[float]:
        """Gaps between consecutive polls completed in [start, end] (and the poll before)."""
        out: list[float] = []
        for stamps in self.times.values():
            window = [t for t in stamps if start <= t <= end]
            before = [t for t in stamps if t < start]
            if before:
                window.insert(0, before[-1])
            out.extend(b - a for a, b in itertools.pairwise(window))
        return out


class LoopProbe:
    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.late: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(self.period)
            now = time.monotonic()
            self.late.append((now, now - began - self.period))

    def between(self, start: float, end: float) -> list[float]:
        return [late for t, late in self.late if start <= t <= end]


class WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), record.name, record.getMessage()))

    def between(self, start: float, end: float) -> list[tuple[str, str]]:
        return [(name, msg) for t, name, msg in self.lines if start <= t <= end]


def legacy_user_manager(authenticate: Callable[[str, str], Any]) -> Any:
    """The user manager as it was before plantguard.throttle (git 33f8808): the password
    hashed on the event loop, a WARNING line and an event (source "opcua") per guess."""
    from asyncua.crypto.permission_rules import UserRole

    from plantguard.auth import ANONYMOUS
    from plantguard.events import SecurityEvent, publish
    from plantguard_opcua.compat import _PrincipalUser

    log = logging.getLogger("plantguard_opcua.compat")

    class LegacyUserManager:
        checked = 0

        def get_user(
            self, iserver: Any, username: Any = None, password: Any = None, certificate: Any = None
        ) -> Any:
            if username is None:
                return _PrincipalUser(role=UserRole.User, name=None, principal=ANONYMOUS)
            self.checked += 1
            principal = authenticate(username, password or "")
            if principal is None:
                log.warning("OPC UA login refused for user %r", username)
                publish(SecurityEvent("failed_login", source="opcua", user=username))
                return None
            return _PrincipalUser(role=UserRole.User, name=username, principal=principal)

    return LegacyUserManager()


async def right_password(endpoint: str) -> str:
    """How a login with the right password ends: accepted, refused or timed out (10 s)."""
    from asyncua.client.client import Client
    from asyncua.ua.status_codes import StatusCodes
    from asyncua.ua.uaerrors import UaError, UaStatusCodeError

    client = Client(endpoint, timeout=10)
    client.set_user(ATTACKED_USER)
    client.set_password(ATTACKED_USER)
    try:
        async with client:
            return "accepted"
    except UaStatusCodeError as exc:
        return "refused" if exc.code == StatusCodes.BadUserAccessDenied else f"{exc.code:#x}"
    except (TimeoutError, OSError, UaError):
        return "timed out"


@dataclass
class Gateway:
    """The running gateway and what watches it."""

    args: argparse.Namespace
    endpoint: str
    server: Any
    manager: Any
    polls: PollClock
    probe: LoopProbe
    warnings: WarningCounter


async def start_attackers(gw: Gateway) -> list[tuple[Any, Connection]]:
    ctx = mp.get_context("spawn")
    procs: list[tuple[Any, Connection]] = []
    for index in range(gw.args.clients):
        receive, send = ctx.Pipe(duplex=False)
        # Attackers keep going a little past the window: the right password is tried
        # at its end, during the attack.
        proc = ctx.Process(
            target=attacker, args=(gw.endpoint, index, gw.args.seconds + 4, send), daemon=True
        )
        proc.start()
        send.close()
        procs.append((proc, receive))
    await asyncio.sleep(1.0)  # let the attackers import and connect
    return procs


async def collect_attackers(procs: list[tuple[Any, Connection]]) -> Counter[str]:
    attack: Counter[str] = Counter()
    for proc, receive in procs:
        try:
            if await asyncio.to_thread(receive.poll, 60):
                attack.update(receive.recv())
        finally:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
    return attack


async def run_phase(phase: str, gw: Gateway) -> Json:
    from plantguard.throttle import LoginThrottle

    manager = gw.manager
    legacy = None
    manager.throttle = LoginThrottle()  # every phase starts with nothing counted
    if phase == "locked":  # where an attack is after ~55 s with the default settings
        for _ in range(manager.throttle.settings.lock_after):
            manager.throttle.fail(ATTACKED_USER, HOST)
    elif phase == "unthrottled":
        legacy = legacy_user_manager(manager._authenticate)
        gw.server.iserver.user_manager = legacy
    procs = await start_attackers(gw) if phase != "idle" else []
    cpu0, start = time.process_time(), time.monotonic()
    await asyncio.sleep(gw.args.seconds)
    end, cpu1 = time.monotonic(), time.process_time()
    right = await right_password(gw.endpoint)
    attack = await collect_attackers(procs)
    if legacy is not None:
        gw.server.iserver.user_manager = manager
    gaps = gw.polls.gaps(start, end)
    late = gw.probe.between(start, end)
    lines = gw.warnings.between(start, end)
    result: Json = {
        "phase": phase,
        "seconds": round(end - start, 2),
        "polls": len(gaps),
        "longest_gap_s": round(max(gaps, default=math.nan), 3),
        "p99_gap_s": round(percentile(gaps, 99), 3),
        "loop_late_max_ms": round(1000 * max(late, default=math.nan), 1),
        "loop_late_p99_ms": round(1000 * percentile(late, 99), 1),
        "gateway_cpu_s": round(cpu1 - cpu0, 2),
        "attack": dict(attack),
        "warning_lines": len(lines),
        "warning_lines_login": sum(1 for _, m in lines if "login" in m.lower()),
        "right_password_at_end": right,
    }
    if phase in ("throttled", "locked"):
        result["server"] = dict(manager.throttle.counts)
        manager.throttle.close()
    elif legacy is not None:
        result["server"] = {"checked": legacy.checked}
    return result


async def start_gateway(
    args: argparse.Namespace, store: Any, workdir: Path, modbus_port: int, stop: asyncio.Event
) -> tuple[Gateway, asyncio.Task[None]]:
    from plantguard.config import parse_site
    from plantguard.engine import Engine
    from plantguard.host import default_host
    from plantguard_opcua.compat import PrincipalUserManager

    opcua_port = free_port()
    host = default_host()
    text = site_text(opcua_port, modbus_port, store.url, str(workdir / "pki"))
    engine = Engine(parse_site(text, "login-bench", host), host, store)
    runner = asyncio.create_task(engine.run(stop))
    ready = asyncio.create_task(engine.ready.wait())
    await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        runner.result()
        raise RuntimeError("the gateway stopped during start-up")
    server = engine.services["opcua"].server  # type: ignore[attr-defined]
    manager = server.iserver.user_manager
    assert isinstance(manager, PrincipalUserManager)
    warnings = WarningCounter()
    logging.getLogger().addHandler(warnings)
    gw = Gateway(
        args,
        f"opc.tcp://{HOST}:{opcua_port}/plantguard",
        server,
        manager,
        PollClock(engine.drivers),
        LoopProbe(),
        warnings,
    )
    return gw, runner


async def run_bench(args: argparse.Namespace) -> Json:
    from plantguard.auth import DEMO_USERS, ensure_users
    from plantguard.store import Store

    plant, modbus_port = start_plant()
    workdir = Path(tempfile.mkdtemp(prefix="login-bench-"))
    store = Store(str(workdir / "gateway.db"))
    ensure_users(store.users, DEMO_USERS)
    phases: list[Json] = []
    stop = asyncio.Event()
    runner: asyncio.Task[None] | None = None
    try:
        gw, runner = await start_gateway(args, store, workdir, modbus_port, stop)
        probe_task = asyncio.create_task(gw.probe.run())
        await asyncio.sleep(3.0)  # first polls, connections settled
        for repeat in range(args.repeats):
            shift = repeat % len(PHASES)
            for phase in PHASES[shift:] + PHASES[:shift]:
                result = await run_phase(phase, gw)
                result["repeat"] = repeat
                phases.append(result)
                print(json.dumps(result), flush=True)
                await asyncio.sleep(2.0)
        probe_task.cancel()
        logging.getLogger().removeHandler(gw.warnings)
    finally:
        stop.set()
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, timeout=60)
        store.close()
        plant.terminate()
        try:
            plant.wait(timeout=10)
        except subprocess.TimeoutExpired:
            plant.kill()
    return {"phases": phases, "summary": summarise(phases)}


def summarise(phases: list[Json]) -> Json:
    out: Json = {}
    for name in PHASES:
        rows = [p for p in phases if p["phase"] == name]
        if not rows:
            continue
        attempts = [p["attack"].get("attempts", 0) for p in rows]
        summary: Json = {
            "longest_gap_s": spread([p["longest_gap_s"] for p in rows]),
            "p99_gap_s": spread([p["p99_gap_s"] for p in rows]),
            "loop_late_max_ms": spread([p["loop_late_max_ms"] for p in rows], 1),
            "gateway_cpu_s": spread([p["gateway_cpu_s"] for p in rows], 2),
            "attempts": spread(attempts, 0),
            "denied": spread([p["attack"].get("denied", 0) for p in rows], 0),
            "warning_lines": spread([p["warning_lines"] for p in rows], 0),
            "right_password_at_end": [p["right_password_at_end"] for p in rows],
            "timed_out_or_dropped": spread([p["attack"].get("errors", 0) for p in rows], 0),
        }
        servers = [p.get("server", {}) for p in rows]
        if name != "idle":
            summary["passwords_hashed"] = spread([s.get("checked", 0) for s in servers], 0)
        if name in ("throttled", "locked"):
            summary["refused_by_lock"] = spread([s.get("refused_locked", 0) for s in servers], 0)
        out[name] = summary
    return out


def markdown(results: Json) -> str:
    run = results["run"]
    s = results["summary"]
    cols = [p for p in PHASES if p in s]

    def row(label: str, key: str, fmt: str = "{}") -> str:
        cells = []
        for p in cols:
            v = s[p].get(key)
            if v is None or not v.get("n"):
                cells.append("—")
            else:
                cells.append(" / ".join(fmt.format(v[k]) for k in ("min", "median", "max")))
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        f"# Login attack benchmark ({run['finished']})",
        "",
        f"Modbus polling every {POLL_INTERVAL} s (3 devices of the simulated plant, in another "
        f"process) while {run['clients']} clients guess passwords over OPC UA (policy None, "
        f"127.0.0.1); {run['seconds']:g} s per phase, phases interleaved, {run['repeats']} "
        "repeats; min / median / max over the repeats.  `throttled` is the gateway as shipped "
        "(default settings, fresh at each phase: attempts delayed 0.5 s doubling to 4 s after 5 "
        "failures; 20 failures, ~55 s into an attack, lock); `locked` the same with the user "
        "and 127.0.0.1 already locked when the phase starts (the rest of a 15 min lock); "
        "`unthrottled` swaps in the user manager of before `plantguard.throttle` (scrypt on "
        "the event loop, a WARNING per guess).",
        "",
        f"Machine: {run['machine']['platform']}, {run['machine']['cpus']} CPUs, Python "
        f"{run['machine']['python']}; git {run['git']}; {run['elapsed_s']:.0f} s.",
        "",
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
        row("longest poll gap, s", "longest_gap_s"),
        row("p99 poll gap, s", "p99_gap_s"),
        row("event loop late, max ms", "loop_late_max_ms"),
        row("gateway CPU s per phase", "gateway_cpu_s"),
        row("attempts made", "attempts", "{:.0f}"),
        row("refused (BadUserAccessDenied)", "denied", "{:.0f}"),
        row("attempts timed out (10 s) or dropped", "timed_out_or_dropped", "{:.0f}"),
        row("passwords hashed by the gateway", "passwords_hashed", "{:.0f}"),
        row("refused unchecked by the lock", "refused_by_lock", "{:.0f}"),
        row("WARNING lines logged", "warning_lines", "{:.0f}"),
        "| right password at the end of the phase | "
        + " | ".join(", ".join(s[p]["right_password_at_end"]) for p in cols)
        + " |",
        "",
        "Attackers: even-numbered ones open a connection and session per guess, odd-numbered "
        "ones repeat ActivateSession over one secure channel; an attempt that waits 10 s "
        "for its answer (throttled: queued behind the others' delays) is dropped.  The right "
        "password is tried from 127.0.0.1, the attackers' address, at the end of each phase, "
        "while the attack goes on for up to 4 s more (client timeout 10 s).  WARNING lines "
        "count every logger's WARNING and above, asyncua's too (in `unthrottled` it logs an "
        "ERROR per refused ActivateSession).",
        "",
    ]
    return "\n".join(lines)


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() + " (+ working tree)"
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="attacking processes")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--serve-plant", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_plant is not None:
        serve_plant(args.serve_plant)
        return
    # Every WARNING is counted (WarningCounter); only CRITICAL reaches the terminal, since
    # the unthrottled phase logs a line per guess.
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    console = logging.StreamHandler()
    console.setLevel(logging.CRITICAL)
    root.addHandler(console)
    began = time.monotonic()
    results = asyncio.run(run_bench(args))
    results["run"] = {
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": args.seconds,
        "repeats": args.repeats,
        "clients": args.clients,
        "poll_interval_s": POLL_INTERVAL,
        "elapsed_s": round(time.monotonic() - began, 1),
        "git": git_revision(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    report = markdown(results)
    args.output.with_suffix(".md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
