"""What ``plantguard demo`` and ``run`` print: where to connect, live values, alarms.

A person who just typed ``make demo`` should see within seconds that data is
flowing and, within half a minute, an alarm come up — without opening an HMI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import numpy as np

from .alarms import Transition
from .engine import Engine
from .model import Quality

__all__ = ["Console"]

_VALUE_EVERY = 5.0


class Console:
    def __init__(self, engine: Engine, db_url: str, *, quiet: bool, demo: bool) -> None:
        self._engine = engine
        self._db_url = db_url
        # What to pass as --db: the file path for SQLite, the URL otherwise.
        self._db_target = (
            db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:///") else db_url
        )
        self._quiet = quiet
        self._demo = demo
        engine.alarms.subscribe(self._on_transitions)

    def announce(self) -> None:
        site = self._engine.site
        lines = [
            f"PlantGuard: site {site.id!r} — {len(site.devices)} devices, {len(site.points)} points"
        ]
        for name, service in self._engine.services.items():
            endpoint = getattr(service, "endpoint", None)
            if endpoint:
                lines.append(f"  {name:<6} {endpoint}")
        lines.append(f"  store  {self._db_url}")
        if self._demo:
            opcua = getattr(
                self._engine.services.get("opcua"), "endpoint", "opc.tcp://127.0.0.1:4840"
            )
            sim = self._engine.site.services.get("sim", {})
            lines += [
                "What to try:",
                f"  - browse {opcua} with any OPC UA client (UaExpert, opcua-commander):",
                "    Objects › PlantGuard › demo › <area> › <device> › Points",
                "  - watch tank1.level: the scenario drives it past its HH limit (90 %) within 30 s,",
                "    then it drains back; the alarm comes and goes every cycle",
                f"  - force a value: write float32 registers of the simulator on 127.0.0.1:{sim.get('port', 5020)}"
                " (docs/simulator.md)",
                "  - log in as operator/operator (or engineer/engineer) to acknowledge and shelve",
                f"  - in another shell: .venv/bin/plantguard alarms list --db {self._db_target}",
                "    (also: alarms journal, alarms kpi --since 1h, maintenance due, stats, trend tank1.level)",
                "Ctrl-C stops cleanly.",
            ]
        print("\n".join(lines), flush=True)

    async def run(self) -> None:
        if self._quiet:
            return
        while True:
            await asyncio.sleep(_VALUE_EVERY)
            print(self._values_line(), flush=True)

    def _values_line(self) -> str:
        table = self._engine.table
        parts = []
        for i, pid in enumerate(table.point_ids):
            q = int(table.quality[i])
            v = float(table.values[i])
            if q >= Quality.BAD:
                parts.append(f"{pid}=BAD({Quality(q).name.removeprefix('BAD_').lower()})")
            elif np.isfinite(v):
                parts.append(f"{pid}={v:.4g}")
        now = dt.datetime.now().strftime("%H:%M:%S")
        return f"{now} values: " + "  ".join(parts)

    async def _on_transitions(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            now = dt.datetime.fromtimestamp(t.time).strftime("%H:%M:%S")
            who = f" by {t.user}" if t.user else ""
            print(
                f"{now} ALARM {t.alarm_id} {t.action}{who}: {t.after.value} {t.condition} — {t.message}",
                flush=True,
            )
