"""Multivariate models and the multivariate rule: limits, fitting, scoring, the model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plantguard.model import Finding, Point, Quality, Site
from plantguard.rules import RuleContext
from plantguard.table import ValueTable
from plantguard_rules.multivariate import (
    GroupConfig,
    MultivariateConfig,
    MultivariateRule,
    MultivariateRuleType,
    MultivariateSiteConfig,
)
from plantguard_rules.mvmodels import FitError, MultivariateModel, fit_model
from plantguard_rules.stats import chi2_ppf, f_ppf, norm_ppf

Array = np.ndarray[Any, np.dtype[np.float64]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (norm_ppf(0.99), 2.326348),
        (norm_ppf(0.5), 0.0),
        (chi2_ppf(0.99, 5), 15.08627),
        (chi2_ppf(0.95, 1), 3.841459),
        (f_ppf(0.99, 3, 100), 3.983695),
        (f_ppf(0.95, 10, 20), 2.347878),
    ],
)
def test_distribution_quantiles_match_tables(value: float, expected: float) -> None:
    assert value == pytest.approx(expected, abs=1e-5)


def _correlated(n: int, seed: int = 0) -> Array:
    """Four variables driven by two latent factors, like related process signals."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, (n, 2))
    mix = np.array([[1.0, 0.5, 0.0, 0.8], [0.0, 0.7, 1.0, -0.4]])
    out: Array = f @ mix + rng.normal(0, 0.1, (n, 4)) + np.array([10.0, 20.0, 30.0, 40.0])
    return out


NAMES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("method", ["pca", "dpca", "mewma", "residual"])
def test_in_control_false_alarms_are_low_and_a_broken_correlation_is_flagged(method: str) -> None:
    model = fit_model(_correlated(600), NAMES, method)  # type: ignore[arg-type]
    normal = _correlated(600, seed=1)
    flags = [s.flag for s in model.scorer().score_rows(normal)]
    assert np.mean(flags) < 0.05
    broken = _correlated(200, seed=2)
    broken[:, 2] += 1.0  # c moves without its partners: outside the pattern
    scores = model.scorer().score_rows(np.vstack([normal[:100], broken]))
    assert np.mean([s.flag for s in scores[150:]]) > 0.8
    flagged = next(s for s in scores[150:] if s.flag)
    assert " c " in f" {flagged.reason.split(';')[1]}"


def test_pca_limits_are_statistical() -> None:
    model = fit_model(_correlated(500), NAMES, "pca")
    k = model.matrix.shape[1]
    n = 500
    expected = k * (n - 1) * (n + 1) / (n * (n - k)) * f_ppf(0.99, k, n - k)
    assert model.limits["t2"] == pytest.approx(expected)
    assert model.limits["q"] > 0


def test_model_file_round_trip_says_what_it_was_trained_on() -> None:
    model = fit_model(_correlated(300), NAMES, "dpca", trained_on={"file": "x.csv"})
    data = json.loads(model.dumps())
    assert data["trained_on"] == {"rows": 300, "file": "x.csv"}
    again = MultivariateModel.from_json(data)
    row = _correlated(5, seed=9)
    assert [s.score for s in again.scorer().score_rows(row)] == pytest.approx(
        [s.score for s in model.scorer().score_rows(row)], nan_ok=True
    )


def test_too_few_rows_is_a_clear_error() -> None:
    with pytest.raises(FitError, match="too few rows to train: 20"):
        fit_model(_correlated(20), NAMES, "dpca")


def _site_rule(
    tmp_path: Path, model: MultivariateModel | None
) -> tuple[MultivariateRule, ValueTable]:
    points = [Point(id=f"r.{n}", device_id="r") for n in NAMES]
    if model is not None:
        model.variables = [p.id for p in points]
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / "multivariate-reactor.json").write_text(model.dumps())
    table = ValueTable(points)
    rule = MultivariateRuleType().create(
        Site(id="s"),
        table,
        [(p, MultivariateConfig(group="reactor")) for p in points],
        RuleContext(
            site_config=MultivariateSiteConfig(groups={"reactor": GroupConfig(priority="high")}),
            base_dir=tmp_path,
        ),
    )
    assert isinstance(rule, MultivariateRule)
    return rule, table


def test_rule_raises_and_clears_the_group_alarm(tmp_path: Path) -> None:
    rule, table = _site_rule(tmp_path, fit_model(_correlated(600), NAMES, "pca"))
    [definition] = rule.alarms()
    assert (definition.id, definition.device_id, definition.kind) == (
        "multivariate.reactor",
        "r",
        "deviation",
    )
    idx = np.arange(4)
    good = np.zeros(4, dtype=np.uint8)
    findings: list[Finding] = []
    shifted = _correlated(20, 4) + np.array([0.0, 0.0, 2.0, 0.0])
    rows = np.vstack([_correlated(20, 3), shifted, _correlated(20, 5)])
    for t, row in enumerate(rows):
        table.update(idx, row, good, float(t))
        findings += rule.evaluate(table, float(t))
    states = [(f.active, f.condition) for f in findings]
    assert (True, "ABNORMAL") in states
    assert states[-1] == (False, "")
    raised = next(f for f in findings if f.active)
    assert raised.message.startswith("reactor: abnormal pattern (")


def test_rule_skips_scans_with_bad_quality(tmp_path: Path) -> None:
    rule, table = _site_rule(tmp_path, fit_model(_correlated(600), NAMES, "pca"))
    bad = np.full(4, Quality.BAD_COMMUNICATION_ERROR, dtype=np.uint8)
    table.update(np.arange(4), np.full(4, 1e6), bad, 1.0)
    assert rule.evaluate(table, 1.0) == []


def test_missing_model_means_no_alarm_and_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rule, table = _site_rule(tmp_path, None)
    table.update(np.arange(4), np.full(4, 1e6), np.zeros(4, np.uint8), 1.0)
    assert rule.evaluate(table, 1.0) == []
    assert "run plantguard train" in caplog.text
