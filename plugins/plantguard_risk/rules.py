"""The ``hazards`` rule: hidden dangers become alarms, and monitoring opens candidates.

It runs wherever the gateway has a store, without settings (like the
maintenance-due rule); ``rules.hazards`` in the site file tunes it.  Without
that mapping its alarms are declared only when the store already holds hidden
dangers (candidates do not count) or risk points at start-up (a plant that does not use the register gets
no extra alarms); with it (``rules: {hazards: {}}`` is enough) they always are.  Every
``check_every`` seconds it reads the open hidden dangers and raises three
site-wide alarms through the alarm manager:

* ``hazards.major`` — a major hidden danger (重大隐患) is open: raised at the first
  check after it is assessed major (priority ``major_priority``, default urgent);
* ``hazards.overdue.major`` / ``hazards.overdue.general`` — a rectification is past
  its deadline (priority by grade: ``overdue_major_priority``, default urgent, and
  ``overdue_general_priority``, default high).

The alarms are per plant, not per hidden danger, because alarms are declared
before the first scan and hidden dangers come and go while the gateway runs;
the message names the hidden dangers and the value is how many there are.  When
the set changes while the alarm is active, the finding is reported again with
the new message.  Every ``candidate_every`` seconds it also opens candidates
(:mod:`.candidates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    PRIORITY_BY_NAME,
    AlarmDefinition,
    Finding,
    HazardRow,
    Point,
    PriorityName,
    RiskStore,
    Rule,
    RuleContext,
    RuleType,
    SettingError,
    Site,
    Store,
    ValueTable,
)

from .candidates import CandidateSettings, open_candidates
from .lifecycle import OPEN_STATES, Lifecycle, is_overdue

__all__ = ["HazardRule", "HazardRuleSettings", "HazardRuleType"]

MAJOR = "hazards.major"
OVERDUE = {"major": "hazards.overdue.major", "general": "hazards.overdue.general"}


class HazardRuleSettings(BaseModel):
    """``rules.hazards`` in the site file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    check_every: Annotated[float, Field(gt=0, le=3600)] = 5.0
    candidate_every: Annotated[float, Field(gt=0, le=86400)] = 60.0
    major_priority: PriorityName = "urgent"
    overdue_major_priority: PriorityName = "urgent"
    overdue_general_priority: PriorityName = "high"
    candidates: CandidateSettings = CandidateSettings()


class HazardRule(Rule):
    def __init__(
        self, store: Store | None, settings: HazardRuleSettings, *, raise_alarms: bool = True
    ) -> None:
        self._store = store
        self._settings = settings
        self._raise_alarms = raise_alarms
        self._shown: dict[str, tuple[str, ...]] = {}
        self._next_check = float("-inf")
        self._next_candidates = float("-inf")

    def alarms(self) -> Sequence[AlarmDefinition]:
        if not self._raise_alarms:
            return []
        s = self._settings
        wanted = [
            (MAJOR, s.major_priority, "major hidden danger open (重大隐患)"),
            (OVERDUE["major"], s.overdue_major_priority, "major rectification overdue"),
            (OVERDUE["general"], s.overdue_general_priority, "general rectification overdue"),
        ]
        return [
            AlarmDefinition(
                id=alarm_id,
                source_id="hazards",
                device_id="",
                kind="system",
                rule="hazards",
                priority=PRIORITY_BY_NAME[priority],
                message=message,
            )
            for alarm_id, priority, message in wanted
        ]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        if self._store is None or now < self._next_check:
            return []
        self._next_check = now + self._settings.check_every
        if self._settings.candidates.enabled and now >= self._next_candidates:
            self._next_candidates = now + self._settings.candidate_every
            lifecycle = Lifecycle(RiskStore(self._store.engine), lambda: now)
            open_candidates(self._store, lifecycle, now, self._settings.candidates)
        if not self._raise_alarms:
            return []
        return self.check(RiskStore(self._store.engine).hazards(OPEN_STATES), now)

    def check(self, open_hazards: Sequence[HazardRow], now: float) -> list[Finding]:
        """Findings for the alarms whose set of hidden dangers changed."""
        sets = {
            MAJOR: tuple(h.id for h in open_hazards if h.grade == "major"),
            OVERDUE["major"]: tuple(
                h.id for h in open_hazards if h.grade == "major" and is_overdue(h, now)
            ),
            OVERDUE["general"]: tuple(
                h.id for h in open_hazards if h.grade != "major" and is_overdue(h, now)
            ),
        }
        findings = []
        for alarm_id, ids in sets.items():
            if self._shown.get(alarm_id, ()) == ids:
                continue
            self._shown[alarm_id] = ids
            findings.append(self._finding(alarm_id, ids, now))
        return findings

    def _finding(self, alarm_id: str, ids: tuple[str, ...], now: float) -> Finding:
        if not ids:
            return Finding(alarm_id, False, "", 0, f"{alarm_id}: none", 0.0, now)
        definition = next(d for d in self.alarms() if d.id == alarm_id)
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        message = f"{definition.message}: {shown}"
        return Finding(alarm_id, True, "OPEN", int(definition.priority), message, len(ids), now)


class _NoPointSettings(BaseModel):
    """Hidden dangers are records in the store, not point settings."""

    model_config = ConfigDict(extra="forbid")


class HazardRuleType(RuleType):
    config_model = _NoPointSettings
    site_config_model = HazardRuleSettings

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        if configs:
            raise SettingError(
                "hidden dangers are reported with `plantguard hazards report`, "
                "not set on points; tune the rule under rules.hazards",
                point=configs[0][0].id,
            )
        settings = context.site_config
        if not isinstance(settings, HazardRuleSettings):
            settings = HazardRuleSettings()
        return HazardRule(context.store, settings)

    def create_site_rule(self, context: RuleContext) -> Rule | None:
        """Without ``rules.hazards`` in the site file: candidates always, and the
        alarms when the store holds hidden dangers (not mere candidates) or risk
        points at start-up."""
        if context.store is None:
            return None
        risks = RiskStore(context.store.engine)
        in_use = bool(risks.hazards((*OPEN_STATES, "closed")) or risks.risks())
        return HazardRule(context.store, HazardRuleSettings(), raise_alarms=in_use)
