"""Alarm items: a loop check of every limit alarm, or its limits for an engineer to sign off.

A loop check (回路测试) shows that a limit alarm works end to end: the value is driven
past each configured limit through the engine's one write path (the OPC UA Write
of the point, as the ``--as`` engineer), and the alarm must arrive in the journal
(the store) *and* in the OPC UA event stream (the Server object's events) with the
limit that was crossed; then the value is restored.

Only devices the site file marks ``acceptance: {loop_check: write}`` are written to
— a simulator, or a device in a test mode.  Every other limit alarm is recorded
with its limits and the live value, status ``sign-off``: an engineer checks that
loop at the instrument and signs the record.  Nothing is ever written to them.

Steps, for an alarm with ``hh``/``h`` (and likewise ``l``/``ll``)::

    [value in alarm already? write a normal value, wait for the clear]
    write between h and hh  → journal: H,  event: LimitState High
    write above hh          → journal: HH, event: LimitState HighHigh
    restore: write the value read before (``restore: previous``) or NaN
             (``restore: release``: the simulator follows the plant again)

The restore is written whatever happened before it (a failed step, an error).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..alarms import AlarmStatus
from ..config import LoadedSite
from ..model import Device, Point
from ..store import Store
from ..store.schema import alarm_journal
from .gateway import Gateway, WriteFailed
from .record import Item, Status

__all__ = ["LIMIT_STATE_NAMES", "LimitSpec", "alarm_items", "limit_specs", "plan_steps"]

log = logging.getLogger(__name__)

LIMIT_STATE_NAMES = {"HH": "HighHigh", "H": "High", "L": "Low", "LL": "LowLow"}
#: Seconds the gateway gets beyond one poll, one scan and the on-delay to show an alarm.
SLACK = 5.0


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A point's ``limit`` rule as a loop check needs it."""

    device: Device
    point: Point
    limits: dict[str, float]  # of hh, h, l, ll: those configured
    deadband: float
    on_delay: float

    @property
    def alarm_id(self) -> str:
        return f"{self.point.id}.limit"

    def describe(self) -> str:
        unit = f" {self.point.unit}" if self.point.unit else ""
        parts = [f"{k.upper()} {v:g}{unit}" for k, v in sorted(self.limits.items(), key=_order)]
        return " / ".join(parts) + (f" (deadband {self.deadband:g})" if self.deadband else "")


def _order(kv: tuple[str, float]) -> int:
    return ("ll", "l", "h", "hh").index(kv[0])


def limit_specs(loaded: LoadedSite) -> list[LimitSpec]:
    """Every point's limit alarm, in site order."""
    configs = {pid: cfg.model_dump() for pid, cfg in loaded.rule_configs.get("limit", ())}
    specs = []
    for device in loaded.site.devices:
        for point in device.points:
            data = configs.get(point.id)
            if data is None:
                continue
            limits = {
                k: float(data[k])
                for k in ("hh", "h", "l", "ll")
                if isinstance(data.get(k), int | float) and not isinstance(data.get(k), bool)
            }
            specs.append(
                LimitSpec(
                    device,
                    point,
                    limits,
                    float(data.get("deadband") or 0.0),
                    float(data.get("on_delay") or 0.0),
                )
            )
    return specs


def _span(spec: LimitSpec) -> float:
    if spec.point.range is not None:
        return spec.point.range[1] - spec.point.range[0]
    values = list(spec.limits.values())
    return max(max(values) - min(values), *(abs(v) for v in values), 1.0)


def _step(spec: LimitSpec) -> float:
    """How far past a limit a loop check drives the value."""
    return max(0.05 * _span(spec), 2.0 * spec.deadband, 1e-6)


def _as_type(spec: LimitSpec, value: float, upward: bool) -> float:
    if spec.point.data_type == "int":
        return float(math.floor(value) + 1 if upward else math.ceil(value) - 1)
    return value


def plan_steps(spec: LimitSpec) -> list[tuple[str, float]]:
    """(condition, value) to write, in order: H then HH, L then LL."""
    lim, step = spec.limits, _step(spec)
    steps: list[tuple[str, float]] = []
    for outer, inner, sign in (("hh", "h", 1.0), ("ll", "l", -1.0)):
        upward = sign > 0
        if inner in lim:
            if outer in lim:
                value = (lim[inner] + lim[outer]) / 2
                if spec.point.data_type == "int":
                    value = _as_type(spec, lim[inner], upward)
            else:
                value = _as_type(spec, lim[inner] + sign * step, upward)
            steps.append((inner.upper(), value))
        if outer in lim:
            steps.append((outer.upper(), _as_type(spec, lim[outer] + sign * step, upward)))
    return steps


def _clear_band(spec: LimitSpec) -> tuple[float, float]:
    """Values at which the alarm is (or returns) normal, deadband included (open interval)."""
    lim = spec.limits
    highs = [lim[k] for k in ("h", "hh") if k in lim]
    lows = [lim[k] for k in ("l", "ll") if k in lim]
    high = min(highs) - spec.deadband if highs else math.inf
    low = max(lows) + spec.deadband if lows else -math.inf
    return low, high


def _normal_value(spec: LimitSpec) -> float:
    low, high = _clear_band(spec)
    step = _step(spec)
    if math.isfinite(low) and math.isfinite(high):
        return (low + high) / 2
    if math.isfinite(high):
        floor = spec.point.range[0] if spec.point.range is not None else -math.inf
        return max(high - step, (floor + high) / 2) if math.isfinite(floor) else high - step
    ceiling = spec.point.range[1] if spec.point.range is not None else math.inf
    return min(low + step, (low + ceiling) / 2) if math.isfinite(ceiling) else low + step


# --- items -------------------------------------------------------------------------------


async def alarm_items(
    gw: Gateway,
    store: Store,
    specs: Sequence[LimitSpec],
    *,
    probed: dict[str, tuple[float, str]],
) -> list[Item]:
    """A loop check or a sign-off item for each limit alarm.

    ``probed``: point id → (value, quality name) from the device poll, shown on sign-off
    items when the gateway's own value cannot be read.
    """
    if not specs:
        return [
            Item(
                "alarms.limits",
                "Loop check of every limit alarm",
                Status.NOT_APPLICABLE,
                "the site has no limit alarms",
                {},
            )
        ]
    items = []
    for spec in specs:
        if spec.device.acceptance.loop_check == "write":
            items.append(await _loop_check(gw, store, spec))
        else:
            items.append(await _sign_off(gw, spec, probed.get(spec.point.id)))
    return items


async def _live(gw: Gateway, spec: LimitSpec) -> tuple[float, bool, float | None] | None:
    if not gw.up:
        return None
    try:
        return await gw.live(spec.device, spec.point)
    except Exception:
        log.debug("reading %s failed", spec.point.id, exc_info=True)
        return None


def _title(spec: LimitSpec) -> str:
    return f"Loop check: {spec.alarm_id} ({spec.point.name or spec.point.id})"


def _base_evidence(spec: LimitSpec) -> dict[str, Any]:
    return {
        "alarm": spec.alarm_id,
        "device": spec.device.id,
        "point": spec.point.id,
        "unit": spec.point.unit,
        "range": list(spec.point.range) if spec.point.range is not None else None,
        "limits": spec.limits,
        "deadband": spec.deadband,
        "on_delay": spec.on_delay,
    }


async def _sign_off(gw: Gateway, spec: LimitSpec, probed: tuple[float, str] | None) -> Item:
    evidence = {**_base_evidence(spec), "loop_check": "sign-off"}
    live = await _live(gw, spec)
    if live is not None:
        value, good, _ = live
        quality = "Good" if good else "not Good"
        evidence.update(value=value, quality=quality, source="gateway")
    elif probed is not None:
        value, quality = probed
        evidence.update(value=value, quality=quality, source="device poll")
    else:
        value, quality = math.nan, "not read"
        evidence.update(value=None, quality=quality)
    unit = f" {spec.point.unit}" if spec.point.unit else ""
    shown = f"{value:.4g}{unit}" if math.isfinite(value) else "no value"
    return Item(
        f"alarms.{spec.alarm_id}",
        _title(spec),
        Status.SIGN_OFF,
        f"{spec.describe()}; live {shown} ({quality}); not written to "
        f"({spec.device.id} is not marked acceptance.loop_check: write): test at the "
        "instrument and sign",
        evidence,
    )


@dataclass(slots=True)
class _Check:
    gw: Gateway
    store: Store
    spec: LimitSpec
    timeout: float
    steps: list[dict[str, Any]]

    @property
    def local_id(self) -> str:
        return self.spec.alarm_id.removeprefix(f"{self.spec.device.id}.")

    def _last_seq(self) -> int:
        query = sa.select(sa.func.max(alarm_journal.c.seq)).where(
            alarm_journal.c.alarm_id == self.spec.alarm_id
        )
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one() or 0)

    def _rows_after(self, seq: int) -> list[Any]:
        query = (
            sa.select(alarm_journal)
            .where(alarm_journal.c.alarm_id == self.spec.alarm_id, alarm_journal.c.seq > seq)
            .order_by(alarm_journal.c.seq)
        )
        with self.store.engine.connect() as conn:
            return list(conn.execute(query).all())

    async def journal_row(self, after: int, match: Callable[[Any], bool], deadline: float) -> Any:
        """The first journal row of the alarm after sequence number ``after`` that
        ``match``es (by sequence, not time: the gateway's clock may differ from ours)."""
        while True:
            for row in await asyncio.to_thread(self._rows_after, after):
                if match(row):
                    return row
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)

    async def write(self, value: float, what: str) -> float:
        began = time.time()
        await self.gw.write(self.spec.device, self.spec.point, value)
        self.steps.append({"step": what, "value": value, "written": began})
        return began

    async def clear_first(self) -> str:
        """Bring the value to normal and wait for the alarm to clear; why not ("" if done)."""
        value = _normal_value(self.spec)
        written = await self.write(value, "normal")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            status = (await asyncio.to_thread(self.store.load_status)).get(self.spec.alarm_id)
            if status is not None and not status.state.active:
                self.steps[-1]["cleared"] = time.time() - written
                return ""
            await asyncio.sleep(0.1)
        return f"the alarm did not clear within {self.timeout:g} s of writing {value:g}"

    async def crossing(self, condition: str, value: float) -> str:
        """Drive the value past one limit; why the alarm did not arrive ("" if it did)."""
        client = self.gw.client
        start = client.event_count if client is not None else 0
        after = await asyncio.to_thread(self._last_seq)
        written = await self.write(value, condition)
        step = self.steps[-1]
        step["condition"] = condition
        deadline = time.monotonic() + self.timeout

        def in_journal(row: Any) -> bool:
            return bool(row.action in ("activate", "change") and row.condition == condition)

        def in_events(event: dict[str, Any]) -> bool:
            state = event.get("LimitState/CurrentState")
            return bool(
                event.get("SourceName") == self.spec.point.id
                and event.get("ConditionName") == self.local_id
                and event.get("ActiveState/Id") is True
                and getattr(state, "Text", state) == LIMIT_STATE_NAMES[condition]
                and not event.get("SuppressedOrShelved")
            )

        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.journal_row(after, in_journal, deadline))
        ]
        if client is not None:
            waits.append(asyncio.ensure_future(client.wait_event(in_events, deadline, start)))
        results = await asyncio.gather(*waits)
        row = results[0]
        missing = []
        if row is None:
            missing.append("the journal")
        else:
            step["journal"] = {
                "seq": row.seq,
                "time": row.time,
                "latency_s": round(row.time - written, 3),
                "action": row.action,
                "state": row.state_after,
                "severity": row.severity,
                "message": row.message,
            }
        if client is not None:
            event = results[1]
            if event is None:
                missing.append("the OPC UA event stream")
            else:
                step["event"] = {
                    "latency_s": round(time.time() - written, 3),
                    "severity": event.get("Severity"),
                    "message": getattr(event.get("Message"), "Text", None),
                    "limit_state": LIMIT_STATE_NAMES[condition],
                }
        if missing:
            return (
                f"{condition} at {value:g}: no alarm in {' or '.join(missing)} within "
                f"{self.timeout:g} s"
            )
        return ""

    async def restore(self, before: float) -> str:
        spec = self.spec
        value = math.nan if spec.device.acceptance.restore == "release" else before
        try:
            await self.write(value, "restore")
        except WriteFailed as exc:
            return f"restore failed: {exc}"
        self.steps[-1]["restore"] = spec.device.acceptance.restore
        return ""


async def _not_ready(gw: Gateway, store: Store, spec: LimitSpec) -> tuple[str, AlarmStatus | None]:
    """Why the loop check cannot start ("" when it can), and the alarm's state."""
    status = (await asyncio.to_thread(store.load_status)).get(spec.alarm_id)
    if status is None:
        return "the gateway's store does not know this alarm", None
    flags = [
        name
        for name, on in (
            ("shelved", bool(status.shelving)),
            ("suppressed", status.suppressed),
            ("out of service", status.out_of_service),
        )
        if on
    ]
    if flags:
        return f"the alarm is {', '.join(flags)}: an operator would not see it", status
    why = gw.can_write()
    return (f"cannot write: {why}" if why else ""), status


async def _good_value(gw: Gateway, spec: LimitSpec, wait: float) -> float | None:
    """The gateway's Good value of the point, waiting up to ``wait`` s for one (a gateway
    that has just started may not have polled yet); None if there is none."""
    deadline = time.monotonic() + wait
    live = await _live(gw, spec)
    while (live is None or not live[1]) and gw.up and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        live = await _live(gw, spec)
    return live[0] if live is not None and live[1] else None


async def _loop_check(gw: Gateway, store: Store, spec: LimitSpec) -> Item:
    item_id, title = f"alarms.{spec.alarm_id}", _title(spec)
    steps = plan_steps(spec)
    evidence: dict[str, Any] = {**_base_evidence(spec), "loop_check": "write", "plan": steps}

    def fail(why: str) -> Item:
        return Item(item_id, title, Status.FAIL, why, evidence)

    why, status = await _not_ready(gw, store, spec)
    if why or status is None:
        return fail(why)
    site = gw.loaded.site
    interval = site.poll_groups[site.poll_group_of(spec.device, spec.point)].interval
    before = await _good_value(gw, spec, 2 * interval + SLACK)
    if before is None:
        return fail("the gateway has no Good value of the point (does the device answer?)")
    evidence["before"] = before
    timeout = spec.on_delay + 2 * interval + site.scan_interval + SLACK
    check = _Check(gw, store, spec, timeout, [])
    evidence["steps"] = check.steps
    problem = ""
    try:
        low, high = _clear_band(spec)
        if status.state.active or not low < before < high:
            problem = await check.clear_first()
        for condition, value in steps:
            if problem:
                break
            problem = await check.crossing(condition, value)
    except WriteFailed as exc:
        problem = f"the write did not reach the device: {exc}"
    finally:
        if check.steps:
            restored = await check.restore(before)
            problem = problem or restored
    if problem:
        return fail(problem)
    latencies = [s["journal"]["latency_s"] for s in check.steps if "journal" in s]
    return Item(
        item_id,
        title,
        Status.PASS,
        f"{' then '.join(c for c, _ in steps)} reached the journal"
        + (" and the OPC UA event stream" if gw.client is not None else "")
        + f" within {max(latencies):.1f} s of each write; restored "
        + ("(released)" if spec.device.acceptance.restore == "release" else f"to {before:.4g}"),
        evidence,
    )
