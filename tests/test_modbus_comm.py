"""The communication-loss rule over the value table, without devices."""

from __future__ import annotations

import numpy as np

from plantguard.comm import CommLossRule
from plantguard.model import Priority, Quality, Site
from plantguard.table import ValueTable

SITE = Site.model_validate(
    {
        "id": "s",
        "areas": [
            {
                "id": "a",
                "devices": [
                    {
                        "id": "p1",
                        "name": "Pump 1",
                        "driver": "x",
                        "points": [{"id": "a"}, {"id": "b"}],
                    },
                    {"id": "t1", "driver": "x", "points": [{"id": "c"}]},
                    {"id": "empty", "driver": "x"},
                ],
            }
        ],
    }
)


def set_quality(table: ValueTable, **by_point: Quality) -> None:
    for key, quality in by_point.items():
        table.quality[table.index[key.replace("_", ".")]] = quality


def test_alarm_per_device_with_points() -> None:
    table = ValueTable(SITE.points)
    rule = CommLossRule(SITE, table)
    definitions = rule.alarms()
    assert [d.id for d in definitions] == ["p1.comm", "t1.comm"]
    assert {(d.kind, d.rule, d.priority) for d in definitions} == {
        ("system", "comm", Priority.HIGH)
    }


def test_raised_when_all_points_lost_cleared_when_any_readable() -> None:
    table = ValueTable(SITE.points)
    rule = CommLossRule(SITE, table)
    assert rule.evaluate(table, 0.0) == [], "waiting for initial data is not a loss"

    set_quality(table, p1_a=Quality.BAD_COMMUNICATION_ERROR, p1_b=Quality.GOOD, t1_c=Quality.GOOD)
    known = rule.evaluate(table, 1.0)  # both devices become known-good: clear findings
    assert sorted((f.alarm_id, f.active) for f in known) == [("p1.comm", False), ("t1.comm", False)]
    set_quality(table, p1_b=Quality.BAD_NOT_CONNECTED)
    (lost,) = rule.evaluate(table, 2.0)
    assert (lost.alarm_id, lost.active, lost.condition) == ("p1.comm", True, "COMM_LOSS")
    assert lost.message == "Communication with Pump 1 lost"
    assert rule.evaluate(table, 3.0) == [], "findings only on change"

    set_quality(table, p1_a=Quality.BAD_DEVICE_FAILURE)  # the device answers again, with an error
    (back,) = rule.evaluate(table, 4.0)
    assert (back.alarm_id, back.active) == ("p1.comm", False)


def test_first_scan_reports_known_state_so_a_restored_alarm_can_clear() -> None:
    table = ValueTable(SITE.points)
    rule = CommLossRule(SITE, table)
    table.quality[:] = Quality.GOOD
    findings = rule.evaluate(table, 1.0)
    assert sorted((f.alarm_id, f.active) for f in findings) == [
        ("p1.comm", False),
        ("t1.comm", False),
    ]
    table.quality[:] = Quality.BAD_COMMUNICATION_ERROR
    assert np.array([f.active for f in rule.evaluate(table, 2.0)]).all()
