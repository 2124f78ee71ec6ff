"""Slow drift: EWMA and CUSUM charts against a learned baseline.

A limit alarm sees a value only once it is far off; a sensor that drifts 0.2 σ
per hour, or a heat exchanger that fouls, stays inside its limits for days.
Both charts accumulate small, persistent deviations from the point's normal
mean ``target`` in units of its normal spread ``sigma``:

* **EWMA** ``z ← λ·x + (1−λ)·z``; alarm when ``|z − target| > L·σ·√(λ/(2−λ))``
  (the chart's asymptotic limit).  Good for gradual drift.
* **CUSUM** ``C⁺ ← max(0, C⁺ + u − k)``, ``C⁻ ← max(0, C⁻ − u − k)`` with
  ``u = (x − target)/σ``; alarm when either exceeds ``h``.  Good for small steps:
  with ``k = 0.5, h = 5`` it finds a 1 σ shift in ~10 samples with an in-control
  run length of ~465.

Where the baseline comes from, first match wins: ``target``/``sigma`` in the
rule's settings; the model file written by ``plantguard train`` (``model``,
default ``models/drift.json`` next to the site file); otherwise the first
``warmup`` samples after start-up (online, vectorised Welford).  Each new sample
is counted once, however often the rules scan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

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
    Site,
    ValueTable,
)

from .base import FloatArray, PointAlarms, new_samples

__all__ = [
    "DRIFT_FORMAT",
    "Baseline",
    "CusumConfig",
    "CusumRule",
    "CusumRuleType",
    "EwmaConfig",
    "EwmaRule",
    "EwmaRuleType",
    "load_drift_model",
]

DRIFT_FORMAT = "plantguard-drift/1"
DEFAULT_MODEL = "models/drift.json"


class _DriftConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    target: float | None = None
    sigma: float | None = Field(None, gt=0)
    warmup: int = Field(100, ge=10, description="samples that set the baseline when untrained")
    model: str = DEFAULT_MODEL
    priority: PriorityName = "low"
    message: str  # each chart has its own default


class EwmaConfig(_DriftConfig):
    """``rules: {ewma: {lambda: 0.2, L: 3}}``."""

    lam: float = Field(0.2, gt=0, le=1, alias="lambda")
    width: float = Field(3.0, gt=0, alias="L")
    message: str = "{name} drifting {direction}: average {value:.4g} {unit} (normal {target:.4g})"


class CusumConfig(_DriftConfig):
    """``rules: {cusum: {k: 0.5, h: 5}}`` (in units of sigma)."""

    k: float = Field(0.5, ge=0)
    h: float = Field(5.0, gt=0)
    message: str = "{name} shifted {direction}: CUSUM {value:.3g} σ (limit {limit:.3g})"


def load_drift_model(path: Path) -> dict[str, tuple[float, float]]:
    """point id → (mean, sigma) from a drift model file; empty if there is none."""
    if not path.exists():
        return {}
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != DRIFT_FORMAT:
        raise ValueError(f"{path}: not a PlantGuard drift model")
    return {pid: (float(v["mean"]), float(v["sigma"])) for pid, v in data["points"].items()}


class Baseline:
    """Per-point mean and sigma: configured, trained, or learned from the first samples."""

    def __init__(
        self, points: Sequence[Point], cfgs: Sequence[_DriftConfig], trained: Mapping[str, Any]
    ) -> None:
        n = len(points)
        self.mean = np.full(n, np.nan)
        self.sigma = np.full(n, np.nan)
        for i, (p, c) in enumerate(zip(points, cfgs, strict=True)):
            mean, sigma = trained.get(p.id, (np.nan, np.nan))
            self.mean[i] = c.target if c.target is not None else mean
            self.sigma[i] = c.sigma if c.sigma is not None else sigma
        self.ready = np.isfinite(self.mean) & np.isfinite(self.sigma) & (self.sigma > 0)
        self._warmup = np.array([c.warmup for c in cfgs])
        self._n = np.zeros(n)
        self._mu = np.zeros(n)
        self._m2 = np.zeros(n)
        self._fixed_mean = np.array([c.target is not None for c in cfgs]) | np.isfinite(self.mean)
        self._fixed_sigma = np.array([c.sigma is not None for c in cfgs]) | np.isfinite(self.sigma)

    def learn(self, x: FloatArray, fresh: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
        """Welford update for the points still learning; freeze those that have enough."""
        learning = fresh & ~self.ready
        if not learning.any():
            return
        self._n[learning] += 1
        delta = np.where(learning, x - self._mu, 0.0)
        self._mu += np.where(learning, delta / np.maximum(self._n, 1), 0.0)
        self._m2 += np.where(learning, delta * (x - self._mu), 0.0)
        done = learning & (self._n >= self._warmup)
        if done.any():
            sd = np.sqrt(self._m2 / np.maximum(self._n - 1, 1))
            self.mean = np.where(done & ~self._fixed_mean, self._mu, self.mean)
            self.sigma = np.where(done & ~self._fixed_sigma, sd, self.sigma)
            self.sigma = np.where(done & ~(self.sigma > 0), 1e-9, self.sigma)
            self.ready |= done


def _trained(
    context: RuleContext | None, configs: Sequence[tuple[Point, _DriftConfig]]
) -> dict[str, Any]:
    """Baselines from the model files; one that cannot be read is a warning (at the
    first point naming it): its points learn their baseline online instead."""
    if context is None:
        return {}
    first: dict[str, str] = {}
    for point, cfg in configs:
        first.setdefault(cfg.model, point.id)
    out: dict[str, Any] = {}
    for path, point_id in sorted(first.items()):
        try:
            out.update(load_drift_model(context.resolve(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            context.warn(
                f"drift model {path} not used (baselines are learned online): {exc}",
                point=point_id,
                field=("model",),
            )
    return out


class _DriftRule(Rule):
    rule_name = ""

    def __init__(
        self,
        table: ValueTable,
        configs: Sequence[tuple[Point, _DriftConfig]],
        context: RuleContext | None = None,
    ) -> None:
        points = [p for p, _ in configs]
        cfgs = [c for _, c in configs]
        self._alarms = PointAlarms(
            self.rule_name,
            kind="deviation",
            configs=configs,
            conditions={1: "DRIFT_HIGH", -1: "DRIFT_LOW"},
        )
        self._idx = table.indices([p.id for p in points])
        self.baseline = Baseline(points, cfgs, _trained(context, configs))
        self._last_t = np.full(len(points), -np.inf)

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        fresh = new_samples(table, self._idx, self._last_t)
        if not fresh.any():
            return []
        x = table.values[self._idx]
        was_ready = self.baseline.ready.copy()
        self.baseline.learn(x, fresh)
        judged = fresh & was_ready
        level, shown = self._chart(x, judged)
        return self._alarms.findings(level, judged, shown, now, self._fields)

    def _fields(self, i: int) -> dict[str, object]:
        return {
            "direction": "high" if self._alarms.level[i] > 0 else "low",
            "target": float(self.baseline.mean[i]),
            "limit": float(self._limit(i)),
        }

    def _limit(self, i: int) -> float:
        return float("nan")

    def _chart(
        self, x: FloatArray, judged: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int8]], FloatArray]:
        raise NotImplementedError


class EwmaRule(_DriftRule):
    rule_name = "ewma"

    def __init__(
        self,
        table: ValueTable,
        configs: Sequence[tuple[Point, EwmaConfig]],
        context: RuleContext | None = None,
    ) -> None:
        super().__init__(table, configs, context)
        self._lam = np.array([c.lam for _, c in configs])
        self._width = np.array([c.width for _, c in configs])
        self.z = np.full(len(configs), np.nan)

    def _chart(
        self, x: FloatArray, judged: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int8]], FloatArray]:
        b = self.baseline
        start = judged & np.isnan(self.z)
        self.z[start] = b.mean[start]
        self.z = np.where(judged, self._lam * x + (1 - self._lam) * self.z, self.z)
        limit = self._width * b.sigma * np.sqrt(self._lam / (2 - self._lam))
        dev = self.z - b.mean
        with np.errstate(invalid="ignore"):
            level = np.where(dev > limit, 1, np.where(dev < -limit, -1, 0)).astype(np.int8)
        return level, self.z


class CusumRule(_DriftRule):
    rule_name = "cusum"

    def __init__(
        self,
        table: ValueTable,
        configs: Sequence[tuple[Point, CusumConfig]],
        context: RuleContext | None = None,
    ) -> None:
        super().__init__(table, configs, context)
        self._k = np.array([c.k for _, c in configs])
        self._h = np.array([c.h for _, c in configs])
        self.upper = np.zeros(len(configs))
        self.lower = np.zeros(len(configs))

    def _chart(
        self, x: FloatArray, judged: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int8]], FloatArray]:
        b = self.baseline
        with np.errstate(invalid="ignore"):
            u = (x - b.mean) / b.sigma
            self.upper = np.where(judged, np.maximum(0.0, self.upper + u - self._k), self.upper)
            self.lower = np.where(judged, np.maximum(0.0, self.lower - u - self._k), self.lower)
        level = np.where(self.upper > self._h, 1, np.where(self.lower > self._h, -1, 0))
        return level.astype(np.int8), np.maximum(self.upper, self.lower)

    def _limit(self, i: int) -> float:
        return float(self._h[i])


class _DriftRuleType(RuleType):
    """EWMA and CUSUM differ only in their chart: one rule type shape for both."""

    rule_class: ClassVar[type[EwmaRule] | type[CusumRule]]

    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        typed = [(p, c) for p, c in configs if isinstance(c, self.config_model)]
        return self.rule_class(table, typed, context)  # type: ignore[arg-type]


class EwmaRuleType(_DriftRuleType):
    config_model = EwmaConfig
    rule_class = EwmaRule


class CusumRuleType(_DriftRuleType):
    config_model = CusumConfig
    rule_class = CusumRule
