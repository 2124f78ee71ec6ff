"""The early-warning index (安全生产预警指数): the formula against hand-computed values,
its inputs gathered from a real store (SQLite and PostgreSQL), and the index as a
virtual device in a running gateway — in history and in OPC UA through a real
asyncua client."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from asyncua.client.client import Client
from asyncua_typed import string_id
from pydantic import ValidationError

from plantguard.alarms import AlarmManager
from plantguard.auth import Principal, Role
from plantguard.cli import main
from plantguard.model import AlarmDefinition, Device, Finding, Priority, Quality
from plantguard.records.models import DeviceRecord, MaintenancePlan
from plantguard.store import Store
from plantguard.store.risk import RiskPointRow, RiskStore
from plantguard.testing import RunningSite, free_tcp_port, wait_for
from plantguard_risk import cli as risk_cli
from plantguard_risk.device import IndexAddress, IndexDriver, IndexDriverType
from plantguard_risk.gather import gather, priority_key
from plantguard_risk.index import IndexInputs, IndexSettings, compute, level_of
from plantguard_risk.lifecycle import Lifecycle

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC).timestamp()
DAY = 86400.0
OPERATOR = Principal("op1", Role.OPERATOR)
ENGINEER = Principal("eng1", Role.ENGINEER)


def test_formula_against_hand_computed_values() -> None:
    inputs = IndexInputs(
        unack={"low": 2, "high": 1, "urgent": 1},  # 0.5·2 + 2 + 4 = 7
        standing={"medium": 3},  # 1·3 = 3
        hazards=(("general", 0.0), ("major", 15.0), ("general", 200.0)),  # 2 + 15 + 8 = 25
        overdue={"general": 1, "major": 1},  # 5 + 15 = 20
        inspections_overdue=2,  # 4
        risk_controls_overdue={"red": 1, "orange": 1},  # 15
        detection_flags=1,  # 3
        devices_known=4,
        devices_online=3,  # 20 · 0.25 = 5
    )
    result = compute(inputs, IndexSettings())
    assert result.components == {
        "alarms_unack": 7.0,
        "alarms_standing": 3.0,
        "hazards_open": 25.0,
        "rectification_overdue": 20.0,
        "inspections_overdue": 4.0,
        "risk_controls_overdue": 15.0,
        "detection_flags": 3.0,
        "device_unavailability": 5.0,
    }
    assert result.index == 82.0
    assert (result.level, result.level_number) == ("red", 4)
    capped = compute(inputs, IndexSettings(component_cap=10, thresholds=(20, 60, 90)))
    # 7 + 3 + 10 + 10 + 4 + 10 + 3 + 5
    assert capped.index == 52.0
    assert capped.level == "yellow"
    empty = compute(IndexInputs(), IndexSettings())
    assert (empty.index, empty.level, empty.level_number) == (0.0, "blue", 1)


@pytest.mark.parametrize(
    ("index", "level"),
    [(0, "blue"), (24.99, "blue"), (25, "yellow"), (49.9, "yellow"), (50, "orange"),
     (75, "red"), (100, "red")],
)  # fmt: skip
def test_warning_levels(index: float, level: str) -> None:
    assert level_of(index, (25, 50, 75)) == level


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="thresholds must rise"):
        IndexSettings(thresholds=(50, 25, 75))
    with pytest.raises(ValidationError):
        IndexSettings.model_validate({"hazard": {"general": -1, "major": 1}})
    with pytest.raises(ValidationError):
        IndexSettings.model_validate({"weights": {}})
    assert priority_key(int(Priority.HIGH)) == "high"
    assert priority_key(1) == "low"


# --- gathered from a store ---------------------------------------------------------------


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = Store(store_target)
    yield s
    s.close()


async def _plant_state(store: Store) -> None:
    """The state whose components are worked out by hand in the test below."""
    store.records.upsert_devices(
        [DeviceRecord(id=d, name=d, area="yard") for d in ("pump1", "pump2", "pump3")],
        user="test",
    )
    store.records.record_connection(["pump1"], T0 - 10, "online")
    store.records.record_connection(["pump2"], T0 - 10, "offline")
    store.records.record_connection(["pump3"], T0 - 10, "unknown")
    defs = [
        AlarmDefinition(id="a1", source_id="pump1.p", device_id="pump1", rule="limit",
                        priority=Priority.HIGH),
        AlarmDefinition(id="a2", source_id="pump1.t", device_id="pump1", rule="limit",
                        priority=Priority.URGENT),
        AlarmDefinition(id="a3", source_id="pump2.v", device_id="pump2", rule="drift",
                        kind="deviation", priority=Priority.MEDIUM),
        AlarmDefinition(id="a4", source_id="pump2.f", device_id="pump2", rule="limit",
                        priority=Priority.LOW),
    ]  # fmt: skip
    manager = AlarmManager(store, defs, clock=lambda: T0)
    await manager.apply_findings(
        [
            Finding("a1", True, "H", 700, "", 1.0, T0 - 100),
            Finding("a2", True, "HH", 900, "", 1.0, T0 - 25 * 3600),
            Finding("a3", True, "DRIFT", 500, "", 1.0, T0 - 60),
            Finding("a4", True, "L", 250, "", 1.0, T0 - 50),
        ]
    )
    await manager.apply_findings([Finding("a4", False, "", 0, "", 1.0, T0 - 40)])
    risks = RiskStore(store.engine)
    clock = [T0]
    life = Lifecycle(risks, lambda: clock[0])
    clock[0] = T0 - 30 * DAY
    life.report(OPERATOR, "not assessed yet")
    clock[0] = T0 - 120 * DAY
    major = life.report(OPERATOR, "old major").id
    life.assess(ENGINEER, major, "major")
    life.assign(ENGINEER, major, measures="m", assignee="a", deadline=T0 - DAY)
    clock[0] = T0
    general = life.report(OPERATOR, "fresh general").id
    life.assess(ENGINEER, general, "general")
    life.assign(ENGINEER, general, measures="m", assignee="a", deadline=T0 + DAY)
    life.open_candidate("a candidate", "rule", "x:1")
    closed = life.report(OPERATOR, "closed one").id
    life.assess(ENGINEER, closed, "major")
    life.assign(ENGINEER, closed, measures="m", assignee="a", deadline=T0 - DAY)
    life.rectify(OPERATOR, closed, "done")
    life.verify(ENGINEER, closed, "seen")
    plans = [
        MaintenancePlan.model_validate(
            {"id": pid, "device_id": "pump1", "title": pid, "trigger": "calendar",
             "interval": 30, "start": start}
        )
        for pid, start in (("p-late", "2026-01-01"), ("p-future", "2099-01-01"))
    ]  # fmt: skip
    store.records.upsert_plans(plans)
    risks.upsert_risks(
        [
            RiskPointRow(id="R1", name="r1", area="yard", grade="red", plans=["p-late"]),
            RiskPointRow(id="R2", name="r2", area="yard", grade="orange", plans=["p-future"]),
            RiskPointRow(id="R3", name="r3", area="yard", grade="orange", plans=["p-late"]),
            RiskPointRow(id="R4", name="r4", area="yard", grade="yellow", plans=["p-late"]),
        ],
        user="test",
    )


#: By hand, with the default weights, for the state of :func:`_plant_state` at T0.
EXPECTED = {
    "alarms_unack": 7.5,  # a1 high 2 + a2 urgent 4 + a3 medium 1 + a4 (returned, unack) low 0.5
    "alarms_standing": 3.0,  # a2 urgent, active 25 h
    "hazards_open": 46.0,  # 2·(1+30/30) + 10·(1+90/30) (age capped) + 2·(1+0)
    "rectification_overdue": 15.0,  # the old major
    "inspections_overdue": 2.0,  # p-late
    "risk_controls_overdue": 15.0,  # R1 red 10 + R3 orange 5 (R4 yellow does not count)
    "detection_flags": 3.0,  # a3
    "device_unavailability": 10.0,  # 20 · (1 − 1/2): pump3 unknown is left out
}


async def test_inputs_gathered_from_the_store(
    store: Store, store_target: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await _plant_state(store)
    result = compute(gather(store, T0, IndexSettings()), IndexSettings())
    assert result.components == EXPECTED
    assert (result.index, result.level) == (100.0, "red")  # 101.5, capped
    weights = IndexSettings.model_validate(
        {"hazard": {"general": 1, "major": 5}, "component_cap": 20}
    )
    result = compute(gather(store, T0, weights), weights)
    # hazards 1·2 + 5·4 + 1·1 = 23 → 20; the rest as before
    assert result.components["hazards_open"] == 20.0
    assert result.index == 75.5
    assert result.level == "red"
    # the command line shows the same figures, with the weights of --site
    at = dt.datetime.fromtimestamp(T0, dt.UTC).isoformat()
    assert main(["index", "--db", store_target, "--at", at, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"index": 100.0, "level": "red", "components": EXPECTED}
    site = tmp_path / "site.yaml"
    site.write_text(
        "id: s\nservices:\n  safety_index: {hazard: {general: 1, major: 5}, component_cap: 20}\n"
        "areas:\n  - id: a\n    devices:\n      - id: safety\n        driver: safety_index\n"
        "        points: [{id: index, address: {component: index}}]\n",
        encoding="utf-8",
    )
    assert main(["index", "--db", store_target, "--site", str(site), "--at", at]) == 0
    out = capsys.readouterr().out
    assert out.startswith("early-warning index 75.5  红色预警")
    assert "hazards_open" in out


# --- the virtual device --------------------------------------------------------------------


def _site(opcua: int) -> str:
    return f"""
id: works
poll_groups: {{default: {{interval: 0.2}}}}
services:
  opcua: {{port: {opcua}, security: [none], anonymous: true}}
  safety_index: {{}}
areas:
  - id: plant
    devices:
      - id: safety
        driver: safety_index
        points:
          - {{id: index, address: {{component: index}}}}
          - {{id: level, data_type: int, address: {{component: level}}}}
          - {{id: hazards_open, address: {{component: hazards_open}}}}
          - {{id: alarms_unack, address: {{component: alarms_unack}}}}
"""


async def test_index_in_history_and_opcua(running_site: RunningSite, tmp_path: Path) -> None:
    db = str(tmp_path / "index.db")
    store = Store(db)
    life = Lifecycle(RiskStore(store.engine), lambda: time.time() - 200 * DAY)
    major = life.report(OPERATOR, "bypassed interlock").id
    life.assess(ENGINEER, major, "major")  # the hazards rule raises hazards.major (urgent)
    store.close()
    opcua = free_tcp_port()
    async with running_site(_site(opcua), db=db) as engine:
        table = engine.table

        def value(point: str) -> float:
            return float(table.values[table.index[point]])

        # 10·(1 + 90/30): reported long before now, age capped; + urgent unack alarm 4
        await wait_for(lambda: value("safety.alarms_unack") == 4.0, timeout=20)
        assert value("safety.hazards_open") == 40.0
        assert value("safety.index") == 44.0
        assert value("safety.level") == 2.0  # yellow
        assert table.quality[table.index["safety.index"]] == Quality.GOOD
        async with Client(f"opc.tcp://127.0.0.1:{opcua}/plantguard") as client:
            ns = await client.get_namespace_index("urn:plantguard")
            node = client.get_node(string_id("works/plant/safety/Points/index", ns))
            assert await node.read_value() == 44.0
            node = client.get_node(string_id("works/plant/safety/Points/level", ns))
            assert await node.read_value() == 2
        store = engine.store

        def historised() -> bool:
            trend = store.trend("safety.index")
            return len(trend) > 0 and 44.0 in set(np.asarray(trend.value).tolist())

        await wait_for(historised, timeout=20)


async def test_virtual_device_without_its_service_reads_bad() -> None:
    device = Device.model_validate(
        {"id": "safety", "driver": "safety_index",
         "points": [{"id": "index", "address": {"component": "index"}}]}
    )  # fmt: skip
    driver = IndexDriver(device, {"safety.index": IndexAddress(component="index")})
    await driver.connect()
    assert driver.connected
    result = await driver.read(device.points)
    assert result.quality.tolist() == [Quality.BAD_CONFIGURATION_ERROR]
    assert np.isnan(result.values[0])
    await driver.close()
    assert not driver.connected


def test_virtual_device_points_are_checked() -> None:
    from plantguard.build import SettingError

    device = Device.model_validate(
        {"id": "safety", "driver": "safety_index",
         "points": [{"id": "index", "access": "read_write", "address": {"component": "index"}}]}
    )  # fmt: skip
    kind = IndexDriverType()
    with pytest.raises(SettingError, match="computed, not written"):
        kind.create(
            device, kind.connection_model(), {"safety.index": IndexAddress(component="index")}
        )
    with pytest.raises(SettingError, match="needs address"):
        kind.create(device, kind.connection_model(), {})


def test_cli_clock_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk_cli, "clock", lambda: 100.0)
    assert risk_cli._parse_time("1d") == 100.0 + DAY
    assert (
        risk_cli._parse_time("2026-01-02")
        == dt.datetime(2026, 1, 2, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    )
    with pytest.raises(Exception, match="needs a zone"):
        risk_cli._parse_time("2026-01-02T10:00:00")
    with pytest.raises(Exception, match="not a time"):
        risk_cli._parse_time("soon")
