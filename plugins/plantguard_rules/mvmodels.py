"""Multivariate models of normal operation: fit from history, score one scan at a time.

A group of related points (a reactor's temperatures, pressures and flows) moves
together in normal operation; a fault breaks that pattern before any single
point crosses a limit.  Four methods, all fitted on normal data only:

``pca``
    Static PCA with Hotelling's T² (variation inside the normal pattern) and the
    squared prediction error SPE/Q (variation outside it).  Limits are derived
    statistically: T² from the F distribution, Q by Jackson and Mudholkar's
    normal approximation, at confidence ``alpha``.
``dpca``
    Dynamic PCA: each row is extended with the ``lags`` previous rows, so serial
    correlation becomes part of the normal pattern; T² and Q are EWMA-smoothed
    (a slow fault accumulates evidence), and because smoothed statistics follow
    no textbook distribution their limits are the ``quantile`` of *held-out*
    statistics: the training data is cut in ``folds`` contiguous blocks, each
    scored by a model fitted on the others.
``mewma``
    Multivariate EWMA of standardised values for short training windows on
    equipment that drifts slowly (temperatures that creep during a run): each
    variable's allowed variance is widened by the drift its own training trend
    would produce over ``horizon`` samples, so creeping variables stop raising
    false alarms while a step in a steady variable still shows.  The limit is
    ``margin`` times the largest statistic seen in training.
``residual`` (recommended: both detection benchmarks choose it from training data)
    Regression residuals, MSET-like: each variable is predicted from all the
    others by a (lightly ridge-regularised) linear regression fitted on the
    detrended, standardised training rows, and the residuals are EWMA-smoothed.
    A valve that throttles a pump moves flow, pressure and current *off* the
    relation they keep in normal running, while a slow common creep (both
    temperatures warming over a run) stays on it — which is why residuals beat
    raw deviations on short training windows of drifting equipment.  Each
    smoothed residual is divided by its training spread and the largest ratio
    is the statistic (max of normalised scores: one broken relation is enough);
    the limit is ``margin`` times the largest statistic seen in training.

Limits (``calibration``), for any method, times ``margin``:

``theory``
    The textbook distributions (``pca``'s default): T² from F, Q by
    Jackson–Mudholkar, at confidence ``alpha``.
``held-out`` (``dpca``'s default)
    The ``quantile`` of *held-out* statistics: the training rows are cut in
    ``folds`` contiguous blocks, each scored by a model fitted on the others.
    Two folds ask the most of a model — half a period predicting the other
    half, as a model trained on yesterday runs today — and are what to use when
    normal operation wanders between periods.
``training`` (``mewma`` and ``residual``)
    The largest statistic seen on the training rows themselves.

:func:`fit_checked` chooses the limit rather than assuming it: the lowest of
:data:`CHECKED_LIMITS` whose value from one half of the training rows flags at
most a budget (1 %) of the other half; :func:`fit_configured`, what
``plantguard detect fit`` and ``plantguard train`` call for an explicit method,
uses it by default.  Without a method they make the automatic choice of
:mod:`plantguard_rules.autofit`, which sets limits its own way.

Any method can hold its flag for ``hold`` rows after the statistic falls back
below the limit (an off-delay).  Faults are contiguous episodes, and a smoothed
statistic dips below its limit now and then in the middle of one; without the
hold each dip ends the alarm and starts a new one (chattering).

Every model scores through :class:`Scorer`, one row at a time and with state (lags,
EWMA); the fit's calibration, the offline ``plantguard detect score`` and the live
rule all use that same code.  The score is normalised so that 1.0 is the limit:
``score = max(statistic / limit)``.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from .base import FloatArray
from .stats import f_ppf, norm_ppf

__all__ = [
    "CHECKED_LIMITS",
    "LIMIT_RULES",
    "METHODS",
    "RECOMMENDED",
    "STATISTICS",
    "Calibration",
    "CheckedFit",
    "FitError",
    "LimitRule",
    "Method",
    "ModelOptions",
    "MultivariateModel",
    "Score",
    "Scorer",
    "fit_checked",
    "fit_configured",
    "fit_model",
    "fit_structure",
    "held_flags",
    "held_out_statistics",
    "select_limit",
]

Method = Literal["pca", "dpca", "mewma", "residual"]
Calibration = Literal["theory", "held-out", "training"]
METHODS: tuple[Method, ...] = ("dpca", "pca", "mewma", "residual")
#: The method both detection benchmarks choose from their training data.
RECOMMENDED: Method = "residual"
FORMAT = "plantguard-multivariate/1"
#: The statistics of each method, in the order :meth:`Scorer.statistics` returns them,
#: with the label a reason gives each.
STATISTICS: dict[Method, tuple[tuple[str, str], ...]] = {
    "pca": (("t2", "T2"), ("q", "SPE")),
    "dpca": (("t2", "T2"), ("q", "SPE")),
    "mewma": (("d2", "MEWMA"),),
    "residual": (("r", "RESID"),),
}


class FitError(ValueError):
    """The training data cannot give a model (too few rows, no variation)."""


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Settings of a fit; the defaults are the recommended ones per method."""

    lags: int = 2
    variance: float = 0.95
    smoothing: float | None = 0.2
    alpha: float = 0.99
    quantile: float = 0.995
    folds: int = 5
    horizon: float = 400.0
    #: how limits are set (see the module docstring); ``margin`` multiplies them.
    calibration: Calibration = "held-out"
    margin: float = 1.0
    #: rows a flag is held after the statistic falls below the limit (0: none).
    hold: int = 0
    #: ridge added to the standardised covariance before the residual regressions.
    ridge: float = 0.0025

    @classmethod
    def for_method(cls, method: Method, **overrides: Any) -> ModelOptions:
        presets: dict[str, dict[str, Any]] = {
            "pca": {"lags": 0, "smoothing": None, "calibration": "theory"},
            "dpca": {},
            "mewma": {"lags": 0, "smoothing": 0.03, "calibration": "training", "margin": 4.0},
            # hold ≈ 3/λ rows: about the smoothed residual's memory, so one
            # dip inside an episode does not end its alarm.
            "residual": {
                "lags": 0,
                "smoothing": 0.1,
                "hold": 30,
                "calibration": "training",
                "margin": 4.0,
            },
        }
        return cls(**{**presets[method], **overrides})


@dataclass(slots=True)
class MultivariateModel:
    """A fitted model; :meth:`to_json` / :meth:`from_json` give the model file."""

    method: Method
    variables: list[str]
    mean: FloatArray
    scale: FloatArray
    lags: int
    smoothing: float | None
    #: pca/dpca: loadings (m × k) and eigenvalues (k); mewma: inverse covariance (m × m);
    #: residual: residual map (m × m, ``residuals = z @ matrix``) and, in ``eigenvalues``,
    #: the training spread of each smoothed residual (m).
    matrix: FloatArray
    eigenvalues: FloatArray
    #: statistic name → limit ("t2", "q", "d2" or "r").
    limits: dict[str, float]
    trained_on: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: rows a flag is held after the statistic falls back below its limit.
    hold: int = 0

    def scorer(self) -> Scorer:
        return Scorer(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "variables": self.variables,
            "trained_on": self.trained_on,
            "options": self.options,
            "lags": self.lags,
            "smoothing": self.smoothing,
            "limits": self.limits,
            "hold": self.hold,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "matrix": self.matrix.tolist(),
            "eigenvalues": self.eigenvalues.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultivariateModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a PlantGuard multivariate model (format {data.get('format')!r})")
        method = data.get("method")
        if method not in METHODS:
            raise ValueError(f"invalid model file: unknown method {method!r}")
        limits = data.get("limits")
        missing = [
            k for k, _ in STATISTICS[method] if not isinstance(limits, Mapping) or k not in limits
        ]
        if missing:
            raise ValueError(f"invalid model file: no limit for {', '.join(missing)}")
        try:
            return cls(
                method=data["method"],
                variables=list(data["variables"]),
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                lags=int(data["lags"]),
                smoothing=data["smoothing"],
                matrix=np.asarray(data["matrix"], dtype=np.float64),
                eigenvalues=np.asarray(data["eigenvalues"], dtype=np.float64),
                limits={str(k): float(v) for k, v in data["limits"].items()},
                trained_on=dict(data.get("trained_on", {})),
                options=dict(data.get("options", {})),
                hold=int(data.get("hold", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid model file: {exc}") from exc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)


@dataclass(frozen=True, slots=True)
class Score:
    """One row's verdict: normalised score (1.0 = limit), flag, and why."""

    score: float
    flag: bool
    reason: str


_NO_SCORE = Score(math.nan, False, "")


class Scorer:
    """Scores rows in order, keeping the lag window and EWMA state."""

    def __init__(self, model: MultivariateModel) -> None:
        self.model = model
        self._window: deque[FloatArray] = deque(maxlen=model.lags + 1)
        self._ewma: FloatArray | None = None
        self._names = model.variables
        self._since = -1  # rows since the last row above the limit (-1: none yet)
        self._held = ""
        stats = STATISTICS[model.method]
        self._labels = [label for _, label in stats]
        self._limits = np.array([model.limits.get(key, 1.0) for key, _ in stats])
        self._single_limit = float(self._limits[0])
        #: intermediates of the latest row, for :meth:`_contribution`
        self._last: tuple[FloatArray, ...] = ()

    def reset(self) -> None:
        self._window.clear()
        self._ewma = None
        self._since = -1
        self._held = ""

    def step(self, row: FloatArray) -> Score:
        """Score one row (values in the order of ``model.variables``); NaN rows are skipped.

        With ``model.hold`` the flag stays up for that many rows after the
        statistic falls back below the limit; the reason then says so.
        """
        return self.hold_score(self._step_raw(row), self.model.hold)

    def hold_score(self, raw: Score, hold: int) -> Score:
        """``raw`` with the off-delay of ``hold`` rows applied (state in the scorer)."""
        if hold <= 0 or math.isnan(raw.score):
            return raw
        if raw.flag:
            self._since, self._held = 0, raw.reason
            return raw
        if self._since < 0:
            return raw
        self._since += 1
        if self._since > hold:
            self._since = -1
            return raw
        return Score(raw.score, True, f"held {self._since}/{hold} rows; {self._held}")

    def step_raw(self, row: FloatArray) -> Score:
        """:meth:`step` without the hold: what an ensemble combines."""
        return self._step_raw(row)

    def _step_raw(self, row: FloatArray) -> Score:
        stats = self.statistics(row)
        if stats is None:
            return _NO_SCORE
        if stats.size == 1:  # mewma, residual: scalar work is several times cheaper
            which, score = 0, float(stats[0]) / self._single_limit
        else:
            ratios = stats / self._limits
            which = int(ratios.argmax())
            score = float(ratios[which])
        if score <= 1.0:
            return Score(score, False, "")
        label = self._labels[which]
        return Score(
            score, True, f"{label} {score:.2f}x limit; {self._top(self._contribution(which))}"
        )

    def _contribution(self, which: int) -> FloatArray:
        """Each (lagged) variable's part in statistic ``which`` of the latest row."""
        m = self.model
        if m.method == "mewma":
            s, weighted = self._last
            return np.abs(s * weighted)
        if m.method == "residual":
            (ratios,) = self._last
            return ratios * ratios
        z, t, resid = self._last
        if which == 1:
            return resid * resid
        return np.abs(z * (m.matrix @ (t / m.eigenvalues)))

    def statistics(self, row: FloatArray) -> FloatArray | None:
        """Advance with one row and return the method's statistics (see
        :data:`STATISTICS`), before limits; None for a row with missing values
        and while the lag window fills."""
        if not np.all(np.isfinite(row)):
            return None
        m = self.model
        if m.method == "mewma":
            return self._mewma((row - m.mean) / m.scale)
        if m.method == "residual":
            return self._residual((row - m.mean) / m.scale)
        return self._pca(row)

    def _smooth(self, value: FloatArray) -> FloatArray:
        lam = self.model.smoothing
        if not lam:
            return value
        self._ewma = lam * value if self._ewma is None else lam * value + (1 - lam) * self._ewma
        return self._ewma

    def _pca(self, row: FloatArray) -> FloatArray | None:
        m = self.model
        self._window.appendleft(row)
        if len(self._window) <= m.lags:
            return None
        z = (np.concatenate(self._window) - m.mean) / m.scale
        t = z @ m.matrix
        resid = z - m.matrix @ t
        self._last = (z, t, resid)
        stats = np.array([float(np.sum(t * t / m.eigenvalues)), float(resid @ resid)])
        if m.smoothing:
            # T² and Q themselves are smoothed (a slow fault accumulates evidence).
            # Unlike _smooth, the average starts at the first value, not at zero:
            # T² and Q are positive, and a start from zero would read low for ~2/λ rows.
            lam = m.smoothing
            self._ewma = stats if self._ewma is None else lam * stats + (1 - lam) * self._ewma
            stats = self._ewma
        return stats

    def _mewma(self, z: FloatArray) -> FloatArray:
        m = self.model
        s = self._smooth(z)
        weighted = m.matrix @ s
        self._last = (s, weighted)
        return np.array([float(s @ weighted)])

    def _residual(self, z: FloatArray) -> FloatArray:
        m = self.model
        ratios = np.abs(self._smooth(z @ m.matrix)) / m.eigenvalues
        self._last = (ratios,)
        return np.array([float(np.max(ratios))])

    def _top(self, contrib: FloatArray) -> str:
        """The variables that contribute most, summed over lags, as shares."""
        per_var = contrib.reshape(-1, len(self._names)).sum(axis=0)
        total = float(per_var.sum()) or 1.0
        order = np.argsort(per_var)[::-1][:2]
        return ", ".join(f"{self._names[i]} {100 * per_var[i] / total:.0f}%" for i in order)

    def score_rows(self, rows: FloatArray) -> list[Score]:
        return [self.step(r) for r in rows]

    def statistic_rows(self, rows: FloatArray) -> FloatArray:
        """:meth:`statistics` of each row, stacked (rows without statistics dropped)."""
        out = [s for r in rows if (s := self.statistics(r)) is not None]
        return np.vstack(out) if out else np.empty((0, len(self._labels)))


# --- fitting ----------------------------------------------------------------------


def _lagged(x: FloatArray, lags: int) -> FloatArray:
    """Rows ``[x_t, x_{t-1}, …, x_{t-lags}]`` (the scorer's window order)."""
    n = x.shape[0]
    return np.hstack([x[lags - i : n - i] for i in range(lags + 1)])


def _scale(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    floor = 1e-9 * (np.abs(mean) + 1.0)
    return mean, np.where(sd > floor, sd, floor)


def _pca(
    x: FloatArray, variance: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    mean, scale = _scale(x)
    z = (x - mean) / scale
    cov = np.cov(z, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 1e-12, None)
    eigvec = eigvec[:, order]
    frac = np.cumsum(eigval) / eigval.sum()
    k = int(min(np.searchsorted(frac, variance) + 1, eigval.size - 1))
    return mean, scale, eigvec[:, :k], eigval[:k], eigval[k:]


def _theory_limits(
    n: int, loads: FloatArray, resid_eig: FloatArray, alpha: float
) -> dict[str, float]:
    """T² from the F distribution, Q by Jackson–Mudholkar."""
    k = loads.shape[1]
    t2 = k * (n - 1) * (n + 1) / (n * (n - k)) * f_ppf(alpha, k, n - k)
    th1, th2, th3 = (float(np.sum(resid_eig**i)) for i in (1, 2, 3))
    h0 = 1 - 2 * th1 * th3 / (3 * th2 * th2)
    c = norm_ppf(alpha)
    q = th1 * (c * math.sqrt(2 * th2 * h0 * h0) / th1 + 1 + th2 * h0 * (h0 - 1) / (th1 * th1)) ** (
        1 / h0
    )
    return {"t2": float(t2), "q": float(q)}


def _pca_model(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> MultivariateModel:
    lagged = _lagged(x, opts.lags)
    mean, scale, loads, eig, resid_eig = _pca(lagged, opts.variance)
    return MultivariateModel(
        method=method,
        variables=list(names),
        mean=mean,
        scale=scale,
        lags=opts.lags,
        smoothing=opts.smoothing,
        matrix=loads,
        eigenvalues=eig,
        limits=_theory_limits(lagged.shape[0], loads, resid_eig, opts.alpha),
    )


def _detrended(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean, least-squares slope per row, the rows minus that line, and their
    standard deviation (floored): the training window's steady part, so that a
    creep during it is not taken for normal spread or for a relation."""
    n = x.shape[0]
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    mean = x.mean(axis=0)
    slope = (t @ (x - mean)) / (t @ t)
    detrended = x - mean - np.outer(t, slope)
    sd = detrended.std(axis=0, ddof=1)
    floor = 1e-12 * (np.abs(mean) + 1)
    return mean, slope, detrended, np.where(sd > floor, sd, floor)


def _mewma_model(x: FloatArray, names: Sequence[str], opts: ModelOptions) -> MultivariateModel:
    m = x.shape[1]
    mean, slope, resid, sd = _detrended(x)
    lam = opts.smoothing or 1.0
    var = lam / (2 - lam) + (slope * opts.horizon / sd) ** 2
    corr = np.asarray(np.corrcoef(resid, rowvar=False)) if m > 1 else np.ones((1, 1))
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    root = np.sqrt(var)
    cov = corr * np.outer(root, root) + 0.05 * np.diag(var)
    return MultivariateModel(
        method="mewma",
        variables=list(names),
        mean=mean,
        scale=sd,
        lags=0,
        smoothing=lam,
        matrix=np.linalg.inv(cov),
        eigenvalues=np.empty(0),
        limits={"d2": 1.0},
    )


def _residual_model(x: FloatArray, names: Sequence[str], opts: ModelOptions) -> MultivariateModel:
    """Regressions of each standardised variable on all the others, in one inverse.

    With ``P`` the inverse of the (ridge-regularised) covariance of the
    standardised, detrended training rows, the least-squares prediction of
    variable j from the others leaves the residual ``(z @ P)[j] / P[j, j]``
    (the partial-regression identity), so ``matrix = P / diag(P)`` gives all m
    residuals with one product per row.  The training trend is removed before
    the fit so that a creep during the training window does not masquerade as
    a relation between variables.
    """
    n, m = x.shape
    mean, _, detrended, sd = _detrended(x)
    z = detrended / sd
    cov = (z.T @ z) / n + opts.ridge * np.eye(m)
    precision = np.linalg.inv(cov)
    matrix = precision / np.diag(precision)
    lam = opts.smoothing or 1.0
    # Spread of the smoothed residuals over the training rows (after the EWMA
    # has filled): the serial correlation of real residuals makes it wider than
    # the white-noise λ/(2−λ) formula would say.
    resid = ((x - mean) / sd) @ matrix
    smoothed = np.empty_like(resid)
    state = np.zeros(m)
    for i, r in enumerate(resid):
        state = lam * r + (1 - lam) * state
        smoothed[i] = state
    spread = smoothed[_warm_up(n, lam) :].std(axis=0)
    return MultivariateModel(
        method="residual",
        variables=list(names),
        mean=mean,
        scale=sd,
        lags=0,
        smoothing=lam,
        matrix=matrix,
        eigenvalues=np.where(spread > 1e-12, spread, 1e-12),
        limits={"r": 1.0},
    )


def _warm_up(n: int, smoothing: float | None) -> int:
    """Rows an EWMA needs before its statistics are typical (about 2/λ)."""
    return min(n // 2, math.ceil(2 / smoothing)) if smoothing else 0


def fit_structure(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> MultivariateModel:
    """The fitted model before its limits are set (pca/dpca carry theory limits):
    what the automatic choice fits per fold, and then on all rows."""
    return _structure(x, names, method, opts)


def _structure(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> MultivariateModel:
    """The fitted model before its limits are calibrated (pca/dpca carry theory limits)."""
    if method == "mewma":
        return _mewma_model(x, names, opts)
    if method == "residual":
        return _residual_model(x, names, opts)
    return _pca_model(x, names, method, opts)


def held_out_statistics(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> list[FloatArray]:
    """Per contiguous fold of ``x``, the statistics of its rows under a model fitted
    on the other folds: statistics of normal data the model never saw."""
    n = x.shape[0]
    held: list[FloatArray] = []
    for f in range(opts.folds):
        a, b = f * n // opts.folds, (f + 1) * n // opts.folds
        model = _structure(np.vstack([x[:a], x[b:]]), names, method, opts)
        held.append(model.scorer().statistic_rows(x[a:b]))
    return held


def held_flags(flags: np.ndarray[Any, Any], hold: int) -> np.ndarray[Any, Any]:
    """``flags`` with each raised row extended by ``hold`` rows — what the scorer's
    hold shows, for a whole series at once."""
    if hold <= 0 or not flags.size:
        return flags
    idx = np.arange(flags.size)
    last = np.maximum.accumulate(np.where(flags, idx, -(hold + 1)))
    shown: np.ndarray[Any, Any] = idx - last <= hold
    return shown


def select_limit(
    held: Sequence[FloatArray],
    candidates: Sequence[tuple[float, float]],
    budget: float,
    hold: int = 0,
) -> tuple[tuple[float, float] | None, list[float]]:
    """The first of ``candidates`` — ``(quantile, margin)`` pairs, in order of rising
    limits — whose limits hold ``budget`` on unseen folds.

    For each fold, limits are ``margin`` × the quantile of the *other* folds'
    held-out statistics, and the fold's own held-out rows are checked against
    them (a row alarms when any statistic is above its limit, or within
    ``hold`` rows after one did: the flags as shown, not the bare exceedances —
    one exceedance with a 30-row hold is 31 rows of alarm).  A quantile of
    held-out statistics gives exactly 1 − q alarms on the rows it was computed
    from; on rows it was not computed from it gives more when normal operation
    wanders (the drift a plant also shows between training and use), and that
    is what this measures.  Returns the choice (None when no candidate is
    within budget: the setting cannot promise the rate) and the mean alarm rate
    of every candidate tried.
    """
    rates: list[float] = []
    for q, margin in candidates:
        per_fold = []
        for f, own in enumerate(held):
            others = np.vstack([h for g, h in enumerate(held) if g != f])
            limits = margin * np.quantile(others, q, axis=0)
            flags = held_flags(np.any(own > limits, axis=1), hold)
            per_fold.append(float(np.mean(flags)) if own.size else 0.0)
        rates.append(float(np.mean(per_fold)))
        if rates[-1] <= budget:
            return (q, margin), rates
    return None, rates


#: Candidate limits of :func:`fit_checked`, lowest first: ``(quantile of held-out
#: statistics, margin)``; quantile 1.0 is the largest held-out value.
CHECKED_LIMITS: tuple[tuple[float, float], ...] = (
    (0.99, 1.0),
    (0.995, 1.0),
    (0.999, 1.0),
    *((1.0, m) for m in (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)),
)


@dataclass(frozen=True, slots=True)
class CheckedFit:
    """A model whose limit was chosen by :func:`fit_checked`."""

    model: MultivariateModel
    #: the chosen ``(quantile, margin)``
    limit: tuple[float, float]
    #: whether that limit holds the budget (False: none did; the largest is used)
    holds: bool
    #: held-out alarm rate of each candidate tried, in order
    rates: list[float]


def fit_checked(
    x: FloatArray,
    names: Sequence[str],
    method: Method,
    options: ModelOptions,
    *,
    budget: float = 0.01,
    candidates: Sequence[tuple[float, float]] = CHECKED_LIMITS,
    trained_on: Mapping[str, Any] | None = None,
) -> CheckedFit:
    """Fit with the lowest limit that holds ``budget`` on data the model never saw.

    The limits are held-out limits (``options.folds`` contiguous folds; two halves
    ask the most: one half of a normal period must not alarm more than
    ``budget`` under limits set from the other).  Why: a quantile of training
    statistics promises its rate only on the rows it came from, and normal
    operation wanders between periods — a limit that holds from one half of
    the training period to the other is one that can be expected to hold
    from training to use.
    """
    opts = replace(options, calibration="held-out")
    held = held_out_statistics(_validated(x, names, method, opts), names, method, opts)
    limit, rates = select_limit(held, candidates, budget, opts.hold)
    chosen = limit or candidates[-1]
    model = fit_model(
        x, names, method, replace(opts, quantile=chosen[0], margin=chosen[1]), trained_on
    )
    return CheckedFit(model, chosen, limit is not None, rates)


LimitRule = Literal["checked", "method"]
LIMIT_RULES: tuple[LimitRule, ...] = ("checked", "method")


def fit_configured(
    x: FloatArray,
    names: Sequence[str],
    method: Method = RECOMMENDED,
    *,
    limits: LimitRule = "checked",
    smoothing: float | None = None,
    hold: int | None = None,
    trained_on: Mapping[str, Any] | None = None,
) -> MultivariateModel:
    """The fit ``plantguard detect fit`` and ``plantguard train`` make: the method's
    preset, with ``smoothing`` and ``hold`` when given, and limits by the rule of
    :func:`fit_checked` on two halves (``checked``, what the detection benchmark
    measures) or the method's own calibration (``method``)."""
    if method not in METHODS:
        raise FitError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    overrides: dict[str, Any] = {}
    if smoothing is not None:
        overrides["smoothing"] = smoothing
    if hold is not None:
        overrides["hold"] = hold
    opts = ModelOptions.for_method(method, **overrides)
    if limits == "method":
        return fit_model(x, names, method, opts, trained_on)
    opts = replace(opts, folds=2, margin=1.0)
    fit = fit_checked(x, names, method, opts, trained_on=trained_on)
    fit.model.options["checked"] = {
        "quantile": fit.limit[0],
        "margin": fit.limit[1],
        "holds": fit.holds,
        "held_out_alarm_rate": fit.rates[-1],
    }
    return fit.model


def _limits(
    model: MultivariateModel,
    x: FloatArray,
    names: Sequence[str],
    method: Method,
    opts: ModelOptions,
) -> dict[str, float]:
    """``margin`` × the calibrated limit of each of the method's statistics."""
    keys = [key for key, _ in STATISTICS[method]]
    if opts.calibration == "theory":
        if method not in ("pca", "dpca"):
            raise FitError(f"method {method} has no theoretical limits (calibration 'theory')")
        if opts.smoothing:
            raise FitError(
                "theoretical limits hold for unsmoothed T² and Q only: use held-out limits "
                f"with smoothing {opts.smoothing:g}"
            )
        base = np.array([model.limits[k] for k in keys])
    elif opts.calibration == "training":
        stats = model.scorer().statistic_rows(x)
        base = stats[_warm_up(stats.shape[0], model.smoothing) :].max(axis=0)
    else:
        base = np.quantile(
            np.vstack(held_out_statistics(x, names, method, opts)), opts.quantile, axis=0
        )
    return {k: float(v) for k, v in zip(keys, opts.margin * base, strict=True)}


def min_rows(method: Method, n_vars: int, opts: ModelOptions) -> int:
    """Rows a fit needs: enough for a covariance of the (lagged) variables — in
    each fold's training part when limits come from held-out folds."""
    if method in ("mewma", "residual"):
        need = max(30, 2 * n_vars)
    else:
        need = max(30, n_vars * (opts.lags + 1) + 10)
    if opts.calibration == "held-out":
        need = max(2 * need, math.ceil(need * opts.folds / (opts.folds - 1)))
    return need


def _validated(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> FloatArray:
    """``x`` as floats, or a :class:`FitError` that says what is wrong with it."""
    if method not in METHODS:
        raise FitError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if opts.calibration == "held-out" and opts.folds < 2:
        raise FitError(f"held-out limits need at least 2 folds (folds {opts.folds})")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise FitError(f"expected {len(names)} columns, got shape {x.shape}")
    if len(names) < 2:
        raise FitError("a multivariate model needs at least 2 variables")
    need = min_rows(method, len(names), opts)
    if x.shape[0] < need:
        raise FitError(
            f"too few rows to train: {x.shape[0]} (method {method} with "
            f"{len(names)} variables needs at least {need})"
        )
    if not np.all(np.isfinite(x)):
        raise FitError("training rows must not contain missing values")
    return x


def fit_model(
    x: FloatArray,
    names: Sequence[str],
    method: Method = RECOMMENDED,
    options: ModelOptions | None = None,
    trained_on: Mapping[str, Any] | None = None,
) -> MultivariateModel:
    """Fit ``method`` on normal-operation rows ``x`` (n × len(names), no NaN)."""
    opts = options or ModelOptions.for_method(method if method in METHODS else RECOMMENDED)
    x = _validated(x, names, method, opts)
    model = _structure(x, names, method, opts)
    model.limits = _limits(model, x, names, method, opts)
    model.options = {
        k: getattr(opts, k)
        for k in (
            "lags",
            "variance",
            "smoothing",
            "alpha",
            "quantile",
            "folds",
            "horizon",
            "calibration",
            "margin",
            "hold",
            "ridge",
        )
    }
    model.hold = int(opts.hold)
    model.trained_on = {"rows": int(x.shape[0]), **(trained_on or {})}
    return model
