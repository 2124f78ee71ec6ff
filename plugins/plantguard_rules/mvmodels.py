"""Multivariate models of normal operation: fit from history, score one scan at a time.

A group of related points (a reactor's temperatures, pressures and flows) moves
together in normal operation; a fault breaks that pattern before any single
point crosses a limit.  Three methods, all fitted on normal data only:

``pca``
    Static PCA with Hotelling's T² (variation inside the normal pattern) and the
    squared prediction error SPE/Q (variation outside it).  Limits are derived
    statistically: T² from the F distribution, Q by Jackson and Mudholkar's
    normal approximation, at confidence ``alpha``.
``dpca`` (recommended)
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
``residual``
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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .base import FloatArray
from .stats import f_ppf, norm_ppf

__all__ = [
    "METHODS",
    "RECOMMENDED",
    "FitError",
    "ModelOptions",
    "MultivariateModel",
    "Score",
    "Scorer",
    "fit_model",
    "held_out_statistics",
    "select_quantile",
]

Method = Literal["pca", "dpca", "mewma", "residual"]
METHODS: tuple[Method, ...] = ("dpca", "pca", "mewma", "residual")
RECOMMENDED: Method = "dpca"
FORMAT = "plantguard-multivariate/1"


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
    margin: float = 4.0
    #: rows a flag is held after the statistic falls below the limit (0: none).
    hold: int = 0
    #: ridge added to the standardised covariance before the residual regressions.
    ridge: float = 0.0025

    @classmethod
    def for_method(cls, method: Method, **overrides: Any) -> ModelOptions:
        presets: dict[str, dict[str, Any]] = {
            "pca": {"lags": 0, "smoothing": None},
            "dpca": {},
            "mewma": {"lags": 0, "smoothing": 0.03},
            # hold ≈ 3/λ rows: about the smoothed residual's memory, so one
            # dip inside an episode does not end its alarm.
            "residual": {"lags": 0, "smoothing": 0.1, "hold": 30},
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
        raw = self._step_raw(row)
        if self.model.hold <= 0 or math.isnan(raw.score):
            return raw
        if raw.flag:
            self._since, self._held = 0, raw.reason
            return raw
        if self._since < 0:
            return raw
        self._since += 1
        if self._since > self.model.hold:
            self._since = -1
            return raw
        return Score(raw.score, True, f"held {self._since}/{self.model.hold} rows; {self._held}")

    def _step_raw(self, row: FloatArray) -> Score:
        m = self.model
        if not np.all(np.isfinite(row)):
            return _NO_SCORE
        if m.method == "mewma":
            return self._step_mewma((row - m.mean) / m.scale)
        if m.method == "residual":
            return self._step_residual((row - m.mean) / m.scale)
        advanced = self._advance(row)
        if advanced is None:
            return _NO_SCORE
        stats, z, t, resid = advanced
        ratios = stats / np.array([m.limits["t2"], m.limits["q"]])
        which = int(np.argmax(ratios))
        score = float(ratios[which])
        if score <= 1.0:
            return Score(score, False, "")
        if which == 1:
            contrib = resid * resid
            label = "SPE"
        else:
            contrib = np.abs(z * (m.matrix @ (t / m.eigenvalues)))
            label = "T2"
        return Score(score, True, f"{label} {score:.2f}x limit; {self._top(contrib)}")

    def statistics(self, row: FloatArray) -> FloatArray | None:
        """Advance with one row and return the (smoothed) ``[T², Q]``, before limits."""
        advanced = self._advance(row)
        return None if advanced is None else advanced[0]

    def _advance(
        self, row: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None:
        m = self.model
        self._window.appendleft(row)
        if len(self._window) <= m.lags:
            return None
        z = (np.concatenate(self._window) - m.mean) / m.scale
        t = z @ m.matrix
        resid = z - m.matrix @ t
        stats = np.array([float(np.sum(t * t / m.eigenvalues)), float(resid @ resid)])
        if m.smoothing:
            lam = m.smoothing
            self._ewma = stats if self._ewma is None else lam * stats + (1 - lam) * self._ewma
            stats = self._ewma
        return stats, z, t, resid

    def _step_mewma(self, z: FloatArray) -> Score:
        m = self.model
        lam = m.smoothing or 1.0
        self._ewma = lam * z if self._ewma is None else lam * z + (1 - lam) * self._ewma
        s = self._ewma
        d2 = float(s @ m.matrix @ s)
        score = d2 / m.limits["d2"]
        if score <= 1.0:
            return Score(score, False, "")
        contrib = np.abs(s * (m.matrix @ s))
        return Score(score, True, f"MEWMA {score:.2f}x limit; {self._top(contrib)}")

    def _step_residual(self, z: FloatArray) -> Score:
        m = self.model
        lam = m.smoothing or 1.0
        resid = z @ m.matrix
        self._ewma = lam * resid if self._ewma is None else lam * resid + (1 - lam) * self._ewma
        ratios = np.abs(self._ewma) / m.eigenvalues
        score = float(np.max(ratios)) / m.limits["r"]
        if score <= 1.0:
            return Score(score, False, "")
        return Score(score, True, f"RESID {score:.2f}x limit; {self._top(ratios * ratios)}")

    def _top(self, contrib: FloatArray) -> str:
        """The variables that contribute most, summed over lags, as shares."""
        per_var = contrib.reshape(-1, len(self._names)).sum(axis=0)
        total = float(per_var.sum()) or 1.0
        order = np.argsort(per_var)[::-1][:2]
        return ", ".join(f"{self._names[i]} {100 * per_var[i] / total:.0f}%" for i in order)

    def score_rows(self, rows: FloatArray) -> list[Score]:
        return [self.step(r) for r in rows]


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


def held_out_statistics(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> list[FloatArray]:
    """Per contiguous fold of ``x``, the (smoothed) ``[T², Q]`` of its rows under a
    model fitted on the other folds: statistics of normal data the model never saw."""
    n = x.shape[0]
    held: list[FloatArray] = []
    for f in range(opts.folds):
        a, b = f * n // opts.folds, (f + 1) * n // opts.folds
        model = _pca_model(np.vstack([x[:a], x[b:]]), names, method, opts)
        scorer = model.scorer()
        rows = [s for r in x[a:b] if (s := scorer.statistics(r)) is not None]
        held.append(np.vstack(rows) if rows else np.empty((0, 2)))
    return held


def select_quantile(
    held: Sequence[FloatArray], candidates: Sequence[float], budget: float
) -> tuple[float | None, list[float]]:
    """The smallest of ``candidates`` whose limits hold ``budget`` on unseen folds.

    For each fold, limits are the quantile of the *other* folds' held-out
    statistics and the fold's own held-out rows are checked against them (a
    row alarms when T² or Q is above its limit).  A quantile of held-out
    statistics gives exactly 1 − q alarms on the rows it was computed from; on
    rows it was not computed from it gives more when normal operation wanders
    (the fold-to-fold drift a plant also shows between training and use), and
    that is what this measures.  Returns the choice (None when no candidate is
    within budget: the setting cannot promise the rate) and the mean alarm rate
    of every candidate tried.
    """
    rates: list[float] = []
    for q in sorted(candidates):
        per_fold = []
        for f, own in enumerate(held):
            others = np.vstack([h for g, h in enumerate(held) if g != f])
            limits = np.quantile(others, q, axis=0)
            per_fold.append(float(np.mean(np.any(own > limits, axis=1))) if own.size else 0.0)
        rates.append(float(np.mean(per_fold)))
        if rates[-1] <= budget:
            return q, rates
    return None, rates


def _calibrated_limits(
    x: FloatArray, names: Sequence[str], method: Method, opts: ModelOptions
) -> dict[str, float]:
    """Limits at ``opts.quantile`` of out-of-fold statistics (contiguous folds)."""
    stats = np.vstack(held_out_statistics(x, names, method, opts))
    return {
        "t2": float(np.quantile(stats[:, 0], opts.quantile)),
        "q": float(np.quantile(stats[:, 1], opts.quantile)),
    }


def _mewma_model(x: FloatArray, names: Sequence[str], opts: ModelOptions) -> MultivariateModel:
    n, m = x.shape
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    mean = x.mean(axis=0)
    slope = (t @ (x - mean)) / (t @ t)
    resid = x - mean - np.outer(t, slope)
    sd = resid.std(axis=0, ddof=1)
    sd = np.where(sd > 1e-12 * (np.abs(mean) + 1), sd, 1e-12 * (np.abs(mean) + 1))
    lam = opts.smoothing or 1.0
    var = lam / (2 - lam) + (slope * opts.horizon / sd) ** 2
    corr = np.corrcoef(resid, rowvar=False) if m > 1 else np.ones((1, 1))
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    root = np.sqrt(var)
    cov = corr * np.outer(root, root) + 0.05 * np.diag(var)
    model = MultivariateModel(
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
    raw = model.scorer()
    warm = min(n // 2, math.ceil(2 / lam))
    d2 = np.array([raw.step(r).score for r in x])[warm:]
    model.limits = {"d2": float(opts.margin * np.max(d2))}
    return model


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
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    mean = x.mean(axis=0)
    slope = (t @ (x - mean)) / (t @ t)
    detrended = x - mean - np.outer(t, slope)
    sd = detrended.std(axis=0, ddof=1)
    floor = 1e-12 * (np.abs(mean) + 1)
    sd = np.where(sd > floor, sd, floor)
    z = detrended / sd
    cov = (z.T @ z) / n + opts.ridge * np.eye(m)
    precision = np.linalg.inv(cov)
    matrix = precision / np.diag(precision)
    lam = opts.smoothing or 1.0
    warm = min(n // 2, math.ceil(2 / lam))
    # Spread of the smoothed residuals over the training rows (after the EWMA
    # has filled): the serial correlation of real residuals makes it wider than
    # the white-noise λ/(2−λ) formula would say.
    resid = ((x - mean) / sd) @ matrix
    smoothed = np.empty_like(resid)
    state = np.zeros(m)
    for i, r in enumerate(resid):
        state = lam * r + (1 - lam) * state
        smoothed[i] = state
    spread = smoothed[warm:].std(axis=0)
    spread = np.where(spread > 1e-12, spread, 1e-12)
    model = MultivariateModel(
        method="residual",
        variables=list(names),
        mean=mean,
        scale=sd,
        lags=0,
        smoothing=lam,
        matrix=matrix,
        eigenvalues=spread,
        limits={"r": 1.0},
    )
    raw = model.scorer()
    stat = np.array([raw.step(r).score for r in x])[warm:]
    model.limits = {"r": float(opts.margin * np.max(stat))}
    model.hold = int(opts.hold)
    return model


def min_rows(method: Method, n_vars: int, opts: ModelOptions) -> int:
    """Rows a fit needs: enough for a covariance of the (lagged) variables."""
    if method in ("mewma", "residual"):
        return max(30, 2 * n_vars)
    dims = n_vars * (opts.lags + 1)
    per_fold = 1 if method == "pca" else opts.folds
    return max(30, dims + 10) * (1 if per_fold == 1 else 2)


def fit_model(
    x: FloatArray,
    names: Sequence[str],
    method: Method = RECOMMENDED,
    options: ModelOptions | None = None,
    trained_on: Mapping[str, Any] | None = None,
) -> MultivariateModel:
    """Fit ``method`` on normal-operation rows ``x`` (n × len(names), no NaN)."""
    if method not in METHODS:
        raise FitError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    opts = options or ModelOptions.for_method(method)
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
    if method == "mewma":
        model = _mewma_model(x, names, opts)
    elif method == "residual":
        model = _residual_model(x, names, opts)
    else:
        model = _pca_model(x, names, method, opts)
        if method == "dpca":
            model.limits = _calibrated_limits(x, names, method, opts)
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
            "margin",
            "hold",
            "ridge",
        )
    }
    model.hold = int(opts.hold)
    model.trained_on = {"rows": int(x.shape[0]), **(trained_on or {})}
    return model
