"""Multivariate monitoring of point groups with a model trained from history.

Points join a group with ``rules: {multivariate: {group: reactor}}``; the
group's settings sit at site level::

    rules:
      multivariate:
        groups:
          reactor: {model: models/multivariate-reactor.json, priority: high}

``plantguard train`` fits the model from the store's history (or ``plantguard
detect fit`` from a CSV file); see :mod:`plantguard_rules.mvmodels` for the
methods and their limits.  Each scan in which any point of the group has a new
sample, the group's current values are scored; the group's one alarm
(``multivariate.<group>``, condition ``ABNORMAL``) is active while the score is
above its limit, and its message names the statistic and the points that
contribute most — what an engineer looks at first.

A group whose model file is missing, cannot be read, or was trained on other
points raises no alarm and says so at start-up — ``plantguard check`` prints it,
``run`` logs it, with the group's line in the site file: run ``plantguard
train``.  The gateway still starts: a group is trained from the history the
running gateway collects.  Group settings that name no point refuse the site.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    AlarmDefinition,
    Finding,
    Point,
    PriorityName,
    Rule,
    RuleContext,
    RuleType,
    SettingError,
    Site,
    ValueTable,
)

from .base import PRIORITY, usable
from .ensemble import DetectionModel, EnsembleScorer, load_model
from .mvmodels import LimitRule, Method, Score, Scorer

__all__ = [
    "GroupConfig",
    "MultivariateConfig",
    "MultivariateRule",
    "MultivariateRuleType",
    "MultivariateSiteConfig",
    "model_path",
]


class MultivariateConfig(BaseModel):
    """Per point: ``rules: {multivariate: {group: reactor}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")


class GroupConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        None, description="model file; default models/multivariate-<group>.json"
    )
    method: Method | None = Field(
        None,
        description="method `plantguard train` fits (default: chosen automatically from the "
        "training period, see docs/detection.md)",
    )
    far: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="false-alarm target of the automatic choice, as a share of rows",
    )
    limits: LimitRule | None = Field(
        None,
        description="with a method: checked (default): the lowest limit whose value from one "
        "half of the training period flags at most 1 % of the other half; method: the "
        "method's own calibration",
    )
    smoothing: float | None = Field(
        None, gt=0, le=1, description="EWMA smoothing of the statistic (default: the method's)"
    )
    hold: int | None = Field(
        None, ge=0, description="rows a flag is held after the statistic falls back"
    )
    priority: PriorityName = "medium"
    message: str = "{group}: abnormal pattern ({reason})"


class MultivariateSiteConfig(BaseModel):
    """Site level: ``rules: {multivariate: {groups: {<name>: {...}}}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: dict[str, GroupConfig] = Field(default_factory=dict)


def model_path(group: str, cfg: GroupConfig | None) -> str:
    return cfg.model if cfg is not None and cfg.model else f"models/multivariate-{group}.json"


class _Group:
    def __init__(
        self,
        name: str,
        points: Sequence[Point],
        table: ValueTable,
        model: DetectionModel | None,
        cfg: GroupConfig,
    ) -> None:
        self.name = name
        self.points = list(points)
        self.model = model
        self.scorer: Scorer | EnsembleScorer | None = model.scorer() if model is not None else None
        order = model.variables if model is not None else [p.id for p in points]
        self.idx = table.indices(order)
        self.last_t = np.full(len(order), -np.inf)
        devices = {p.device_id for p in points}
        self.definition = AlarmDefinition(
            id=f"multivariate.{name}",
            source_id=name,
            device_id=devices.pop() if len(devices) == 1 else "",
            kind="deviation",
            rule="multivariate",
            priority=PRIORITY[cfg.priority],
            message=cfg.message,
        )
        self.active: bool | None = None
        self.last = Score(float("nan"), False, "")


class MultivariateRule(Rule):
    def __init__(
        self,
        table: ValueTable,
        groups: Mapping[str, Sequence[Point]],
        models: Mapping[str, DetectionModel | None],
        settings: Mapping[str, GroupConfig],
    ) -> None:
        self.groups = [
            _Group(name, pts, table, models.get(name), settings.get(name, GroupConfig()))
            for name, pts in groups.items()
        ]

    def alarms(self) -> Sequence[AlarmDefinition]:
        return [g.definition for g in self.groups]

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        out: list[Finding] = []
        for g in self.groups:
            if g.scorer is None:
                continue
            t = table.source_time[g.idx]
            fresh = t > g.last_t
            if not fresh.any() or not usable(table, g.idx).all():
                continue
            g.last_t = t.copy()
            g.last = g.scorer.step(table.values[g.idx])
            if np.isnan(g.last.score):
                continue
            if g.active is None or g.last.flag != g.active:
                g.active = g.last.flag
                out.append(self._finding(g, now))
        return out

    @staticmethod
    def _finding(g: _Group, now: float) -> Finding:
        d = g.definition
        if not g.active:
            return Finding(
                d.id, False, "", 0, f"{g.name}: pattern back to normal", g.last.score, now
            )
        message = d.render(group=g.name, reason=g.last.reason, value=g.last.score)
        return Finding(d.id, True, "ABNORMAL", int(d.priority), message, g.last.score, now)


def _load(
    group: str,
    points: Sequence[Point],
    settings: Mapping[str, GroupConfig],
    context: RuleContext,
) -> DetectionModel | None:
    """The group's model, or None with a warning at the group's settings (its
    site-level ``groups.<group>``, else its first point's ``group``)."""
    path = context.resolve(model_path(group, settings.get(group)))
    ids = {p.id for p in points}

    def warn(message: str) -> None:
        if group in settings:
            context.warn(f"multivariate group {group}: {message}", field=("groups", group, "model"))
        else:
            context.warn(
                f"multivariate group {group}: {message}", point=points[0].id, field=("group",)
            )

    try:
        model = load_model(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        warn(f"no model at {path}, no alarm until one is trained (run plantguard train)")
        return None
    except (OSError, ValueError) as exc:
        warn(f"model {path} not used, no alarm until it is retrained: {exc}")
        return None
    if set(model.variables) != ids:
        warn(
            f"model {path} was trained on other points "
            f"({', '.join(sorted(set(model.variables) ^ ids))}); retrain (plantguard train)"
        )
        return None
    return model


class MultivariateRuleType(RuleType):
    config_model = MultivariateConfig
    site_config_model = MultivariateSiteConfig

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        groups: dict[str, list[Point]] = {}
        for point, cfg in configs:
            if isinstance(cfg, MultivariateConfig):
                groups.setdefault(cfg.group, []).append(point)
        site_cfg = context.site_config
        settings = site_cfg.groups if isinstance(site_cfg, MultivariateSiteConfig) else {}
        for name in settings:
            if name not in groups:
                raise SettingError(
                    f"multivariate group {name!r} has no points "
                    f"(set rules: {{multivariate: {{group: {name}}}}} on them)",
                    field=("groups", name),
                )
        models = {name: _load(name, pts, settings, context) for name, pts in groups.items()}
        return MultivariateRule(table, groups, models, settings)
