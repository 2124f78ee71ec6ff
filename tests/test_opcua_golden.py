"""The OPC UA address space of a 300-point site, compared with a golden snapshot.

Why: the address space is being rewritten so that points, their properties and
the alarm conditions are answered from a compact view instead of full asyncua
nodes.  Clients (HMIs, historians, MES) keep NodeIds, browse paths and the
meaning of every attribute in their configuration, so the rewrite must look the
same from the wire.  This test starts the real ``opcua`` service for a
deterministic site, walks the tree under ``PlantGuard`` with a real asyncua
client (:mod:`opcua_snapshot`: every node's attributes and every reference) and
compares the result with ``tests/golden/opcua_address_space_300.json``, which
was generated from the code before the rewrite.

The site (:func:`golden_site`): 1 site, 2 areas, 6 devices of 50 points each —
float, int and bool points, with and without name, unit and range, some
writable — with device information set, partly set and unset (one device
commissioned, two safety-critical, one under maintenance, one retired, one
without a name).  The alarms are the real rule types' (limit, rate, stuck,
stale, range, EWMA drift, forecast; per device the communication and identity
alarms; the site-wide failed-logins alarm) plus a maintenance and a latching
discrete alarm declared directly, so every condition type is built once by
asyncua's ``instantiate`` and at least once more from its template.  The alarm
manager runs on a fixed clock and is driven into the states a condition can
show: active, acknowledged and confirmed, commented, returned unacknowledged,
latched, timed and one-shot shelved, out of service, suppressed by maintenance
and by a lost device.  Point values and qualities are fixed too (Good,
Uncertain, lost, never read).  There is no store: the maintenance and
statistics nodes follow the wall clock (test_opcua_records.py covers them).

One difference is intended: point variables (``…/Points/<point>``) will
advertise history — ``Historizing`` False → True and ``AccessLevel`` /
``UserAccessLevel`` gaining the HistoryRead bit (4).  :func:`history_advertised`
excuses exactly that; everything else must match.

Regenerating the golden file (only on purpose, e.g. after an intended change to
the address space, and review the JSON diff before committing it)::

    PLANTGUARD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_opcua_golden.py

writes the file from the running server instead of comparing.  To generate it
from another revision, run that in a ``git worktree`` with ``PYTHONPATH`` set to
the worktree's ``.``, ``opcua_server`` and ``plugins`` (the editable install
would otherwise import this checkout's packages).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import ua
from asyncua.client.client import Client
from opcua_engine import FakeEngine, MemoryJournal
from opcua_snapshot import (
    NodeRecord,
    diff_snapshots,
    format_differences,
    read_golden,
    snapshot_address_space,
    write_golden,
)

from plantguard.alarms import Action, AlarmManager
from plantguard.auth import Principal, Role
from plantguard.comm import core_rules
from plantguard.config import LoadedSite, parse_site
from plantguard.host import PluginHost
from plantguard.model import AlarmDefinition, DeviceStatus, Finding, Priority, Quality
from plantguard.rules import Rule, RuleContext
from plantguard.table import ValueTable
from plantguard_opcua import NAMESPACE_URI, OpcUaOptions, OpcUaService

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "golden" / "opcua_address_space_300.json"
UPDATE_ENV = "PLANTGUARD_UPDATE_GOLDEN"

#: The fixed clock of the table and the alarm manager (2023-11-14T22:13:20Z).
T0 = 1_700_000_000.0

HISTORY_READ = ua.AccessLevel.HistoryRead.mask
#: A point variable's NodeId: ``…/Points/<local id>`` (no ``#``: not a property).
POINT_VARIABLE = re.compile(r";s=[^#]*/Points/[^/#]+$")

# --- the site ------------------------------------------------------------------------------

#: (local id stem, name, data type, unit, range): point n of a device uses entry n % 10.
_KINDS: tuple[tuple[str, str, str, str | None, tuple[float, float] | None], ...] = (
    ("temperature", "Temperature", "float", "°C", (0.0, 150.0)),
    ("pressure", "Pressure", "float", "bar", (0.0, 16.0)),
    ("flow", "Flow", "float", "m³/h", None),
    ("current", "Motor current", "float", "A", (0.0, 50.0)),
    ("vibration", "Vibration", "float", "mm/s", None),
    ("level", "Level", "float", "%", (0.0, 100.0)),
    ("speed", "Speed", "int", "rpm", (0.0, 3000.0)),
    ("starts", "Start count", "int", None, None),
    ("running", "Running", "bool", None, None),
    ("valve", "Valve open", "bool", "on/off", None),  # a bool with a (non-UNECE) unit
)
POINTS_PER_DEVICE = 50

#: (area, device id, name, category, info).
_DEVICES: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    (
        "north",
        "pump1",
        "Cooling water pump 1",
        "pump",
        {
            "manufacturer": "Grundfos",
            "model": "CR 15-3",
            "serial_number": "SN-4711",
            "hardware_version": "B2",
            "firmware_version": "3.1.4",
            "commissioned": "2021-05-17",
            "responsible": "Li Wei",
            "safety_critical": True,
            "status": "in_service",
            "location": {"building": "B1", "floor": "G", "position": "bay 3"},
        },
    ),
    (
        "north",
        "comp1",
        "Air compressor",
        "compressor",
        {"manufacturer": "Atlas Copco", "model": "GA 30", "status": "standby"},
    ),
    ("north", "tank1", "Storage tank 1", "tank", {}),
    (
        "south",
        "boiler1",
        "Steam boiler",
        "boiler",
        {
            "safety_critical": True,
            "status": "under_maintenance",
            "responsible": "J. Smith",
            "location": {"position": "Boiler house, east wall"},
        },
    ),
    (
        "south",
        "fan1",
        "Exhaust fan",
        "fan",
        {"serial_number": "F-0099", "firmware_version": "1.0", "status": "retired"},
    ),
    ("south", "gas1", "", "analyzer", {"model": "GX-2"}),
)

#: Point rules by (device, local id); limits are on more points, see :func:`_limit`.
_OTHER_RULES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("pump1", "flow1"): {"rate": {"rise": 5, "fall": 10, "per": 60, "window": 10}},
    ("tank1", "flow1"): {"rate": {"fall": 20}},
    ("pump1", "vibration1"): {"stuck": {"duration": 600, "tolerance": 0.01}},
    ("comp1", "current1"): {"stale": {"max_age": 30}},
    ("tank1", "level1"): {"range": {"margin": 0.02}},
    ("boiler1", "pressure2"): {"ewma": {"lambda": 0.2, "L": 3, "target": 8.0, "sigma": 0.5}},
    ("gas1", "temperature1"): {"forecast": {"limit": "hh", "horizon": 1800}},
}


def _limit(device: str, local: str) -> dict[str, Any] | None:
    """Limit rules on some points of every device, in the shapes the rule allows."""
    if local == "temperature1":
        return {"h": 80, "hh": 95, "deadband": 1.0, "priority": "high"}
    if local == "level1" and device in ("pump1", "tank1"):
        return {"ll": 5, "l": 10, "h": 90, "hh": 95, "message": "{name} at {value:.1f} %"}
    if local == "pressure1" and device in ("pump1", "boiler1"):
        return {"h": 12, "priority": "urgent"}
    return None


def _point(device: str, n: int) -> dict[str, Any]:
    stem, name, data_type, unit, value_range = _KINDS[n % 10]
    number = n // 10 + 1
    local = f"{stem}{number}"
    point: dict[str, Any] = {
        "id": local,
        "data_type": data_type,
        "address": {"register": 2 * n, "type": "float32"},
    }
    if n % 7 != 6:
        point["name"] = f"{name} {number}"
    if unit is not None and number != 5:
        point["unit"] = unit
    if value_range is not None and number % 2 == 1:
        point["range"] = list(value_range)
    if n % 9 == 8:
        point["access"] = "read_write"
    rules = dict(_OTHER_RULES.get((device, local), {}))
    if (limit := _limit(device, local)) is not None:
        rules["limit"] = limit
    if rules:
        point["rules"] = rules
    return point


def golden_site() -> dict[str, Any]:
    """The site of the golden file, as a site file's mapping (deterministic)."""
    areas: dict[str, dict[str, Any]] = {
        "north": {"id": "north", "name": "North plant", "devices": []},
        "south": {"id": "south", "devices": []},  # no name: the id is shown
    }
    for unit, (area, device_id, name, category, info) in enumerate(_DEVICES, start=1):
        device: dict[str, Any] = {
            "id": device_id,
            "category": category,
            "driver": "modbus",
            "connection": {"host": "127.0.0.1", "port": 5020, "unit": unit},
            "points": [_point(device_id, n) for n in range(POINTS_PER_DEVICE)],
        }
        if name:
            device["name"] = name
        if info:
            device["info"] = info
        areas[area]["devices"].append(device)
    return {
        "id": "golden",
        "name": "Golden test plant",
        "rules": {"failed_logins": {"threshold": 5, "window": 60}},
        "areas": list(areas.values()),
    }


def alarm_definitions(
    host: PluginHost, loaded: LoadedSite, table: ValueTable
) -> list[AlarmDefinition]:
    """The alarms the engine declares for the site — its rules are built here as
    :class:`plantguard.engine.Engine` builds them, without a store — plus a
    maintenance alarm (the maintenance rule reads its plans from a store) and a
    latching discrete alarm (no built-in rule raises that kind)."""
    site = loaded.site
    points = {p.id: p for p in site.points}
    rules: list[Rule] = [
        host.rules[name].create(
            site,
            table,
            [(points[pid], cfg) for pid, cfg in loaded.rule_configs.get(name, ())],
            RuleContext(loaded.site_rule_configs.get(name)),
        )
        for name in {**loaded.rule_configs, **loaded.site_rule_configs}
    ]
    rules += core_rules(site, table, rules)
    return [
        *(d for r in rules for d in r.alarms()),
        AlarmDefinition(
            id="maintenance.pump1-overhaul",
            source_id="pump1",
            device_id="pump1",
            kind="maintenance",
            rule="maintenance",
            priority=Priority.LOW,
            message="inspection 'Overhaul' of pump1",
        ),
        AlarmDefinition(
            id="gas1.running1.discrete",
            source_id="gas1.running1",
            device_id="gas1",
            kind="discrete",
            rule="golden",
            priority=Priority.HIGH,
            latching=True,
        ),
    ]


# --- the engine double -----------------------------------------------------------------------


def golden_engine() -> FakeEngine:
    """The :class:`~plantguard.services.EngineView` the service gets: the golden site, a
    real value table and a real alarm manager on a fixed clock, and no store."""
    host = PluginHost()
    host.load_entry_points()
    host.start()
    loaded = parse_site(json.dumps(golden_site()), "<golden site>", host)

    def alarms(table: ValueTable) -> AlarmManager:
        manager = AlarmManager(
            MemoryJournal(), alarm_definitions(host, loaded, table), clock=lambda: T0 + 60
        )
        # As the engine does: alarms of devices under maintenance or retired are suppressed.
        manager.set_maintenance(
            d.id
            for d in loaded.site.devices
            if d.info.status in (DeviceStatus.UNDER_MAINTENANCE, DeviceStatus.RETIRED)
        )
        return manager

    return FakeEngine(loaded.site, alarms=alarms)


def fill_table(engine: FakeEngine) -> None:
    """Fixed values and qualities: mostly Good, some Uncertain, some lost, some never read."""
    table = engine.table
    by_quality: dict[Quality, tuple[list[int], list[float]]] = {}
    for index, point in enumerate(engine.site.points):
        if index % 10 == 9:
            continue  # never read: BadWaitingForInitialData
        quality = {3: Quality.UNCERTAIN_LAST_USABLE, 7: Quality.BAD_COMMUNICATION_ERROR}.get(
            index % 10, Quality.GOOD
        )
        if quality is Quality.BAD_COMMUNICATION_ERROR:
            value = float("nan")  # lost before the first value: keeps the initial one
        elif point.data_type == "bool":
            value = float(index % 3 == 0)
        elif point.data_type == "int":
            value = float(index * 10)
        else:
            value = index * 1.25 + 0.5
        indices, values = by_quality.setdefault(quality, ([], []))
        indices.append(index)
        values.append(value)
    for quality, (indices, values) in by_quality.items():
        idx = np.array(indices, dtype=np.intp)
        quality_bytes = np.full(idx.size, quality, dtype=np.uint8)
        table.update(idx, np.array(values, dtype=np.float64), quality_bytes, T0)


async def drive_alarms(engine: FakeEngine) -> None:
    """Put alarms in every state a condition can show (times from the fixed clock)."""
    manager = engine.alarms
    operator = Principal("operator", Role.OPERATOR)
    engineer = Principal("engineer", Role.ENGINEER)

    def finding(
        alarm_id: str, condition: str, severity: int, value: float, at: float = T0 + 10
    ) -> Finding:
        message = f"{alarm_id} {condition or 'normal'} at {value:g}"
        return Finding(alarm_id, bool(condition), condition, severity, message, value, at)

    await manager.apply_findings(
        [
            finding("pump1.temperature1.limit", "HH", 900, 97.5),
            finding("pump1.level1.limit", "H", 500, 91.0),
            finding("comp1.temperature1.limit", "H", 700, 82.0),
            finding("tank1.comm", "COMM_LOSS", 700, 0.0),
            finding("gas1.running1.discrete", "ON", 700, 1.0),
            finding("boiler1.pressure1.limit", "H", 900, 12.5),
            finding("gas1.temperature1.forecast", "FORECAST", 500, 94.0),
            finding("security.failed_logins", "BURST", 700, 6.0),
            finding("maintenance.pump1-overhaul", "DUE", 250, 0.0),
        ]
    )
    await manager.apply_findings(
        [
            finding("comp1.temperature1.limit", "", 0, 75.0, at=T0 + 20),
            finding("gas1.running1.discrete", "", 0, 0.0, at=T0 + 20),
        ]
    )
    await manager.act(Action.ACKNOWLEDGE, "pump1.level1.limit", operator, comment="seen")
    await manager.act(Action.CONFIRM, "pump1.level1.limit", operator, comment="fixed")
    await manager.act(
        Action.COMMENT, "pump1.temperature1.limit", operator, comment="crew on the way"
    )
    await manager.act(Action.SHELVE, "pump1.pressure1.limit", engineer, comment="", duration=3600)
    await manager.act(Action.ONE_SHOT_SHELVE, "gas1.temperature1.forecast", engineer)
    await manager.act(Action.REMOVE_FROM_SERVICE, "fan1.temperature1.limit", engineer)
    await manager.tick(T0 + 70)  # applies the maintenance suppression


# --- the test --------------------------------------------------------------------------------


def history_advertised(node: str, attribute: str, expected: Any, actual: Any) -> bool:
    """The one intended difference: point variables advertise history after the rewrite."""
    if not POINT_VARIABLE.search(node):
        return False
    if attribute == "Historizing":
        return expected is False and actual is True
    if attribute in ("AccessLevel", "UserAccessLevel"):
        return (
            isinstance(expected, int)
            and isinstance(actual, int)
            and actual == expected | HISTORY_READ
        )
    return False


@pytest.fixture
async def golden_service() -> AsyncIterator[OpcUaService]:
    engine = golden_engine()
    fill_table(engine)
    await drive_alarms(engine)
    service = OpcUaService(
        OpcUaOptions(host="127.0.0.1", port=0, security=["none"], anonymous=True)
    )
    await service.start(engine)
    try:
        yield service
    finally:
        await service.stop()


async def test_address_space_matches_the_golden_snapshot(golden_service: OpcUaService) -> None:
    async with Client(golden_service.endpoint, timeout=30) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        actual = await snapshot_address_space(client, ns)
    if os.environ.get(UPDATE_ENV) == "1":
        write_golden(
            GOLDEN,
            actual,
            "PlantGuard OPC UA address space of tests/test_opcua_golden.py::golden_site, "
            f"as a client browses and reads it; regenerate with {UPDATE_ENV}=1.",
        )
        pytest.skip(f"{GOLDEN.name} written ({len(actual)} nodes); review its diff")
    assert GOLDEN.exists(), f"no golden file; create it with {UPDATE_ENV}=1"
    # Round-trip through JSON so both sides have the same types (lists, not tuples).
    actual = json.loads(json.dumps(actual))
    differences = diff_snapshots(read_golden(GOLDEN), actual, allow=history_advertised)
    if differences:
        pytest.fail(
            f"the address space differs from {GOLDEN.name}; " + format_differences(differences),
            pytrace=False,
        )


def test_comparison_catches_changes_and_excuses_only_the_history_change() -> None:
    """The golden test can fail: renamed, retyped, unlinked and missing nodes are reported,
    and the history allowance covers point variables only, and only the HistoryRead bit."""
    golden = read_golden(GOLDEN)
    pump = f"nsu={NAMESPACE_URI};s=golden/north/pump1"
    point, prop = f"{pump}/Points/temperature1", f"{pump}/Points/temperature1#EURange"
    Edit = Callable[[NodeRecord], object]

    def changed(edits: dict[str, Edit | None]) -> list[str]:
        """Differences after editing copies of some nodes (``None`` removes the node)."""
        actual = dict(golden)
        for node, edit in edits.items():
            if edit is None:
                del actual[node]
                continue
            actual[node] = copy.deepcopy(golden[node])
            edit(actual[node])
        return diff_snapshots(golden, actual, allow=history_advertised)

    def attribute(**values: Any) -> Edit:
        return lambda record: record["attributes"].update(values)

    def history(record: NodeRecord) -> None:
        attributes = record["attributes"]
        attributes["Historizing"] = True
        attributes["AccessLevel"] |= HISTORY_READ
        attributes["UserAccessLevel"] |= HISTORY_READ

    assert changed(dict.fromkeys(filter(POINT_VARIABLE.search, golden), history)) == []
    assert len(changed({prop: history})) == 3  # a property does not advertise history
    assert changed({point: attribute(AccessLevel=1 | 8)}) == [
        f"{point}: AccessLevel: expected 1, got 9"
    ]
    assert changed({point: attribute(BrowseName="urn:plantguard:t1")}) == [
        f'{point}: BrowseName: expected "urn:plantguard:temperature1", got "urn:plantguard:t1"'
    ]
    assert changed({point: attribute(DataType="i=10 (Float)")}) == [
        f'{point}: DataType: expected "i=11 (Double)", got "i=10 (Float)"'
    ]
    (missing,) = changed({point: lambda record: record["references"].pop()})
    assert missing.startswith(f"{point}: reference missing: ")
    assert changed({prop: None}) == [f"{prop}: missing (Variable urn:plantguard:EURange)"]
