"""Point rules on constructed signals: rate of change, stuck, stale, sensor range, EWMA, CUSUM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from plantguard.model import Finding, Point, Quality
from plantguard.rules import Rule
from plantguard.table import ValueTable
from plantguard_rules.drift import CusumConfig, CusumRule, EwmaConfig, EwmaRule
from plantguard_rules.rate import RateConfig, RateRule
from plantguard_rules.sensor_range import RangeConfig, RangeRule
from plantguard_rules.stale import StaleConfig, StaleRule
from plantguard_rules.stuck import StuckConfig, StuckRule

POINT = Point(id="d.x", name="X", unit="bar", device_id="d", range=(0.0, 10.0))
GOOD = np.array([Quality.GOOD], dtype=np.uint8)


def _make(
    factory: Callable[[ValueTable, Any], Rule], cfg: BaseModel, point: Point = POINT
) -> tuple[Rule, ValueTable]:
    table = ValueTable([point])
    return factory(table, [(point, cfg)]), table


def _run(
    rule: Rule, table: ValueTable, samples: Sequence[tuple[float, float]]
) -> list[list[Finding]]:
    out = []
    for t, v in samples:
        table.update(np.array([0]), np.array([v]), GOOD, t)
        out.append(list(rule.evaluate(table, t)))
    return out


def _active(findings: list[list[Finding]]) -> list[str]:
    """Condition after each step ('' normal), tracking the findings."""
    state, out = "", []
    for fs in findings:
        for f in fs:
            state = f.condition if f.active else ""
        out.append(state)
    return out


def test_rate_of_change_over_a_window() -> None:
    rule, table = _make(RateRule, RateConfig(rise=6, fall=12, per=60, window=10))
    # 0.05/s = 3/min ok; then 0.2/s = 12/min > 6 rise; then back to flat; then a fall 0.5/s.
    t = np.arange(0, 121, 5.0)
    v = np.concatenate(
        [np.arange(0, 41, 5) * 0.05, 2 + np.arange(5, 41, 5) * 0.2, np.full(8, 10.0)]
    )
    v = v[: t.size]
    states = _active(_run(rule, table, list(zip(t, v, strict=True))))
    assert states[:3] == ["", "", ""]
    assert "RISE" in states[9:14]
    assert states[-1] == ""
    rule2, table2 = _make(RateRule, RateConfig(fall=12, window=10))
    states2 = _active(_run(rule2, table2, [(0, 10), (10, 10), (20, 5), (30, 5), (40, 5)]))
    assert states2 == ["", "", "FALL", "", ""]


def test_rate_message_names_direction_and_limit() -> None:
    rule, table = _make(RateRule, RateConfig(rise=1, window=1))
    findings = _run(rule, table, [(0, 0), (1, 1)])
    [f] = findings[1]
    assert f.message == "X rising at 60 bar per 60 s (limit 1)"


def test_stuck_flat_line_within_tolerance() -> None:
    rule, table = _make(StuckRule, StuckConfig(duration=30, tolerance=0.01))
    samples = [(float(t), 5.0 + 0.004 * (t % 2)) for t in range(0, 40, 5)]
    states = _active(_run(rule, table, samples))
    assert states[:6] == [""] * 6  # 0..25 s
    assert states[6:] == ["STUCK", "STUCK"]  # 30 s flat
    assert _active(_run(rule, table, [(40.0, 5.5)])) == [""]


def test_stale_when_source_time_stops() -> None:
    rule, table = _make(StaleRule, StaleConfig(max_age=10))
    # The first scan reports normal: a point that never delivered gets max_age of grace.
    assert [f.active for f in rule.evaluate(table, 100.0)] == [False]
    table.update(np.array([0]), np.array([1.0]), GOOD, 101.0)
    assert rule.evaluate(table, 105.0) == []
    [f] = rule.evaluate(table, 112.0)  # 11 s since the last sample
    assert (f.active, f.condition) == (True, "STALE")
    table.update(np.array([0]), np.array([1.0]), GOOD, 113.0)
    assert [f.active for f in rule.evaluate(table, 113.5)] == [False]


def test_stale_flags_a_point_that_never_delivered() -> None:
    rule, _table = _make(StaleRule, StaleConfig(max_age=5))
    table = _table
    assert [f.active for f in rule.evaluate(table, 0.0)] == [False]
    [f] = rule.evaluate(table, 6.0)
    assert f.active


def test_range_uses_point_range_with_margin() -> None:
    rule, table = _make(RangeRule, RangeConfig(margin=0.05))
    states = _active(_run(rule, table, [(0, 5), (1, 10.4), (2, 10.6), (3, -0.6), (4, 3)]))
    assert states == ["", "", "OVER_RANGE", "UNDER_RANGE", ""]


def test_range_without_any_range_is_an_error_naming_the_point() -> None:
    point = Point(id="d.y", device_id="d")
    with pytest.raises(ValueError, match=r"point d\.y: rule 'range' needs"):
        _make(RangeRule, RangeConfig(), point)


def test_bad_quality_is_not_judged_by_process_rules() -> None:
    rule, table = _make(RangeRule, RangeConfig())
    table.update(np.array([0]), np.array([50.0]), np.array([Quality.BAD], dtype=np.uint8), 1.0)
    assert rule.evaluate(table, 1.0) == []


def _noise(n: int, seed: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng(seed).normal(0, 1, n)


def test_ewma_learns_baseline_then_detects_slow_drift() -> None:
    rule, table = _make(EwmaRule, EwmaConfig.model_validate({"lambda": 0.1, "L": 3, "warmup": 200}))
    x = 50 + _noise(800)
    x[400:] += np.linspace(0, 3, 400)  # 0 → 3 σ drift
    findings = _run(rule, table, list(enumerate(x.tolist())))
    first = next(i for i, fs in enumerate(findings) if any(f.active for f in fs))
    assert 400 < first < 700
    assert isinstance(rule, EwmaRule)
    assert rule.baseline.mean[0] == pytest.approx(50, abs=0.2)


def test_ewma_in_control_rarely_alarms() -> None:
    rule, table = _make(EwmaRule, EwmaConfig(target=0, sigma=1))
    findings = _run(rule, table, list(enumerate(_noise(2000, seed=3).tolist())))
    raised = sum(1 for fs in findings for f in fs if f.active)
    assert raised <= 8  # in-control average run length ≈ 465 samples for λ 0.2, L 3


def test_cusum_detects_a_one_sigma_step_quickly() -> None:
    rule, table = _make(CusumRule, CusumConfig(target=0, sigma=1, k=0.5, h=5))
    x = _noise(300, seed=5)
    x[200:] += 1.0
    findings = _run(rule, table, list(enumerate(x.tolist())))
    first = next(i for i, fs in enumerate(findings) if any(f.active for f in fs))
    assert 200 <= first < 240
    assert [f.condition for f in findings[first]] == ["DRIFT_HIGH"]


def test_drift_uses_trained_model_file(tmp_path: Any) -> None:
    from plantguard.model import Site
    from plantguard.rules import RuleContext
    from plantguard_rules.drift import DRIFT_FORMAT, CusumRuleType

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "drift.json").write_text(
        f'{{"format": "{DRIFT_FORMAT}", "points": {{"d.x": {{"mean": 7, "sigma": 2}}}}}}'
    )
    table = ValueTable([POINT])
    rule = CusumRuleType().create(
        Site(id="s"), table, [(POINT, CusumConfig())], RuleContext(base_dir=tmp_path)
    )
    assert isinstance(rule, CusumRule)
    assert (rule.baseline.mean[0], rule.baseline.sigma[0]) == (7, 2)
    assert rule.baseline.ready.all()


def test_drift_each_sample_counted_once_when_scans_are_faster() -> None:
    rule, table = _make(CusumRule, CusumConfig(target=0, sigma=1, k=0, h=100))
    table.update(np.array([0]), np.array([2.0]), GOOD, 1.0)
    for now in (1.0, 1.5, 2.0):
        rule.evaluate(table, now)
    assert isinstance(rule, CusumRule)
    assert rule.upper[0] == 2.0


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (RateConfig, {}, "set rise, fall or both"),
        (StuckConfig, {}, "Field required"),
        (StaleConfig, {"max_age": 0}, "greater than 0"),
        (RangeConfig, {"low": 5, "high": 1}, "low 5.0 must be below high 1.0"),
        (EwmaConfig, {"lambda": 1.5}, "less than or equal to 1"),
        (CusumConfig, {"sigma": -1}, "greater than 0"),
    ],
)
def test_config_errors(model: type[BaseModel], data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)
