"""The automatic choice of method, smoothing, hold and limit, from training rows only.

What ``plantguard detect fit`` and ``plantguard train`` do when no ``--method``
is given.  A plant has months of normal history and no labelled faults; it
should not have to know which method suits its data, nor tune λ.  So the choice
is made the way a benchmark protocol makes it — on the plant's own rows:

1. **Candidates** (:func:`candidates`): every multivariate method of the library
   at the smoothings of general EWMA practice, each without a hold and with a
   hold as long as its EWMA's memory.
2. **Time-series cross-validation** (forward chaining): the training rows are
   cut in :data:`FOLDS` + 1 contiguous blocks, and each block after the first is
   scored by a model fitted on all rows before it — a model is always judged on
   what follows its training rows, as it will be used (normal operation
   wanders, and this shows how much) — and so are faulty copies of it
   (:mod:`plantguard_rules.faults`: steps, drifts and variance changes of 1–3
   training standard deviations in single variables and correlated pairs, and
   correlations that break).
3. **Limit** per candidate: the lowest whose flags (with the hold) are at most
   the target false-alarm rate ``far`` on clean held-out rows — *cross-fitted*:
   each block is judged by a threshold set on the other blocks, and the
   thresholds are raised together, in 5 % steps, only until the held-out rate
   meets the target.  So the limit meets the target on rows that did not set
   it, and is no higher than that.
4. **Choice**: the candidate that flags the largest share of faulty rows at
   that limit wins (every candidate meets the false-alarm target by step 3).
   An **ensemble** — the winner together with the best candidate of another
   method, limits set again on their combined statistic
   (:mod:`plantguard_rules.ensemble`) — wins instead only when it beats the
   winner by more than one standard error of its mean detection over the
   faults (the one-standard-error rule of cross-validated model choice): a
   second model doubles the scan cost and must pay for it.

The model file records every candidate's held-out figures and why the winner
won (``options.auto``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import FloatArray
from .batch import batch_statistics
from .ensemble import DetectionModel, EnsembleModel
from .faults import correlated_pairs, inject
from .mvmodels import (
    RECOMMENDED,
    STATISTICS,
    FitError,
    LimitRule,
    Method,
    ModelOptions,
    MultivariateModel,
    fit_configured,
    fit_structure,
    held_flags,
    min_rows,
)

__all__ = [
    "FAR",
    "FOLDS",
    "AutoFit",
    "Candidate",
    "GroupFit",
    "Structure",
    "auto_fit",
    "candidates",
    "fit_group",
    "min_auto_rows",
    "rate_threshold",
    "table_lines",
]

#: Default false-alarm target: 1 % of rows of continuous plant data.
FAR = 0.01
#: Held-out blocks of the cross-validation (the customary five; the rows are cut in six).
FOLDS = 5
#: Rows a block has at least: several EWMA memories at λ 0.2 (a floor, not a tuning).
MIN_FOLD_ROWS = 30
#: Rows of each block that carry synthetic faults: bounds the work on long histories.
MAX_FAULT_ROWS = 1000
#: Seed of the synthetic faults' draws: the same rows give the same choice.
SEED = 20260
#: Step by which cross-fitted thresholds are raised together until they hold.
RAISE = 1.05
#: Smoothings of the residual candidates: the EWMA range of general practice
#: (λ 0.05–0.25 for small shifts) widened by 0.5 and 1 (no smoothing) for large ones.
RESIDUAL_SMOOTHINGS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
#: PCA (lags 0) and dynamic PCA (1 and 2 lags: what Ku et al. found to suffice),
#: T² and Q unsmoothed and smoothed with λ 0.2.
PCA_LAGS: tuple[int, ...] = (0, 1, 2)
PCA_SMOOTHINGS: tuple[float | None, ...] = (None, 0.2)
#: MEWMA at the smoothings of Lowry et al.'s tables.
MEWMA_SMOOTHINGS: tuple[float, ...] = (0.1, 0.2)


@dataclass(frozen=True, slots=True)
class Structure:
    """A method with its settings (everything but the hold and the limit)."""

    method: Method
    options: ModelOptions

    @property
    def label(self) -> str:
        o = self.options
        lam = "none" if not o.smoothing or o.smoothing >= 1 else f"{o.smoothing:g}"
        lags = f" lags {o.lags}" if self.method == "dpca" else ""
        return f"{self.method}{lags} λ {lam}"

    @property
    def memory(self) -> int:
        """Rows of the EWMA's memory, (2 − λ)/λ — the length of the moving average
        it is equivalent to; 1 without smoothing."""
        lam = self.options.smoothing or 1.0
        return max(1, round((2 - lam) / lam))

    @property
    def warm_up(self) -> int:
        """Rows before a fold that let the EWMA and lag window settle (3/λ: 95 %
        of the EWMA's weight) before the fold is counted."""
        lam = self.options.smoothing or 1.0
        return math.ceil(3 / lam) + self.options.lags if lam < 1 else self.options.lags


@dataclass(frozen=True, slots=True)
class Candidate:
    """One or two structures (two: an ensemble) and a hold."""

    members: tuple[Structure, ...]
    hold: int

    @property
    def label(self) -> str:
        return " + ".join(s.label for s in self.members) + f", hold {self.hold}"


def candidates(smoothing: float | None = None, hold: int | None = None) -> list[Candidate]:
    """The declared candidates; ``smoothing``/``hold`` (when given) replace theirs."""
    shapes: list[tuple[Method, int, float | None]] = [
        ("residual", 0, lam) for lam in RESIDUAL_SMOOTHINGS
    ]
    shapes += [
        ("pca" if lags == 0 else "dpca", lags, lam) for lags in PCA_LAGS for lam in PCA_SMOOTHINGS
    ]
    shapes += [("mewma", 0, lam) for lam in MEWMA_SMOOTHINGS]
    out: dict[str, Candidate] = {}
    for method, lags, own in shapes:
        lam = own if smoothing is None else smoothing
        s = Structure(method, ModelOptions.for_method(method, lags=lags, smoothing=lam, hold=0))
        for h in (0, s.memory) if hold is None else (hold,):
            c = Candidate((s,), h)
            out.setdefault(c.label, c)
    return list(out.values())


# --- scores on held-out folds ---------------------------------------------------------


@dataclass(slots=True)
class _Scores:
    """One structure's normalised scores: per fold, clean rows (n_f) and faulty
    copies (F × L); ``base`` divides each statistic so they combine by ``max``."""

    clean: list[FloatArray]
    faulty: list[FloatArray]
    base: FloatArray


@dataclass(slots=True)
class _Folds:
    """The held-out blocks ``[a, b)`` (each scored by a model fitted on the rows
    before it) and, per block, its faulty copies and where their episode starts."""

    bounds: list[tuple[int, int]]
    copies: list[FloatArray]
    starts: list[int]
    kinds: list[str] = field(default_factory=list)


def _splits(n: int, folds: int) -> list[tuple[int, int]]:
    """Forward-chaining splits: the rows cut in ``folds + 1`` contiguous blocks,
    and each block after the first held out from a model fitted on all rows
    before it — the model always judged on what follows its training rows, as it
    will be used (the last block runs to the end)."""
    size = n // (folds + 1)
    return [(f * size, n if f == folds else (f + 1) * size) for f in range(1, folds + 1)]


def _make_folds(x: FloatArray, bounds: list[tuple[int, int]]) -> _Folds:
    n = x.shape[0]
    sd = x.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    pairs = correlated_pairs(x)
    donor = np.roll(x, -(n // 2), axis=0)
    out = _Folds(bounds, [], [])
    for f, (a, b) in enumerate(bounds):
        end = min(b, a + MAX_FAULT_ROWS)
        start = (end - a) // 3
        rng = np.random.default_rng([SEED, f])
        copies, faults = inject(x[a:end], start, sd, pairs=pairs, donor=donor[a:end], rng=rng)
        out.copies.append(copies)
        out.starts.append(start)
        out.kinds += [fault.kind for fault in faults]
    return out


def _fold_statistics(
    x: FloatArray, names: Sequence[str], s: Structure, folds: _Folds
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Raw statistics of each held-out block (clean rows, faulty copies) under a
    model fitted on the rows before it, the EWMA warmed on the last of those."""
    clean, faulty = [], []
    for (a, b), copies in zip(folds.bounds, folds.copies, strict=True):
        model = fit_structure(x[:a], names, s.method, s.options)
        pre = x[max(0, a - s.warm_up) : a]
        clean.append(batch_statistics(model, np.vstack([pre, x[a:b]]))[len(pre) :])
        warm = np.broadcast_to(pre, (copies.shape[0], *pre.shape))
        faulty.append(
            batch_statistics(model, np.concatenate([warm, copies], axis=1))[:, len(pre) :]
        )
    return clean, faulty


def _normalised(clean: list[FloatArray], faulty: list[FloatArray], far: float) -> _Scores:
    """Each statistic divided by its (1 − far) quantile on the clean held-out rows,
    the larger taken (a row alarms when any statistic is out); NaN → −∞."""
    pooled = np.vstack(clean)
    base = np.array(
        [
            np.quantile(col[np.isfinite(col)], 1 - far) if np.isfinite(col).any() else 1.0
            for col in pooled.T
        ]
    )
    base = np.where(base > 1e-300, base, 1e-300)

    def combine(stats: FloatArray) -> FloatArray:
        out: FloatArray = np.max(np.nan_to_num(stats / base, nan=-np.inf), axis=-1)
        return out

    return _Scores([combine(c) for c in clean], [combine(f) for f in faulty], base)


def _held(flags: np.ndarray[Any, Any], hold: int) -> np.ndarray[Any, Any]:
    """:func:`held_flags` along the last axis of a 1-D or 2-D array."""
    if flags.ndim == 1:
        return held_flags(flags, hold)
    if hold <= 0 or not flags.size:
        return flags
    idx = np.arange(flags.shape[-1])
    last = np.maximum.accumulate(np.where(flags, idx, -(hold + 1)), axis=-1)
    shown: np.ndarray[Any, Any] = idx - last <= hold
    return shown


def _rate(segments: Sequence[FloatArray], thresholds: Sequence[float], hold: int) -> float:
    rows = sum(s.size for s in segments)
    flagged = sum(int(_held(s > t, hold).sum()) for s, t in zip(segments, thresholds, strict=True))
    return flagged / rows if rows else 0.0


def rate_threshold(segments: Sequence[FloatArray], hold: int, far: float) -> float:
    """The lowest threshold whose flags (a row above it, held ``hold`` rows) are at
    most ``far`` of the rows of ``segments`` (contiguous series, scored apart)."""
    values = np.unique(np.concatenate([s[np.isfinite(s)] for s in segments]))
    if not values.size:
        return math.inf
    lo, hi = 0, values.size - 1  # the largest value flags nothing: hi always holds
    while lo < hi:
        mid = (lo + hi) // 2
        if _rate(segments, [float(values[mid])] * len(segments), hold) <= far:
            hi = mid
        else:
            lo = mid + 1
    return float(values[lo])


@dataclass(slots=True)
class _Result:
    """A candidate's held-out figures at its limit."""

    candidate: Candidate
    #: factor by which thresholds from the other folds were raised to hold
    raise_by: float
    far: float
    detection: FloatArray  # per faulty copy: share of its episode rows flagged
    delays: list[int | None]
    threshold: float  # on all folds' clean rows, times raise_by
    bases: list[FloatArray]  # per member: the divisor of each statistic

    def row(self, chosen: bool) -> dict[str, Any]:
        found = [d for d in self.delays if d is not None]
        return {
            "candidate": self.candidate.label,
            "held_out_far": self.far,
            "detection": float(self.detection.mean()),
            "episodes_detected": len(found) / max(len(self.delays), 1),
            "median_delay_rows": float(np.median(found)) if found else None,
            "limit_raised_by": self.raise_by,
            "chosen": chosen,
        }


def _evaluate(
    candidate: Candidate, scores: _Scores, starts: list[int], far: float, bases: list[FloatArray]
) -> _Result:
    h = candidate.hold
    k = len(scores.clean)
    own = [rate_threshold([scores.clean[g] for g in range(k) if g != f], h, far) for f in range(k)]
    factor = 1.0
    for _ in range(400):
        if _rate(scores.clean, [factor * t for t in own], h) <= far:
            break
        factor *= RAISE
    held_out = _rate(scores.clean, [factor * t for t in own], h)
    detection, delays = [], []
    for f, faulty in enumerate(scores.faulty):
        flags = _held(faulty > factor * own[f], h)[:, starts[f] :]
        detection.append(flags.mean(axis=1))
        for row in flags:
            hit = np.flatnonzero(row)
            delays.append(int(hit[0]) if hit.size else None)
    threshold = factor * rate_threshold(scores.clean, h, far)
    return _Result(candidate, factor, held_out, np.concatenate(detection), delays, threshold, bases)


def _ensemble_scores(a: _Scores, b: _Scores, far: float) -> tuple[_Scores, FloatArray]:
    """The larger of two members' scores, each divided by its (1 − far) quantile."""
    q = np.array(
        [max(float(np.quantile(np.concatenate(s.clean), 1 - far)), 1e-300) for s in (a, b)]
    )
    clean = [np.fmax(x / q[0], y / q[1]) for x, y in zip(a.clean, b.clean, strict=True)]
    faulty = [np.fmax(x / q[0], y / q[1]) for x, y in zip(a.faulty, b.faulty, strict=True)]
    return _Scores(clean, faulty, np.ones(1)), q


# --- the choice -----------------------------------------------------------------------


@dataclass(slots=True)
class AutoFit:
    """The chosen model and the table of every candidate's held-out figures."""

    model: DetectionModel
    table: list[dict[str, Any]]
    why: str


def _check(x: FloatArray, names: Sequence[str], folds: int) -> FloatArray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise FitError(f"expected {len(names)} columns, got shape {x.shape}")
    if len(names) < 2:
        raise FitError("a multivariate model needs at least 2 variables")
    if not np.all(np.isfinite(x)):
        raise FitError("training rows must not contain missing values")
    need = min_auto_rows(folds)
    if x.shape[0] < need:
        raise FitError(
            f"too few rows to train: {x.shape[0]} (the automatic choice needs at least "
            f"{need}: {folds + 1} blocks of {MIN_FOLD_ROWS}; or give --method)"
        )
    return x


def _need(s: Structure, m: int) -> int:
    """Rows a fit of ``s`` needs on ``m`` variables."""
    o = s.options
    return min_rows(s.method, m, ModelOptions(lags=o.lags, calibration="training"))


def _pool(
    pool: list[Candidate], m: int, splits: list[tuple[int, int]]
) -> tuple[list[Candidate], list[tuple[int, int]]]:
    """The candidates that can be fitted before at least two held-out blocks, and
    the blocks every one of them can be (all candidates judged on the same rows)."""
    kept = [c for c in pool if _need(c.members[0], m) <= splits[-2][0]]
    if not kept:
        return [], []
    need = max(_need(c.members[0], m) for c in kept)
    return kept, [(a, b) for a, b in splits if a >= need]


def auto_fit(
    x: FloatArray,
    names: Sequence[str],
    *,
    far: float = FAR,
    folds: int = FOLDS,
    smoothing: float | None = None,
    hold: int | None = None,
    trained_on: Mapping[str, Any] | None = None,
) -> AutoFit:
    """Choose and fit (see the module docstring)."""
    if not 0 < far < 0.5:
        raise FitError(f"the false-alarm target must be between 0 and 50 %, got {far:g}")
    x = _check(x, names, folds)
    pool, bounds = _pool(candidates(smoothing, hold), x.shape[1], _splits(x.shape[0], folds))
    if not pool:
        raise FitError(
            f"too few rows to train: {x.shape[0]} rows are not enough to judge any candidate "
            f"on {len(names)} variables (or give --method)"
        )
    layout = _make_folds(x, bounds)
    scores: dict[str, _Scores] = {}
    results: list[_Result] = []
    for c in pool:
        s = c.members[0]
        if s.label not in scores:
            scores[s.label] = _normalised(*_fold_statistics(x, names, s, layout), far)
        sc = scores[s.label]
        results.append(_evaluate(c, sc, layout.starts, far, [sc.base]))
    best = max(results, key=lambda r: float(r.detection.mean()))
    why = _why_single(best, results, far, len(layout.kinds), len(bounds))
    for other in _ensemble_partners(best, results):
        a, b = best.candidate.members[0], other.candidate.members[0]
        combined, q = _ensemble_scores(scores[a.label], scores[b.label], far)
        pair = Candidate((a, b), best.candidate.hold)
        bases = [scores[a.label].base * q[0], scores[b.label].base * q[1]]
        res = _evaluate(pair, combined, layout.starts, far, bases)
        results.append(res)
        if (gain := _significant_gain(res, best)) is not None:
            why = (
                f"{pair.label}: the ensemble flags {100 * gain:.1f} points more of the "
                f"synthetic-fault rows than {best.candidate.label} (more than one standard "
                f"error) at held-out false alarms {100 * res.far:.2f} %"
            )
            best = res
    table = [r.row(r is best) for r in results]
    model = _final(x, names, best)
    model.trained_on = {"rows": int(x.shape[0]), **(trained_on or {})}
    # What `plantguard acceptance` and `detect fit` read of any model: whether the
    # limit was checked on rows that did not set it, and held there.
    model.options["checked"] = {
        "rule": "automatic choice",
        "quantile": 1 - far,
        "margin": best.raise_by,
        "holds": best.far <= far,
        "held_out_alarm_rate": best.far,
    }
    model.options["auto"] = {
        "far": far,
        "folds": folds,
        "held_out_blocks": [list(ab) for ab in bounds],
        "synthetic_faults": len(layout.kinds),
        "fault_kinds": sorted(set(layout.kinds)),
        "chosen": best.candidate.label,
        "why": why,
        "candidates": table,
    }
    return AutoFit(model, table, why)


def _why_single(best: _Result, results: list[_Result], far: float, faults: int, folds: int) -> str:
    ranked = sorted(results, key=lambda r: -float(r.detection.mean()))
    runner = next((r for r in ranked if r is not best), None)
    after = (
        f"; next: {runner.candidate.label} {100 * float(runner.detection.mean()):.1f} %"
        if runner is not None
        else ""
    )
    return (
        f"{best.candidate.label}: the most synthetic-fault rows flagged "
        f"({100 * float(best.detection.mean()):.1f} % of {faults} faults in {folds} held-out "
        f"folds) with held-out false alarms {100 * best.far:.2f} % ≤ target "
        f"{100 * far:g} %{after}"
    )


def _ensemble_partners(best: _Result, results: list[_Result]) -> list[_Result]:
    """The best candidate of each other method family (the ensemble takes the winner's hold)."""
    family = _family(best.candidate.members[0])
    out: dict[str, _Result] = {}
    for r in results:
        fam = _family(r.candidate.members[0])
        if len(r.candidate.members) > 1 or fam == family:
            continue
        if fam not in out or r.detection.mean() > out[fam].detection.mean():
            out[fam] = r
    return list(out.values())


def _family(s: Structure) -> str:
    """pca and dpca are one family (T² and Q); residual and mewma each their own."""
    return "pca" if s.method in ("pca", "dpca") else s.method


def _significant_gain(candidate: _Result, best: _Result) -> float | None:
    """The gain in mean detection, if it exceeds one standard error of the
    ensemble's own mean (Breiman's rule: the simpler model unless the more
    complex one is better by more than the estimate's uncertainty)."""
    d = candidate.detection
    if d.size < 2:
        return None
    gain = float(d.mean() - best.detection.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    return gain if gain > se else None


def _member(
    x: FloatArray, names: Sequence[str], s: Structure, base: FloatArray, threshold: float
) -> MultivariateModel:
    model = fit_structure(x, names, s.method, s.options)
    keys = [k for k, _ in STATISTICS[s.method]]
    model.limits = {k: float(threshold * b) for k, b in zip(keys, base, strict=True)}
    model.options = {
        "lags": s.options.lags,
        "variance": s.options.variance,
        "smoothing": s.options.smoothing,
        "horizon": s.options.horizon,
        "ridge": s.options.ridge,
        "calibration": "auto",
        "hold": 0,
    }
    return model


def _final(x: FloatArray, names: Sequence[str], best: _Result) -> DetectionModel:
    c = best.candidate
    members = [
        _member(x, names, s, base, best.threshold)
        for s, base in zip(c.members, best.bases, strict=True)
    ]
    if len(members) == 1:
        members[0].hold = c.hold
        members[0].options["hold"] = c.hold
        return members[0]
    return EnsembleModel(members, c.hold, options={"calibration": "auto"})


@dataclass(frozen=True, slots=True)
class GroupFit:
    """What :func:`fit_group` made: the model, the automatic choice's record (None
    with an explicit method), and a warning for the user (None: nothing to say)."""

    model: DetectionModel
    auto: AutoFit | None = None
    warning: str | None = None


def min_auto_rows(folds: int = FOLDS) -> int:
    """Rows the automatic choice needs: ``folds + 1`` blocks of :data:`MIN_FOLD_ROWS`."""
    return (folds + 1) * MIN_FOLD_ROWS


def fit_group(
    x: FloatArray,
    names: Sequence[str],
    method: Method | None,
    *,
    limits: LimitRule | None = None,
    smoothing: float | None = None,
    hold: int | None = None,
    far: float = FAR,
    trained_on: Mapping[str, Any] | None = None,
) -> GroupFit:
    """What ``detect fit`` and ``train`` fit: the automatic choice without a
    method, else the method with its limit rule (``limits``, default checked).

    Too few rows for the automatic choice (a few seconds of history, a first
    try) still give a model: the recommended method with checked limits, and a
    warning that says to train on a longer period.
    """
    if method is None and limits is not None:
        raise FitError("a limit rule (--limits) applies to an explicit method (--method)")
    rows = np.shape(x)[0]
    if method is None and rows >= min_auto_rows():
        auto = auto_fit(x, names, far=far, smoothing=smoothing, hold=hold, trained_on=trained_on)
        return GroupFit(auto.model, auto)
    warning = None
    if method is None:
        method = RECOMMENDED
        warning = (
            f"{rows} rows are too few for the automatic choice (it needs {min_auto_rows()}): "
            f"fitted the recommended method {RECOMMENDED} with checked limits; train on a "
            "longer period of normal operation"
        )
    model = fit_configured(
        x,
        names,
        method,
        limits=limits or "checked",
        smoothing=smoothing,
        hold=hold,
        trained_on=trained_on,
    )
    return GroupFit(model, None, warning)


def table_lines(auto: AutoFit) -> list[str]:
    """The candidates' table as ``detect fit`` prints it."""
    head = (
        f"{'':2}{'candidate':<44} {'FAR %':>6} {'detected %':>10} {'episodes %':>10} {'delay':>6}"
    )
    lines = [head]
    for r in auto.table:
        delay = "—" if r["median_delay_rows"] is None else f"{r['median_delay_rows']:g}"
        lines.append(
            f"{'* ' if r['chosen'] else '  '}{r['candidate']:<44} {100 * r['held_out_far']:>6.2f} "
            f"{100 * r['detection']:>10.1f} {100 * r['episodes_detected']:>10.1f} {delay:>6}"
        )
    lines.append(f"chosen: {auto.why}")
    return lines
