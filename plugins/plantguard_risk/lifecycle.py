"""The lifecycle of a hidden danger (隐患): who may move it from which state to which.

::

    candidate ──accept──► reported ──assess──► assessed ──assign──► assigned
        │                    │                                   ▲      │
        └──dismiss──► dismissed ◄──dismiss┘                 reject│   rectify
                                                                  │      ▼
                                     closed ◄──verify── rectified ─┘

* a person reports (operator or above); a rule opens a *candidate*, which a
  person accepts (operator) or dismisses (engineer);
* an engineer assesses (general 一般 / major 重大) and assigns the rectification
  (measures, person, deadline, funds);
* someone rectifies (operator or above; the rectifier is recorded);
* a verifier — an engineer who is **not** the rectifier — closes it with
  evidence, or rejects it back to rectification.

Every check happens before anything is written: a refused action raises
:class:`HazardRefused` and journals nothing.  An allowed one is one call to
:meth:`RiskStore.transition`, which writes the new state and the journal entry
in one transaction.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from plantguard.plugin import (
    HazardConflict,
    HazardRow,
    JournalEntry,
    PermissionDenied,
    Principal,
    RiskStore,
    Role,
    UsageError,
)

__all__ = [
    "ACTIONS",
    "HAZARD_GRADES",
    "OPEN_STATES",
    "STATES",
    "STATE_LABELS",
    "HazardRefused",
    "Lifecycle",
    "is_overdue",
]

HazardGrade = Literal["general", "major"]
HAZARD_GRADES: dict[str, str] = {"general": "一般隐患 (general)", "major": "重大隐患 (major)"}

STATES: tuple[str, ...] = (
    "candidate",
    "reported",
    "assessed",
    "assigned",
    "rectified",
    "closed",
    "dismissed",
)
STATE_LABELS: dict[str, str] = {
    "candidate": "待确认 (candidate)",
    "reported": "已上报 (reported)",
    "assessed": "已评估 (assessed)",
    "assigned": "整改中 (rectification assigned)",
    "rectified": "已整改 (rectified)",
    "closed": "已验收销号 (verified and closed)",
    "dismissed": "已撤销 (dismissed)",
}
#: A hidden danger in one of these is still open (counts in the index, may be overdue).
OPEN_STATES: tuple[str, ...] = ("reported", "assessed", "assigned", "rectified")


class HazardRefused(PermissionDenied):
    """An action not allowed: wrong state, role too low, or closing one's own rectification."""


@dataclass(frozen=True, slots=True)
class _Action:
    before: tuple[str, ...]
    after: str
    role: Role


ACTIONS: dict[str, _Action] = {
    "accept": _Action(("candidate",), "reported", Role.OPERATOR),
    "dismiss": _Action(("candidate", "reported"), "dismissed", Role.ENGINEER),
    "assess": _Action(("reported", "assessed"), "assessed", Role.ENGINEER),
    "assign": _Action(("assessed",), "assigned", Role.ENGINEER),
    "rectify": _Action(("assigned",), "rectified", Role.OPERATOR),
    "verify": _Action(("rectified",), "closed", Role.ENGINEER),
    "reject": _Action(("rectified",), "assigned", Role.ENGINEER),
}


def is_overdue(hazard: HazardRow, now: float) -> bool:
    """Rectification assigned, not done, and its deadline has passed."""
    return hazard.state == "assigned" and hazard.deadline is not None and now > hazard.deadline


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise UsageError(f"{what} must not be empty")
    return value


class Lifecycle:
    """Applies lifecycle actions to the hidden dangers of one store."""

    def __init__(self, store: RiskStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    # --- opening --------------------------------------------------------------

    def report(
        self,
        principal: Principal,
        title: str,
        *,
        description: str = "",
        risk_id: str | None = None,
        area: str = "",
        device_id: str | None = None,
        point_id: str | None = None,
        source: str = "person",
        source_ref: str = "",
    ) -> HazardRow:
        """A person reports a hidden danger (operator or above)."""
        self._require(principal, Role.OPERATOR, "report a hidden danger")
        return self._open(
            "reported",
            principal.name,
            _text(title, "the title"),
            description=description,
            risk_id=risk_id,
            area=area,
            device_id=device_id,
            point_id=point_id,
            source=source,
            source_ref=source_ref,
        )

    def open_candidate(
        self,
        title: str,
        source: str,
        source_ref: str,
        *,
        description: str = "",
        device_id: str | None = None,
        point_id: str | None = None,
        area: str = "",
    ) -> HazardRow:
        """A rule's candidate, for a person to accept or dismiss (journalled as ``system``)."""
        return self._open(
            "candidate",
            "system",
            title,
            description=description,
            device_id=device_id,
            point_id=point_id,
            area=area,
            source=source,
            source_ref=source_ref,
        )

    def _open(self, state: str, user: str, title: str, **fields: Any) -> HazardRow:
        now = self.clock()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")
        row = HazardRow(
            id=f"HD-{stamp}-{uuid.uuid4().hex[:8]}",
            title=title,
            state=state,
            reported_by=user,
            reported_at=now,
            changed=now,
            **fields,
        )
        action = "report" if state == "reported" else "candidate"
        detail = {k: v for k, v in fields.items() if v}
        entry = JournalEntry(row.id, now, action, "", state, user, "", detail)
        self.store.add_hazards([row], [entry])
        return row

    # --- transitions ----------------------------------------------------------

    def accept(self, principal: Principal, hazard_id: str, comment: str = "") -> HazardRow:
        return self._apply(principal, hazard_id, "accept", {}, comment)

    def dismiss(self, principal: Principal, hazard_id: str, reason: str) -> HazardRow:
        return self._apply(principal, hazard_id, "dismiss", {}, _text(reason, "the reason"))

    def assess(
        self, principal: Principal, hazard_id: str, grade: str, comment: str = ""
    ) -> HazardRow:
        if grade not in HAZARD_GRADES:
            raise UsageError(f"grade must be general or major, not {grade!r}")
        return self._apply(principal, hazard_id, "assess", {"grade": grade}, comment)

    def assign(
        self,
        principal: Principal,
        hazard_id: str,
        *,
        measures: str,
        assignee: str,
        deadline: float,
        funds: float | None = None,
        comment: str = "",
    ) -> HazardRow:
        if not math.isfinite(deadline):
            raise UsageError("the deadline must be a time")
        if funds is not None and not (math.isfinite(funds) and funds >= 0):
            raise UsageError(f"funds must be a non-negative amount, not {funds}")
        changes = {
            "measures": _text(measures, "the measures"),
            "assignee": _text(assignee, "the person responsible"),
            "deadline": deadline,
            "funds": funds,
        }
        return self._apply(principal, hazard_id, "assign", changes, comment)

    def rectify(
        self, principal: Principal, hazard_id: str, done: str, evidence: str = ""
    ) -> HazardRow:
        changes = {"rectified_by": principal.name, "rectified_at": self.clock()}
        if evidence:
            changes["evidence"] = evidence
        return self._apply(principal, hazard_id, "rectify", changes, _text(done, "what was done"))

    def verify(
        self, principal: Principal, hazard_id: str, evidence: str, comment: str = ""
    ) -> HazardRow:
        changes = {
            "verified_by": principal.name,
            "closed_at": self.clock(),
            "evidence": _text(evidence, "the evidence"),
        }
        return self._apply(principal, hazard_id, "verify", changes, comment)

    def reject(self, principal: Principal, hazard_id: str, reason: str) -> HazardRow:
        changes = {"rectified_by": "", "rectified_at": None}
        return self._apply(principal, hazard_id, "reject", changes, _text(reason, "the reason"))

    # --- the one path every transition takes ----------------------------------

    def get(self, hazard_id: str) -> HazardRow:
        hazard = self.store.hazard(hazard_id)
        if hazard is None:
            raise UsageError(f"unknown hidden danger {hazard_id!r}")
        return hazard

    def _apply(
        self,
        principal: Principal,
        hazard_id: str,
        name: str,
        changes: Mapping[str, Any],
        comment: str,
    ) -> HazardRow:
        action = ACTIONS[name]
        hazard = self.get(hazard_id)
        self._require(principal, action.role, f"{name} hidden danger {hazard_id}")
        if hazard.state not in action.before:
            raise HazardRefused(
                f"hidden danger {hazard_id} is {hazard.state}: {name} needs it "
                + " or ".join(action.before)
            )
        if name in ("verify", "reject") and principal.name == hazard.rectified_by:
            raise HazardRefused(
                f"{principal.name} rectified hidden danger {hazard_id} and may not "
                f"{name} it: someone else verifies"
            )
        entry = JournalEntry(
            hazard_id,
            self.clock(),
            name,
            hazard.state,
            action.after,
            principal.name,
            comment,
            {k: v for k, v in changes.items() if k not in ("rectified_at", "closed_at")},
        )
        try:
            self.store.transition(entry, changes)
        except HazardConflict as exc:
            raise HazardRefused(str(exc)) from None
        return self.get(hazard_id)

    @staticmethod
    def _require(principal: Principal, role: Role, what: str) -> None:
        if not principal.may(role):
            raise HazardRefused(
                f"{principal.name or 'anonymous'} ({principal.role.label}) may not {what}: "
                f"it needs the {role.label} role"
            )
