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
from collections.abc import Callable, Mapping, Sequence
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

from .base import (
    BoolArray,
    FloatArray,
    IntArray,
    Levels,
    PointAlarms,
    Slots,
    fresh_samples,
    where_mask,
)

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
        #: Every baseline set: nothing left to learn (the usual case once warmed up).
        self.all_ready = bool(self.ready.all())
        #: Counts the changes of mean/sigma, for rules that derive limits from them.
        self.version = 0
        self._warmup = np.array([c.warmup for c in cfgs])
        self._n = np.zeros(n)
        self._mu = np.zeros(n)
        self._m2 = np.zeros(n)
        self._fixed_mean = np.array([c.target is not None for c in cfgs], dtype=bool) | np.isfinite(
            self.mean
        )
        self._fixed_sigma = np.array([c.sigma is not None for c in cfgs], dtype=bool) | np.isfinite(
            self.sigma
        )

    def learn(self, x: FloatArray, fresh: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
        """Welford update for the points still learning; freeze those that have enough."""
        if self.all_ready:
            return
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
            self.all_ready = bool(self.ready.all())
            self.version += 1


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
        self._slots = Slots(table.indices([p.id for p in points]))
        self.baseline = Baseline(points, cfgs, _trained(context, configs))
        n = len(points)
        self._last_t = np.full(n, -np.inf)
        self._fresh = np.empty(n, dtype=bool)
        self._judged = np.empty(n, dtype=bool)
        self._b1 = np.empty(n, dtype=bool)
        self._b2 = np.empty(n, dtype=bool)
        self._w1 = np.empty(n)
        self._w2 = np.empty(n)
        self._version = -1  # of the baseline the chart's limits were derived from

    def alarms(self) -> Sequence[AlarmDefinition]:
        return self._alarms.definitions

    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        fresh = fresh_samples(table, self._slots, self._last_t, self._fresh)
        if not fresh.any():
            return []
        x = self._slots.of(table.values)
        b = self.baseline
        if b.all_ready:
            judged = fresh
        else:
            judged = np.logical_and(fresh, b.ready, out=self._judged)
            b.learn(x, fresh)
        if self._version != b.version:
            self._version = b.version
            self._derive()
        with np.errstate(invalid="ignore"):
            level, shown = self._chart(x, judged)
        return self._alarms.changes(level, judged, shown, now, columns=self._columns)

    def _derive(self) -> None:
        """Recompute what the chart derives from the baseline (it just changed)."""

    def _columns(self, rows: IntArray) -> dict[str, list[object]]:
        return {
            "direction": ["high" if x > 0 else "low" for x in self._alarms.level[rows].tolist()],
            "target": self.baseline.mean[rows].tolist(),
            "limit": self._limits(rows),
        }

    def _limits(self, rows: IntArray) -> list[object]:
        return [float("nan")] * rows.size

    def _chart(
        self, x: FloatArray, judged: BoolArray
    ) -> tuple[Levels, FloatArray | Callable[[IntArray], FloatArray]]:
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
        self._keep = 1 - self._lam
        self._width = np.array([c.width for _, c in configs])
        self.z = np.full(len(configs), np.nan)
        self._unstarted = len(configs)  # rows whose z is not set yet
        self._hi = np.full(len(configs), np.nan)
        self._lo = np.full(len(configs), np.nan)

    def _derive(self) -> None:
        b = self.baseline
        self._hi = self._width * b.sigma * np.sqrt(self._lam / (2 - self._lam))
        self._lo = -self._hi

    def _chart(self, x: FloatArray, judged: BoolArray) -> tuple[Levels, FloatArray]:
        b = self.baseline
        if self._unstarted:
            start = judged & np.isnan(self.z)
            self.z[start] = b.mean[start]
            self._unstarted = int(np.count_nonzero(np.isnan(self.z)))
        # z = λ·x + (1−λ)·z where judged, in place.
        np.multiply(self._lam, x, out=self._w1)
        np.multiply(self._keep, self.z, out=self._w2)
        np.add(self._w1, self._w2, out=self.z, where=where_mask(judged))
        dev = np.subtract(self.z, b.mean, out=self._w1)
        level = np.greater(dev, self._hi, out=self._b1).view(np.int8)
        level -= np.less(dev, self._lo, out=self._b2).view(np.int8)
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
        self, x: FloatArray, judged: BoolArray
    ) -> tuple[Levels, Callable[[IntArray], FloatArray]]:
        b = self.baseline
        u, w = self._w1, self._w2
        where = where_mask(judged)
        np.divide(np.subtract(x, b.mean, out=u), b.sigma, out=u)
        np.subtract(np.add(self.upper, u, out=w), self._k, out=w)
        np.maximum(0.0, w, out=self.upper, where=where)
        np.subtract(np.subtract(self.lower, u, out=w), self._k, out=w)
        np.maximum(0.0, w, out=self.lower, where=where)
        high = np.greater(self.upper, self._h, out=self._b1)
        low = np.greater(self.lower, self._h, out=self._b2)
        np.greater(low, high, out=low)  # low only where high is not: high wins
        level = high.view(np.int8)
        level -= low.view(np.int8)
        return level, lambda rows: np.maximum(self.upper[rows], self.lower[rows])

    def _limits(self, rows: IntArray) -> list[object]:
        return self._h[rows].tolist()  # type: ignore[no-any-return]


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
