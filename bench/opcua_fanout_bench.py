"""Subscription throughput measured with node-opcua clients, PlantGuard beside plain asyncua.

``bench/opcua_bench.py`` measures throughput with asyncua clients, which decode about
20,000–25,000 notifications/s per process: above that its saturated and fan-out
figures measure the clients.  Here the subscribers are node-opcua clients (one
Node.js process, ``bench/opcua_load_client.js``; node-opcua comes from
``tests/interop/node_modules``, installed by ``make interop``), which decode several
times faster, so the figures are the server's:

* **saturated**: one client subscribed to every point (publishing 100 ms, queue 1);
  the server changes every point as fast as it can for ``--seconds``; notifications/s
  the client received, and changes/s the server made;
* **fan-out**: ``--clients`` clients each subscribed to every point; every point
  changes once a second for ``--seconds``; the share of changes the worst client got.

PlantGuard is the whole gateway (``Engine.run``) driven like in ``opcua_bench.py``;
plain is asyncua's server with ``write_attribute_value``.  Sides alternate, three
repeats, min/median/max.  Results: ``bench/results/opcua_fanout.json``.

    python bench/opcua_fanout_bench.py [--points 10000] [--clients 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from opcua_bench import GatewayTarget, PlainTarget, Walk, alternate, spread

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "bench" / "opcua_load_client.js"
NODE_MODULES = ROOT / "tests" / "interop" / "node_modules"
RESULTS = ROOT / "bench" / "results" / "opcua_fanout.json"


class LoadClients:
    """The node-opcua client process: subscribe, reset counts, report them."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, target: Any, clients: int) -> LoadClients:
        env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
        proc = await asyncio.create_subprocess_exec(
            "node", str(CLIENT), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        self = cls(proc)
        command = {
            "endpoint": target.endpoint, "namespace": target.namespace, "ids": target.ids,
            "publish_ms": 100, "queue_size": 1, "clients": clients,
        }  # fmt: skip
        await self._send(json.dumps(command))
        await asyncio.wait_for(self._answer(), 300)
        return self

    async def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def _answer(self) -> Any:
        assert self.proc.stdout is not None
        while True:
            line = (await self.proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError("the node-opcua load client ended")
            if line.startswith("PG "):
                return json.loads(line[3:])

    async def ask(self, what: str) -> Any:
        await self._send(what)
        return await asyncio.wait_for(self._answer(), 60)

    async def stop(self) -> None:
        await self._send("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def start_target(side: str, points: int, workdir: Path) -> Any:
    if side == "plantguard":
        return await GatewayTarget.start(points, workdir)
    return await PlainTarget.start(points)


async def run_phase(
    side: str, args: argparse.Namespace, workdir: Path, *, fanout: bool
) -> dict[str, Any]:
    target = await start_target(side, args.points, workdir)
    clients = await LoadClients.start(target, args.clients if fanout else 1)
    try:
        walk = Walk(args.points, seed=3)
        await asyncio.sleep(2.0)
        await clients.ask("reset")
        rounds = 0
        began = time.perf_counter()
        while time.perf_counter() - began < args.seconds:
            round_start = time.perf_counter()
            await target.write_round(walk.step(), time.time())
            rounds += 1
            if fanout:
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - round_start)))
            else:
                await asyncio.sleep(0)
        elapsed = time.perf_counter() - began
        await asyncio.sleep(3.0)  # the last publishes
        report = await clients.ask("report")
    finally:
        await clients.stop()
        await target.stop()
    totals = [r["total"] for r in report]
    return {
        "rounds": rounds,
        "seconds": round(elapsed, 2),
        "changes_per_s": round(rounds * args.points / elapsed),
        "notifications_per_s": round(sum(totals) / elapsed),
        "worst_client_delivered_pct": round(100 * min(totals) / (rounds * args.points), 2),
        "worst_item_count": min(r["min"] for r in report),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"points": args.points, "clients": args.clients, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("saturated", "fanout"):
            runs: dict[str, list[dict[str, Any]]] = {"plantguard": [], "plain": []}
            for rep in range(args.repeats):
                for side in alternate(rep):
                    workdir = Path(tmp) / f"{phase}-{side}-{rep}"
                    workdir.mkdir()
                    run = await run_phase(side, args, workdir, fanout=phase == "fanout")
                    print(phase, side, json.dumps(run), flush=True)
                    runs[side].append(run)
            results["runs"][phase] = runs
            results[phase] = {
                side: {
                    key: spread([r[key] for r in side_runs])
                    for key in (
                        "changes_per_s",
                        "notifications_per_s",
                        "worst_client_delivered_pct",
                    )
                }
                for side, side_runs in runs.items()
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not NODE_MODULES.is_dir():
        parser.error(f"{NODE_MODULES} is missing: run `make interop` (npm ci) first")
    results = asyncio.run(main_async(args))
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("saturated", "fanout")}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
