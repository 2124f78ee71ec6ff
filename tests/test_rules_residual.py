"""The ``residual`` method, the scorer's hold, and the held-out limit-quantile rule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from plantguard_rules.mvmodels import (
    ModelOptions,
    MultivariateModel,
    fit_model,
    held_out_statistics,
    select_quantile,
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


def test_select_quantile_takes_the_smallest_that_holds_the_budget_on_unseen_folds() -> None:
    rng = np.random.default_rng(6)
    # fold 4 is wider than the others: limits set from folds 0-3 flag much of it
    held = [rng.normal(0, 1.0, (200, 2)) for _ in range(4)] + [rng.normal(0, 1.6, (200, 2))]
    q, rates = select_quantile(held, (0.9, 0.99, 1.0), 0.05)
    assert rates[0] > 0.05
    assert q in (0.99, 1.0)
    assert len(rates) == [0.9, 0.99, 1.0].index(q) + 1
    q_none, rates_none = select_quantile(held, (0.5,), 0.01)
    assert q_none is None
    assert rates_none[0] > 0.4


def test_held_out_statistics_are_per_fold_and_unseen() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (500, 4)) @ rng.normal(0, 1, (4, 4))
    opts = ModelOptions.for_method("dpca", lags=1)
    held = held_out_statistics(x, NAMES, "dpca", opts)
    assert len(held) == 5
    assert all(h.shape[1] == 2 for h in held)
    assert sum(h.shape[0] for h in held) == 500 - 5 * 1  # each fold's first row fills the lag
