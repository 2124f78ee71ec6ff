"""The maintenance-due rule: one alarm per active plan, low ahead of due, higher when overdue.

Plans and records live in the store and change while the gateway runs (a
technician records work from an HMI or the CLI), so the rule re-reads them at
its own slow cadence rather than every scan: due dates move in hours and days,
not in milliseconds.  The due computation itself is
:func:`plantguard.records.due.plan_status`, shared with the CLI and statistics.

Alarms: ``maintenance.<plan id>``, condition ``DUE`` (priority low) within the
plan's lead of its due point, ``OVERDUE`` (the plan's ``overdue_priority``) past it.
Plans added after start-up are checked from the next start (alarms are declared
before the first scan).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from plantguard.plugin import (
    PRIORITY_BY_NAME,
    AlarmDefinition,
    DueState,
    Finding,
    MaintenancePlan,
    PlanStatus,
    Point,
    Priority,
    Rule,
    RuleContext,
    RuleType,
    SettingError,
    Site,
    Store,
    ValueTable,
    plan_statuses,
)

__all__ = ["CHECK_EVERY", "MaintenanceDueRule", "MaintenanceRuleType", "alarm_id"]

#: Seconds between two reads of plans and records.
CHECK_EVERY = 60.0

_CONDITION = {DueState.DUE_SOON: "DUE", DueState.OVERDUE: "OVERDUE"}


def alarm_id(plan: MaintenancePlan) -> str:
    return f"maintenance.{plan.id}"


class MaintenanceDueRule(Rule):
    def __init__(self, store: Store, check_every: float = CHECK_EVERY) -> None:
        self._store = store
        self._check_every = check_every
        self._plans = {p.id: p for p in store.records.plans() if p.active}
        self._state: dict[str, DueState | None] = dict.fromkeys(self._plans)
        self._next_check = float("-inf")
        self.statuses: dict[str, PlanStatus] = {}

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [
            AlarmDefinition(
                id=alarm_id(plan),
                source_id=plan.device_id,
                device_id=plan.device_id,
                kind="maintenance",
                rule="maintenance",
                priority=PRIORITY_BY_NAME[plan.overdue_priority],
                message=f"{plan.kind.value} '{plan.title}' of {plan.device_id}",
            )
            for plan in self._plans.values()
        ]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        if now < self._next_check:
            return []
        self._next_check = now + self._check_every
        statuses = self.check(now)
        findings = []
        for plan_id, status in statuses.items():
            if self._state[plan_id] == status.state:
                continue
            self._state[plan_id] = status.state
            findings.append(self._finding(status, now))
        return findings

    def check(self, now: float) -> dict[str, PlanStatus]:
        """Status of every plan at ``now`` (epoch seconds), from the store."""
        self.statuses = plan_statuses(self._store, now, list(self._plans.values()))
        return self.statuses

    def _finding(self, status: PlanStatus, now: float) -> Finding:
        plan = status.plan
        condition = _CONDITION.get(status.state, "")
        if not condition:
            return Finding(alarm_id(plan), False, "", 0, f"{plan.title}: {status.reason}", 0.0, now)
        severity = (
            Priority.LOW
            if status.state is DueState.DUE_SOON
            else PRIORITY_BY_NAME[plan.overdue_priority]
        )
        when = f"due {status.due_at:%Y-%m-%d %H:%M} UTC" if status.due_at else status.reason
        word = "overdue" if status.state is DueState.OVERDUE else "coming due"
        message = f"{plan.kind.value} '{plan.title}' of {plan.device_id} {word}: {when}"
        remaining = status.remaining if status.remaining is not None else float("nan")
        return Finding(alarm_id(plan), True, condition, int(severity), message, remaining, now)


class _NoPointSettings(BaseModel):
    """Maintenance plans are records in the store, not point settings."""

    model_config = ConfigDict(extra="forbid")


class MaintenanceRuleType(RuleType):
    config_model = _NoPointSettings

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        raise SettingError(
            "maintenance plans are imported with `plantguard maintenance import`, "
            "not set on points",
            point=configs[0][0].id if configs else None,
        )

    def create_site_rule(self, context: RuleContext) -> Rule | None:
        if context.store is None:
            return None
        return MaintenanceDueRule(context.store)
