"""Gathering the early-warning index's inputs from the store.

Everything the index needs is in the store the gateway writes as it runs: the
current state of every alarm (written in the transaction of each transition),
hidden dangers, maintenance plans and records, the risk register and the last
connection state of each device (a device whose state is ``unknown`` — the
gateway was stopped — counts neither as online nor as offline).  The running gateway (the ``safety_index``
virtual device) and ``plantguard index`` read the same tables through this
one function, so they cannot disagree.
"""

from __future__ import annotations

from collections import Counter

from plantguard.plugin import (
    PRIORITY_BY_NAME,
    DueState,
    PlantState,
    RiskStore,
    Store,
    plan_statuses,
)

from .index import IndexInputs, IndexSettings, PriorityKey
from .lifecycle import OPEN_STATES, is_overdue

__all__ = ["gather", "overdue_plans", "priority_key"]

_DAY = 86400.0


def priority_key(priority: int) -> PriorityKey:
    """The named priority at or below ``priority`` (the value is an OPC UA severity)."""
    best: PriorityKey = "low"
    for name, value in PRIORITY_BY_NAME.items():
        if priority >= value:
            best = name
    return best


def overdue_plans(store: Store, now: float) -> set[str]:
    """Active maintenance and inspection plans overdue at ``now``.

    The due computation reads every alarm's state (for condition-based plans):
    with tens of thousands of alarms that is most of a second, so a store without
    active plans skips it and the virtual device refreshes it at a slower cadence.
    """
    plans = [p for p in store.records.plans() if p.active]
    if not plans:
        return set()
    statuses = plan_statuses(store, now, plans)
    return {pid for pid, s in statuses.items() if s.state is DueState.OVERDUE}


def gather(
    store: Store, now: float, settings: IndexSettings, late: set[str] | None = None
) -> IndexInputs:
    """The index inputs at ``now`` (epoch seconds); ``late``: the overdue plans, if
    already known (:func:`overdue_plans`)."""
    plant = PlantState(store.engine)
    risks = RiskStore(store.engine)
    by_unack, by_standing, detection = plant.alarm_counts(
        now - settings.standing_hours * 3600, settings.detection_kinds
    )
    unack: Counter[PriorityKey] = Counter()
    standing: Counter[PriorityKey] = Counter()
    for priority, n in by_unack.items():
        unack[priority_key(priority)] += n
    for priority, n in by_standing.items():
        standing[priority_key(priority)] += n
    open_hazards = risks.hazards(OPEN_STATES)
    overdue = Counter(h.grade or "general" for h in open_hazards if is_overdue(h, now))
    if late is None:
        late = overdue_plans(store, now)
    controls = Counter(
        r.grade
        for r in risks.risks()
        if r.grade in ("red", "orange") and any(p in late for p in r.plans)
    )
    states = plant.connection_states()
    return IndexInputs(
        unack=dict(unack),
        standing=dict(standing),
        hazards=tuple(
            (h.grade or "general", max(0.0, (now - h.reported_at) / _DAY)) for h in open_hazards
        ),
        overdue=dict(overdue),
        inspections_overdue=len(late),
        risk_controls_overdue=dict(controls),
        detection_flags=detection,
        devices_known=sum(1 for s in states.values() if s in ("online", "offline")),
        devices_online=sum(1 for s in states.values() if s == "online"),
    )
