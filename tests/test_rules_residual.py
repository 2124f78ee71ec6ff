"""The ``residual`` method, the scorer's hold, and the held-out limit-quantile rule."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from plantguard_rules.mvmodels import (
    FitError,
    Method,
    ModelOptions,
    MultivariateModel,
    fit_checked,
    fit_configured,
    fit_model,
    held_flags,
    held_out_statistics,
    select_limit,
)

Array = np.ndarray[Any, np.dtype[np.float64]]
NAMES = ["flow", "pressure", "current", "vibration"]


def _pump(n: int, seed: int, creep: float = 0.0) -> Array:
    """A pump loop: pressure and current follow flow; vibration is independent noise.
    ``creep`` adds the same slow warm-up to flow, pressure and current."""
    rng = np.random.default_rng(seed)
    flow = 30 + rng.normal(0, 1.0, n)
    trend = creep * np.arange(n)
    pressure = 0.05 * flow + rng.normal(0, 0.01, n)
    current = 0.04 * flow + rng.normal(0, 0.01, n)
    x = np.column_stack([flow, pressure, current, rng.normal(0, 1.0, n)])
    x[:, :3] += np.outer(trend, [1.0, 0.05, 0.04])
    return x


def test_residual_maps_each_variable_to_its_regression_residual() -> None:
    x = _pump(400, 0)
    model = fit_model(x, NAMES, "residual")
    # the diagonal is 1: each residual is the variable minus its prediction
    assert np.diag(model.matrix) == pytest.approx(np.ones(4))
    z = (x - model.mean) / model.scale
    resid = z @ model.matrix
    # vibration is unrelated to the others: its residual is (almost) all of it
    assert np.var(resid[:, 3]) / np.var(z[:, 3]) > 0.95
    # pressure follows flow: its residual is a small part of it
    assert np.var(resid[:, 1]) / np.var(z[:, 1]) < 0.2


def test_a_broken_relation_is_flagged_and_named_while_a_common_creep_is_not() -> None:
    opts = ModelOptions.for_method("residual", hold=0)
    model = fit_model(_pump(400, 1, creep=0.002), NAMES, "residual", opts)
    normal = _pump(800, 2, creep=0.002)
    flags = np.array([s.flag for s in model.scorer().score_rows(normal)])
    assert flags[50:].mean() < 0.05  # the creep keeps the relations: no alarms
    throttled = normal.copy()
    throttled[300:, 1] += 0.05  # pressure rises without flow: off the pump curve
    scores = model.scorer().score_rows(throttled)
    assert np.mean([s.flag for s in scores[340:]]) > 0.9
    first = next(s for s in scores[300:] if s.flag)
    assert first.reason.startswith("RESID")
    assert "pressure" in first.reason.split(";")[1]


def test_hold_keeps_the_flag_for_hold_rows_then_drops_it() -> None:
    base = fit_model(_pump(400, 3), NAMES, "residual", ModelOptions.for_method("residual", hold=0))
    held = fit_model(_pump(400, 3), NAMES, "residual", ModelOptions.for_method("residual", hold=25))
    assert held.hold == 25
    rows = _pump(400, 4)
    rows[100:160, 1] += 0.1
    raw = np.array([s.flag for s in base.scorer().score_rows(rows)])
    kept = held.scorer().score_rows(rows)
    flags = np.array([s.flag for s in kept])
    last = int(np.flatnonzero(raw)[-1])
    assert raw.any()
    assert not raw[last + 1 :].any()
    assert flags[raw].all()  # the hold never removes a flag
    assert flags[last + 1 : last + 26].all()
    assert not flags[last + 26 :].any()
    assert kept[last + 1].reason.startswith("held 1/25 rows; RESID")


def test_hold_survives_the_model_file_and_old_files_have_none() -> None:
    model = fit_model(_pump(300, 5), NAMES, "residual")
    data = json.loads(model.dumps())
    assert data["hold"] == 30
    assert data["method"] == "residual"
    assert MultivariateModel.from_json(data).hold == 30
    del data["hold"]
    assert MultivariateModel.from_json(data).hold == 0


def test_select_limit_takes_the_smallest_that_holds_the_budget_on_unseen_folds() -> None:
    rng = np.random.default_rng(6)
    # fold 4 is wider than the others: limits set from folds 0-3 flag much of it
    held = [rng.normal(0, 1.0, (200, 2)) for _ in range(4)] + [rng.normal(0, 1.6, (200, 2))]
    candidates = [(0.9, 1.0), (0.99, 1.0), (1.0, 1.0)]
    choice, rates = select_limit(held, candidates, 0.05)
    assert rates[0] > 0.05
    assert choice in candidates[1:]
    assert len(rates) == candidates.index(choice) + 1
    none, rates_none = select_limit(held, [(0.5, 1.0)], 0.01)
    assert none is None
    assert rates_none[0] > 0.4
    # a margin above the largest held-out value is what holds a much wider fold
    held[4] = rng.normal(0, 3.0, (200, 2))
    choice, _ = select_limit(held, [(1.0, 1.0), (1.0, 1.5), (1.0, 2.0), (1.0, 4.0)], 0.01)
    assert choice is not None
    assert choice[1] > 1.0


@pytest.mark.parametrize("method", ["pca", "dpca", "mewma", "residual"])
def test_every_method_takes_held_out_limits_with_a_margin(method: Method) -> None:
    """Limits are ``margin`` × the quantile of held-out statistics, for any method;
    on more normal rows of the same process they flag about 1 − quantile."""
    rng = np.random.default_rng(8)
    mix = rng.normal(0, 1, (4, 4))
    x = rng.normal(0, 1, (2400, 4)) @ mix
    opts = ModelOptions.for_method(
        method, calibration="held-out", folds=2, quantile=0.99, margin=1.0, hold=0
    )
    model = fit_model(x[:1200], NAMES, method, opts)
    held = np.vstack(held_out_statistics(x[:1200], NAMES, method, opts))
    keys = list(model.limits)
    assert [model.limits[k] for k in keys] == pytest.approx(list(np.quantile(held, 0.99, axis=0)))
    flags = np.array([s.flag for s in model.scorer().score_rows(x[1200:])])
    assert 0.0 < flags[50:].mean() < 0.08
    doubled = fit_model(x[:1200], NAMES, method, replace(opts, margin=2.0))
    assert doubled.limits == pytest.approx({k: 2 * v for k, v in model.limits.items()})
    assert doubled.options["calibration"] == "held-out"


def test_theory_limits_are_only_for_pca() -> None:
    x = np.random.default_rng(9).normal(0, 1, (200, 4))
    with pytest.raises(FitError, match="no theoretical limits"):
        fit_model(x, NAMES, "residual", ModelOptions.for_method("residual", calibration="theory"))
    with pytest.raises(FitError, match="unsmoothed T² and Q only"):
        fit_model(x, NAMES, "pca", ModelOptions.for_method("pca", smoothing=0.2))
    with pytest.raises(FitError, match="unknown method 'bogus'"):
        fit_configured(x, NAMES, "bogus")  # type: ignore[arg-type]
    with pytest.raises(FitError, match="at least 2 folds"):
        fit_model(x, NAMES, "dpca", ModelOptions.for_method("dpca", folds=1))


def test_held_out_statistics_are_per_fold_and_unseen() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (500, 4)) @ rng.normal(0, 1, (4, 4))
    opts = ModelOptions.for_method("dpca", lags=1)
    held = held_out_statistics(x, NAMES, "dpca", opts)
    assert len(held) == 5
    assert all(h.shape[1] == 2 for h in held)
    assert sum(h.shape[0] for h in held) == 500 - 5 * 1  # each fold's first row fills the lag


def test_fit_checked_raises_the_limit_until_one_half_holds_the_other() -> None:
    """Normal operation that wanders between periods: the second half of the
    training rows is noisier than the first.  The largest held-out statistic of
    one half does not hold the other, so the rule takes a margin above it — and
    the model then stays quiet on a later period as noisy as the worse half, while
    a shift of one variable off its relation to the others still shows."""
    rng = np.random.default_rng(10)
    mix = rng.normal(0, 1, (4, 4))
    calm = rng.normal(0, 1.0, (300, 4)) @ mix
    rough = rng.normal(0, 1.5, (300, 4)) @ mix
    opts = ModelOptions.for_method("residual", smoothing=0.5, hold=0, folds=2)
    fit = fit_checked(np.vstack([calm, rough]), NAMES, "residual", opts)
    assert fit.holds
    assert fit.limit[0] == 1.0
    assert fit.limit[1] > 1.0
    assert fit.rates[-1] <= 0.01 < fit.rates[0]
    assert fit.model.options["calibration"] == "held-out"
    later = rng.normal(0, 1.5, (600, 4)) @ mix
    flags = np.array([s.flag for s in fit.model.scorer().score_rows(later)])
    assert flags.mean() < 0.02
    later[300:, 1] += 3 * later[:, 1].std()
    shifted = np.array([s.flag for s in fit.model.scorer().score_rows(later)])
    assert shifted[310:].mean() > 0.5


def test_fit_checked_takes_the_largest_limit_when_none_holds() -> None:
    rng = np.random.default_rng(11)
    x = np.vstack([rng.normal(0, 1, (200, 4)), rng.normal(0, 50, (200, 4))])
    opts = ModelOptions.for_method("mewma", smoothing=0.2, folds=2)
    fit = fit_checked(x, NAMES, "mewma", opts, candidates=[(0.99, 1.0), (1.0, 1.0)])
    assert not fit.holds
    assert fit.limit == (1.0, 1.0)
    assert len(fit.rates) == 2


def test_the_limit_rule_counts_flags_as_the_hold_shows_them() -> None:
    """One exceedance with a 30-row hold is 31 rows of alarm; the rule's budget is
    on those, and ``held_flags`` extends a series exactly as the scorer's hold does."""
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, (600, 4)) @ rng.normal(0, 1, (4, 4))
    opts = ModelOptions.for_method("residual", smoothing=0.3, hold=30, folds=2, margin=1.0)
    fit = fit_checked(x, NAMES, "residual", opts)
    raw = [s.score > 1 for s in fit.model.scorer().score_rows(x)]
    shown = [s.flag for s in fit.model.scorer().score_rows(x)]
    assert list(held_flags(np.array(raw), 30)) == shown
    bare = fit_checked(x, NAMES, "residual", replace(opts, hold=0))
    assert fit.limit > bare.limit  # the same statistics, a higher limit once held


def test_a_model_file_without_the_limits_of_its_method_is_refused() -> None:
    model = fit_model(np.random.default_rng(13).normal(0, 1, (200, 4)), NAMES, "residual")
    data = json.loads(model.dumps())
    data["limits"] = {"t2": 1.0}
    with pytest.raises(ValueError, match="no limit for r"):
        MultivariateModel.from_json(data)
    data["method"] = "svm"
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        MultivariateModel.from_json(data)
