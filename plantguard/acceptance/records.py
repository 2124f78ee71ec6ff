"""Maintenance and detection items: plans where the standard expects them, nothing overdue,
and a multivariate model trained on this site's history for every group."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import LoadedSite
from ..records.due import DueState, PlanStatus
from ..records.models import MaintenancePlan
from ..store.store import database_url
from .record import Item, Status

__all__ = [
    "DEFAULT_PLAN_CATEGORIES",
    "detection_items",
    "normalise_category",
    "overdue_items",
    "plan_items",
]

#: Device categories that need a maintenance or inspection plan unless the site says
#: otherwise (``acceptance.plan_categories``): rotating machines, pressure equipment,
#: lifting equipment and safety instruments.
DEFAULT_PLAN_CATEGORIES = (
    "pump",
    "compressor",
    "fan",
    "blower",
    "motor",
    "boiler",
    "vessel",
    "pressure_vessel",
    "tank",
    "reactor",
    "heat_exchanger",
    "pipeline",
    "gas_detector",
    "flame_detector",
    "smoke_detector",
    "fire_alarm",
    "safety_valve",
    "relief_valve",
    "crane",
    "hoist",
    "lift",
    "forklift",
)
_MODEL_FORMAT = "plantguard-multivariate/1"
#: A combination chosen by the automatic fit (plantguard_rules.ensemble) records the same checks.
_ENSEMBLE_FORMAT = "plantguard-ensemble/1"


def normalise_category(name: str) -> str:
    """``Pressure vessel`` and ``pressure-vessel`` → ``pressure_vessel``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def plan_items(loaded: LoadedSite, plans: Sequence[MaintenancePlan]) -> list[Item]:
    """Every device of a category that needs a plan has an active one."""
    configured = loaded.site.acceptance.plan_categories
    categories = {
        normalise_category(c)
        for c in (configured if configured is not None else DEFAULT_PLAN_CATEGORIES)
    }
    by_device: dict[str, list[MaintenancePlan]] = {}
    for plan in plans:
        if plan.active:
            by_device.setdefault(plan.device_id, []).append(plan)
    items = []
    for device in loaded.site.devices:
        if normalise_category(device.category) not in categories:
            continue
        mine = by_device.get(device.id, [])
        evidence = {
            "device": device.id,
            "category": device.category,
            "plans": [{"id": p.id, "kind": p.kind.value, "title": p.title} for p in mine],
        }
        title = f"{device.id}: a maintenance or inspection plan ({device.category})"
        if mine:
            summary = "; ".join(f"{p.title} ({p.kind.value}, {_every(p)})" for p in mine)
            items.append(
                Item(f"maintenance.{device.id}.plan", title, Status.PASS, summary, evidence)
            )
        else:
            items.append(
                Item(
                    f"maintenance.{device.id}.plan",
                    title,
                    Status.FAIL,
                    f"no active plan for a {device.category}: import one "
                    "(plantguard maintenance import)",
                    evidence,
                )
            )
    if not items:
        items.append(
            Item(
                "maintenance.plans",
                "Devices that need a plan have one",
                Status.NOT_APPLICABLE,
                "no device of a category that needs a plan "
                f"({', '.join(sorted(categories)[:6])} …)",
                {"categories": sorted(categories)},
            )
        )
    return items


def _every(plan: MaintenancePlan) -> str:
    unit = {"calendar": "days", "runtime": "running hours", "counter": "counts"}.get(
        plan.trigger.value, "days after its alarm"
    )
    return f"every {plan.interval:g} {unit}"


def overdue_items(statuses: Mapping[str, PlanStatus]) -> list[Item]:
    """Nothing overdue at hand-over: an item per overdue plan, else one passing item."""
    overdue = [s for s in statuses.values() if s.state is DueState.OVERDUE]
    items = [
        Item(
            f"maintenance.{s.plan.id}.overdue",
            f"{s.plan.title} ({s.plan.device_id}) is not overdue",
            Status.FAIL,
            f"overdue: {s.reason}",
            {
                "plan": s.plan.id,
                "device": s.plan.device_id,
                "kind": s.plan.kind.value,
                "due_at": s.due_at,
                "last_done": s.last_done,
                "reason": s.reason,
            },
        )
        for s in sorted(overdue, key=lambda s: (s.plan.device_id, s.plan.id))
    ]
    if not items:
        due = sorted(s.plan.id for s in statuses.values() if s.state is DueState.DUE_SOON)
        items.append(
            Item(
                "maintenance.overdue",
                "Nothing overdue at hand-over",
                Status.PASS,
                f"{len(statuses)} active plans, none overdue"
                + (f"; due soon: {', '.join(due)}" if due else ""),
                {"plans": len(statuses), "due_soon": due},
            )
        )
    return items


def _groups(loaded: LoadedSite) -> tuple[dict[str, list[str]], Mapping[str, Any]]:
    """Multivariate groups (group → point ids) and the site-level group settings."""
    groups: dict[str, list[str]] = {}
    for point in loaded.site.points:
        group = point.rules.get("multivariate", {}).get("group")
        if isinstance(group, str):
            groups.setdefault(group, []).append(point.id)
    settings = loaded.site.rules.get("multivariate", {}).get("groups", {})
    return groups, settings if isinstance(settings, Mapping) else {}


def detection_items(loaded: LoadedSite, site_dir: Path, store_url: str) -> list[Item]:
    """Every multivariate group has a model trained on this store's history whose limits
    held from one half of the training period to the other (``options.checked``)."""
    groups, settings = _groups(loaded)
    if not groups:
        return [
            Item(
                "detection.multivariate",
                "Multivariate models trained on this site's history",
                Status.NOT_APPLICABLE,
                "the site has no multivariate point groups",
                {},
            )
        ]
    return [
        _model_item(name, points, settings.get(name), site_dir, store_url)
        for name, points in sorted(groups.items())
    ]


def _model_item(group: str, points: list[str], cfg: Any, site_dir: Path, store_url: str) -> Item:
    item_id = f"detection.{group}.model"
    title = f"Group {group}: a model trained on this site's history, limits that hold"
    model = cfg.get("model") if isinstance(cfg, Mapping) else None
    path = site_dir / (model or f"models/multivariate-{group}.json")
    evidence: dict[str, Any] = {"group": group, "points": points, "file": str(path)}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Item(
            item_id, title, Status.FAIL, f"no model at {path}: run plantguard train", evidence
        )
    except (OSError, ValueError) as exc:
        return Item(item_id, title, Status.FAIL, f"{path} is not readable: {exc}", evidence)
    if not isinstance(data, dict) or data.get("format") not in (_MODEL_FORMAT, _ENSEMBLE_FORMAT):
        return Item(item_id, title, Status.FAIL, f"{path} is not a multivariate model", evidence)
    trained_on = data.get("trained_on") or {}
    checked = (data.get("options") or {}).get("checked")
    evidence.update(
        {
            "method": data.get("method"),
            "variables": data.get("variables"),
            "trained_on": trained_on,
            "checked": checked,
        }
    )
    problems = []
    if set(data.get("variables") or ()) != set(points):
        problems.append("it was trained on other points")
    trained_store = trained_on.get("store") if isinstance(trained_on, Mapping) else None
    if not trained_store:
        problems.append("it was not trained from a store's history (plantguard train)")
    elif database_url(str(trained_store)) != database_url(store_url):
        problems.append(f"it was trained on another store's history ({trained_store})")
    if not isinstance(checked, Mapping):
        problems.append("its limits were not checked (limits: checked)")
    elif not checked.get("holds"):
        problems.append("no candidate limit held from one half of the training period to the other")
    if problems:
        return Item(item_id, title, Status.FAIL, "; ".join(problems), evidence)
    assert isinstance(checked, Mapping)
    rows = trained_on.get("rows", "?") if isinstance(trained_on, Mapping) else "?"
    return Item(
        item_id,
        title,
        Status.PASS,
        f"{data.get('method')} on {rows} rows of this store; limit at the "
        f"{checked.get('quantile')} quantile × {checked.get('margin')}, held-out alarm rate "
        f"{float(checked.get('held_out_alarm_rate') or 0):.2%}",
        evidence,
    )
