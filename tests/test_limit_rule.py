"""The limit rule: levels, deadband hysteresis, bad quality, priorities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from plantguard.model import Point, Priority, Quality
from plantguard.table import ValueTable
from plantguard_rules.limits import LimitConfig, LimitRule


def _rule(**cfg: float | str) -> tuple[LimitRule, ValueTable]:
    point = Point(id="t.level", name="Level", unit="%", device_id="t")
    table = ValueTable([point])
    return LimitRule(table, [(point, LimitConfig.model_validate(cfg))]), table


def _feed(rule: LimitRule, table: ValueTable, values: list[float]) -> list[str]:
    """Condition after each value ("" = normal)."""
    out = []
    idx = np.array([0])
    names = {2: "HH", 1: "H", 0: "", -1: "L", -2: "LL"}
    for t, v in enumerate(values):
        table.update(idx, np.array([v]), np.array([Quality.GOOD], dtype=np.uint8), float(t))
        rule.evaluate(table, float(t))
        out.append(names[int(rule.level[0])])
    return out


def test_deadband_holds_alarm_until_value_clears_limit_minus_deadband() -> None:
    rule, table = _rule(hh=90, h=80, l=20, ll=10, deadband=2)
    seq = [50, 80, 79, 78.5, 77.9, 90, 88.5, 87.9, 79, 77, 20, 21.9, 22.1, 10, 11.9, 12.1, 0]
    assert _feed(rule, table, seq) == [
        "",
        "H",
        "H",
        "H",
        "",
        "HH",
        "HH",
        "H",
        "H",
        "",
        "L",
        "L",
        "",
        "LL",
        "LL",
        "L",
        "LL",
    ]


def test_without_deadband_the_alarm_clears_at_the_limit() -> None:
    rule, table = _rule(h=80)
    assert _feed(rule, table, [79.9, 80, 79.99, 80]) == ["", "H", "", "H"]


def test_jump_across_sides_goes_straight_to_the_other_extreme() -> None:
    rule, table = _rule(hh=90, ll=10, deadband=5)
    assert _feed(rule, table, [95, 5, 95]) == ["HH", "LL", "HH"]


def test_findings_only_on_change_with_message_and_severity() -> None:
    rule, table = _rule(hh=90, h=80, deadband=1, priority="medium")
    idx = np.array([0])
    good = np.array([Quality.GOOD], dtype=np.uint8)
    table.update(idx, np.array([85.0]), good, 1.0)
    [finding] = rule.evaluate(table, 1.0)
    assert (finding.alarm_id, finding.active, finding.condition) == ("t.level.limit", True, "H")
    assert finding.severity == Priority.MEDIUM
    assert finding.message == "Level H: 85 % (limit 80)"
    assert rule.evaluate(table, 2.0) == []
    table.update(idx, np.array([95.0]), good, 3.0)
    [finding] = rule.evaluate(table, 3.0)
    assert (finding.condition, finding.severity) == ("HH", Priority.HIGH)
    table.update(idx, np.array([10.0]), good, 4.0)
    [finding] = rule.evaluate(table, 4.0)
    assert (finding.active, finding.condition) == (False, "")


def test_bad_quality_neither_raises_nor_clears() -> None:
    rule, table = _rule(h=80)
    idx = np.array([0])
    table.update(idx, np.array([90.0]), np.array([Quality.GOOD], dtype=np.uint8), 1.0)
    assert len(rule.evaluate(table, 1.0)) == 1
    table.update(
        idx, np.array([10.0]), np.array([Quality.BAD_COMMUNICATION_ERROR], dtype=np.uint8), 2.0
    )
    assert rule.evaluate(table, 2.0) == []
    assert rule.level[0] == 1


def test_first_usable_value_reports_normal_so_restored_alarms_can_clear() -> None:
    rule, table = _rule(h=80)
    table.update(np.array([0]), np.array([10.0]), np.array([Quality.GOOD], dtype=np.uint8), 1.0)
    [finding] = rule.evaluate(table, 1.0)
    assert finding.active is False
    assert rule.evaluate(table, 2.0) == []


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({}, "set at least one"),
        ({"hh": 80, "h": 90}, "limit h=90.0 must be below hh=80.0"),
        ({"h": 80, "deadband": -1}, "greater than or equal to 0"),
        ({"h": 80, "priority": "critical"}, "Input should be 'low', 'medium', 'high' or 'urgent'"),
    ],
)
def test_config_errors(cfg: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LimitConfig.model_validate(cfg)


def test_vectorised_over_many_points() -> None:
    points = [Point(id=f"d.p{i}", device_id="d") for i in range(1000)]
    table = ValueTable(points)
    rule = LimitRule(table, [(p, LimitConfig(h=50.0, deadband=1.0)) for p in points])
    values = np.linspace(0, 100, 1000)
    table.update(np.arange(1000), values, np.zeros(1000, dtype=np.uint8), 1.0)
    findings = rule.evaluate(table, 1.0)
    active = {f.alarm_id for f in findings if f.active}
    assert active == {f"d.p{i}.limit" for i in range(1000) if values[i] >= 50}


def _feed_timed(
    rule: LimitRule, table: ValueTable, samples: Sequence[tuple[float, float]]
) -> list[str]:
    names = {2: "HH", 1: "H", 0: "", -1: "L", -2: "LL"}
    out = []
    for t, v in samples:
        table.update(np.array([0]), np.array([v]), np.array([Quality.GOOD], dtype=np.uint8), t)
        rule.evaluate(table, t)
        out.append(names[int(rule.level[0])])
    return out


def test_on_delay_ignores_short_excursions_and_raises_after_the_delay() -> None:
    rule, table = _rule(h=80, on_delay=5)
    seq = [(0, 85), (2, 85), (4, 70), (6, 85), (10, 85), (11, 85), (12, 70)]
    assert _feed_timed(rule, table, seq) == ["", "", "", "", "", "H", ""]


def test_off_delay_holds_the_alarm_until_the_return_lasted() -> None:
    rule, table = _rule(h=80, off_delay=5)
    seq = [(0, 85), (1, 70), (3, 85), (4, 70), (8, 70), (9, 70)]
    assert _feed_timed(rule, table, seq) == ["H", "H", "H", "H", "H", ""]


def test_delays_combine_with_deadband() -> None:
    rule, table = _rule(hh=90, h=80, deadband=2, on_delay=2, off_delay=2)
    seq = [(0, 85), (2, 85), (3, 79), (4, 79), (5, 77), (6, 77), (7, 77)]
    # 79 is inside the deadband (stays H); 77 clears only after the 2 s off-delay.
    assert _feed_timed(rule, table, seq) == ["", "H", "H", "H", "H", "H", ""]


def test_escalation_to_hh_waits_for_the_on_delay() -> None:
    rule, table = _rule(hh=90, h=80, on_delay=3)
    seq = [(0, 85), (3, 85), (4, 95), (6, 95), (7, 95)]
    assert _feed_timed(rule, table, seq) == ["", "H", "H", "H", "HH"]
