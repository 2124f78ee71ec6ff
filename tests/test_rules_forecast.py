"""Forecast of time to limit: robust trend, prediction-interval coverage, the warning."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from plantguard.model import Point, Quality
from plantguard.table import ValueTable
from plantguard_rules.forecast import ForecastConfig, ForecastRule, fit_trend


def test_fit_recovers_a_known_trend_despite_spikes() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(60.0)
    y = 10 + 0.5 * t + rng.normal(0, 0.2, t.size)
    y[[5, 20, 40]] += 30  # spikes
    fit = fit_trend(t, y)
    assert fit.slope[0] == pytest.approx(0.5, abs=0.02)
    assert fit.level[0] == pytest.approx(10 + 0.5 * 59, abs=0.3)


def test_prediction_interval_covers_the_future_value_at_its_confidence() -> None:
    """Many noisy series with a known trend: the 90 % interval 30 steps ahead
    must contain the true future observation about 90 % of the time."""
    rng = np.random.default_rng(42)
    n_series, n, ahead = 2000, 30, 30
    t = np.tile(np.arange(n, dtype=np.float64), (n_series, 1))
    slope = rng.uniform(-1, 1, (n_series, 1))
    y = 5 + slope * t + rng.normal(0, 1, t.shape)
    future = 5 + slope[:, 0] * (n - 1 + ahead) + rng.normal(0, 1, n_series)
    fit = fit_trend(t, y)
    low, _, high = fit.predict(np.array([float(ahead)]), 0.9)
    covered = np.mean((future >= low[:, 0]) & (future <= high[:, 0]))
    assert 0.86 <= covered <= 0.94


def test_crossing_time_interval_covers_the_true_crossing() -> None:
    rng = np.random.default_rng(7)
    n_series, n = 1000, 30
    t = np.tile(np.arange(n, dtype=np.float64), (n_series, 1))
    y = 50 + 0.5 * t + rng.normal(0, 1, t.shape)
    fit = fit_trend(t, y)
    limit = np.full(n_series, 80.0)
    eta, early, late = fit.crossing(limit, np.ones(n_series, bool), 0.9, np.full(n_series, 200.0))
    true_eta = (80 - (50 + 0.5 * 29)) / 0.5  # 31 s after the newest sample
    assert np.median(eta) == pytest.approx(true_eta, rel=0.05)
    assert np.mean((early <= true_eta) & (true_eta <= late)) >= 0.9


def _rule(**cfg: object) -> tuple[ForecastRule, ValueTable]:
    point = Point(
        id="tank.level",
        name="Tank level",
        unit="%",
        device_id="tank",
        rules={"limit": {"hh": 90.0, "h": 80.0}},
    )
    table = ValueTable([point])
    return ForecastRule(table, [(point, ForecastConfig.model_validate(cfg))]), table


def test_warns_before_the_limit_with_a_readable_message() -> None:
    rule, table = _rule(limit="hh", horizon=900, window=300, samples=30)
    rng = np.random.default_rng(1)
    messages, first = [], None
    for t in range(0, 1800, 5):
        level = 50 + 0.02 * t + rng.normal(0, 0.3)  # reaches 90 % at t = 2000 s
        table.update(np.array([0]), np.array([level]), np.array([Quality.GOOD], np.uint8), t)
        for f in rule.evaluate(table, float(t)):
            if f.active and first is None:
                first = t
                messages.append(f.message)
    assert first is not None
    assert 2000 - first == pytest.approx(900, abs=200)  # warned about horizon ahead
    assert messages[0].startswith("Tank level will reach HH (90 %) in about ")
    assert "min" in messages[0]


def test_no_warning_for_a_flat_noisy_signal() -> None:
    rule, table = _rule(limit="h", horizon=600)
    rng = np.random.default_rng(2)
    active = 0
    for t in range(0, 7200, 5):
        table.update(
            np.array([0]), np.array([60 + rng.normal(0, 2)]), np.array([0], np.uint8), float(t)
        )
        active += sum(f.active for f in rule.evaluate(table, float(t)))
    assert active <= 2


def test_named_limit_must_exist() -> None:
    point = Point(id="a.b", device_id="a")
    with pytest.raises(ValueError, match="names limit 'hh'"):
        ForecastRule(ValueTable([point]), [(point, ForecastConfig(limit="hh"))])


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="confidence"):
        ForecastConfig.model_validate({"limit": 5, "confidence": 1.2})
