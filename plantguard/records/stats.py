"""Device statistics (设备统计信息), computed from what was recorded — never typed in.

Sources: the device register (counts by category, status, area), the
connection-state history (online rate, availability, MTBF, MTTR), the alarm
journal (alarms by priority) and the maintenance plans and records
(compliance).  Definitions, over a period ``[start, end)``:

* **online rate** — time online / length of the period (time the gateway was
  not running counts as not online: the plant had no monitoring then);
* **availability** — time online / time observed (online + offline): the
  device's own uptime, not penalised for the gateway's downtime;
* **MTBF** — online time / number of outages (online → offline) in the period;
* **MTTR** — mean length of the outages that ended (offline → online) in the period;
* **compliance** — of the plan executions due in the period, the share done by
  their due point (calendar plans: the due date from the previous record;
  meter plans: the meter reading within the interval);
* **counters** — what each device's driver counted (messages, malformed
  payloads …) since the gateway last started, as the engine last stored them
  (every minute and at stop); not limited to the period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from ..model import Priority
from ..store import Store
from ..store.records import ConnectionEvent
from .due import DueState, PlanStatus, plan_status
from .models import MaintenancePlan, MaintenanceRecord, RecordResult, Trigger
from .status import plan_statuses

__all__ = [
    "Compliance",
    "DeviceAvailability",
    "Statistics",
    "availability",
    "compliance",
    "statistics",
]


@dataclass(frozen=True, slots=True)
class DeviceAvailability:
    device_id: str
    online_s: float
    offline_s: float
    unknown_s: float
    online_rate: float
    availability: float | None
    outages: int
    repairs: int
    mtbf_h: float | None
    mttr_h: float | None


@dataclass(frozen=True, slots=True)
class Compliance:
    kind: str
    on_time: int = 0
    late: int = 0
    overdue_now: int = 0

    @property
    def rate(self) -> float | None:
        done = self.on_time + self.late
        return self.on_time / done if done else None


@dataclass(frozen=True, slots=True)
class Statistics:
    start: float
    end: float
    devices_by_category: dict[str, int]
    devices_by_status: dict[str, int]
    devices_by_area: dict[str, int]
    availability: list[DeviceAvailability]
    alarms_by_priority: dict[str, int]
    compliance: list[Compliance] = field(default_factory=list)
    #: device id → counter name → count since the gateway started (drivers that count)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["compliance"] = [{**asdict(c), "rate": c.rate} for c in self.compliance]
        return data


def availability(
    device_id: str, events: Sequence[ConnectionEvent], start: float, end: float
) -> DeviceAvailability:
    """Availability figures of one device from its connection events (time-ordered)."""
    state = "unknown"
    for event in events:
        if event.time > start:
            break
        state = event.state
    spent = {"online": 0.0, "offline": 0.0, "unknown": 0.0}
    outages = repairs = 0
    repair_time = 0.0
    since = start
    outage_began: float | None = None
    for event in events:
        if event.time <= start:
            continue
        if event.time >= end:
            break
        spent[state] += event.time - since
        if state == "online" and event.state == "offline":
            outages += 1
            outage_began = event.time
        elif state == "offline" and event.state == "online":
            if outage_began is not None:
                repairs += 1
                repair_time += event.time - outage_began
            outage_began = None
        elif event.state == "unknown":
            outage_began = None  # the gateway stopped: the outage's end is not observed
        state, since = event.state, event.time
    spent[state] += end - since
    observed = spent["online"] + spent["offline"]
    return DeviceAvailability(
        device_id=device_id,
        online_s=spent["online"],
        offline_s=spent["offline"],
        unknown_s=spent["unknown"],
        online_rate=spent["online"] / (end - start) if end > start else 0.0,
        availability=spent["online"] / observed if observed else None,
        outages=outages,
        repairs=repairs,
        mtbf_h=spent["online"] / outages / 3600 if outages else None,
        mttr_h=repair_time / repairs / 3600 if repairs else None,
    )


def compliance(
    plans: Sequence[MaintenancePlan],
    records: Sequence[MaintenanceRecord],
    start: float,
    end: float,
    overdue_now: dict[str, bool],
) -> list[Compliance]:
    """On-time and late executions per kind (maintenance, inspection, calibration)."""
    by_plan: dict[str, list[MaintenanceRecord]] = {}
    for record in records:
        if record.plan_id is not None and record.result is RecordResult.COMPLETED:
            by_plan.setdefault(record.plan_id, []).append(record)
    counts: dict[str, Counter[str]] = {}
    for plan in plans:
        tally = counts.setdefault(plan.kind.value, Counter())
        if overdue_now.get(plan.id):
            tally["overdue_now"] += 1
        done = sorted(by_plan.get(plan.id, []), key=lambda r: r.performed_at)
        for previous, record in zip([None, *done], done, strict=False):
            at = record.performed_at.timestamp()
            if not start <= at < end:
                continue
            tally["on_time" if _on_time(plan, previous, record) else "late"] += 1
    return [
        Compliance(kind, c["on_time"], c["late"], c["overdue_now"])
        for kind, c in sorted(counts.items())
    ]


def _on_time(
    plan: MaintenancePlan, previous: MaintenanceRecord | None, record: MaintenanceRecord
) -> bool:
    if plan.trigger is Trigger.CALENDAR:
        status = plan_status(plan, [previous] if previous else [], record.performed_at)
        return status.state is not DueState.OVERDUE
    if plan.trigger in (Trigger.RUNTIME, Trigger.COUNTER):
        if record.meter_reading is None:
            return True  # without a reading the meter cannot say it was late
        base = previous.meter_reading if previous and previous.meter_reading is not None else 0.0
        return record.meter_reading - base <= plan.interval
    return True  # condition plans: judged by the due state while they were pending


def statistics(
    store: Store,
    start: float,
    end: float,
    statuses: Mapping[str, PlanStatus] | None = None,
) -> Statistics:
    """All the statistics of the standard over ``[start, end)`` (epoch seconds).

    ``statuses`` are the plans' statuses at ``end`` if the caller has them already
    (they take a read of every record and every meter's history).
    """
    devices = store.records.devices()
    events = store.records.connection_events(until=end)
    per_device: dict[str, list[ConnectionEvent]] = {}
    for event in events:
        per_device.setdefault(event.device_id, []).append(event)
    priorities = {int(p): p.name.lower() for p in Priority}
    alarm_counts = Counter(
        priorities.get(priority, str(priority))
        for priority in store.activations_by_priority(start, end)
    )
    plans = store.records.plans()
    records = store.records.records()
    overdue_now = {
        plan_id: status.state is DueState.OVERDUE
        for plan_id, status in (statuses or plan_statuses(store, end)).items()
    }
    return Statistics(
        start=start,
        end=end,
        devices_by_category=dict(sorted(Counter(d.category for d in devices).items())),
        devices_by_status=dict(sorted(Counter(d.status.value for d in devices).items())),
        devices_by_area=dict(sorted(Counter(d.area or "-" for d in devices).items())),
        availability=[availability(d.id, per_device.get(d.id, []), start, end) for d in devices],
        alarms_by_priority={name: alarm_counts.get(name, 0) for name in priorities.values()},
        compliance=compliance(plans, records, start, end, overdue_now),
        counters=store.records.device_counters(),
    )
