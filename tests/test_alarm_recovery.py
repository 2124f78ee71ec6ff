"""Kill the gateway with SIGKILL and restart it: no journal entry lost, every state kept.

A real ``plantguard demo`` process raises the tank alarm; an operator acknowledges
it over OPC UA and an engineer shelves another alarm for an hour.  The process is
then killed without any chance to clean up.  The database must hold every journal
entry written before the kill and every alarm's state (acknowledged, shelved until
the same instant), and a new gateway on the same file must start from exactly
those states.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua_typed import numeric_id, string_id
from test_opcua_alarms import Events, Gateway, alarm_filter, call_status, is_level

pytestmark = pytest.mark.integration


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


JOURNAL = "SELECT seq, alarm_id, action, state_before, state_after, user, comment FROM alarm_journal ORDER BY seq"
STATES = "SELECT alarm_id, state, shelving, shelved_until, last_user, comment FROM alarms ORDER BY alarm_id"


async def test_sigkill_and_restart_keep_journal_and_states(tmp_path: Path) -> None:  # noqa: PLR0915
    first = Gateway(tmp_path)
    try:
        op, eng = await first.client("operator"), await first.client("engineer")
        ns = await op.get_namespace_index("urn:plantguard")
        events = Events()
        sub = await op.create_subscription(50, events)
        await sub.subscribe_events(
            op.nodes.server, ObjectIds.AlarmConditionType, evfilter=alarm_filter()
        )
        active = await events.wait(lambda e: is_level(e) and e["ActiveState/Id"], "level alarm", 45)
        condition = op.get_node(active["NodeId"])
        event_id = ua.Variant(active["EventId"], ua.VariantType.ByteString)
        ack = ObjectIds.AcknowledgeableConditionType_Acknowledge
        assert (
            await call_status(condition, ack, event_id, ua.LocalizedText("before the crash")) == 0
        )
        bearing = eng.get_node(
            string_id("demo/utilities/pump1/Alarms/bearing_temp.limit.ShelvingState", ns)
        )
        timed = ObjectIds.ShelvedStateMachineType_TimedShelve
        assert (
            await call_status(bearing, timed, ua.Variant(3_600_000.0, ua.VariantType.Double)) == 0
        )
        await events.wait(
            lambda e: e["ConditionName"] == "bearing_temp.limit" and e["SuppressedOrShelved"],
            "shelved",
        )
        journal_before = rows(first.db, JOURNAL)
        states_before = rows(first.db, STATES)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        first.close(kill=True)

    # Nothing written before the kill is lost, and every state is as it was.
    assert rows(first.db, JOURNAL)[: len(journal_before)] == journal_before
    assert rows(first.db, STATES) == states_before
    level = {r[0]: r for r in states_before}["tank1.level.limit"]
    assert level[1] == "active_acknowledged"
    assert level[4] == "operator"
    bearing_row = {r[0]: r for r in states_before}["pump1.bearing_temp.limit"]
    assert bearing_row[2] == "timed"
    assert bearing_row[3] is not None
    assert ("tank1.level.limit", "acknowledge", "operator", "before the crash") in [
        (r[1], r[2], r[5], r[6]) for r in journal_before
    ]

    second = Gateway(tmp_path, db=first.db, scenario="none")
    try:
        client = await second.client("viewer")
        ns = await client.get_namespace_index("urn:plantguard")
        shelving = client.get_node(
            string_id(
                "demo/utilities/pump1/Alarms/bearing_temp.limit.ShelvingState.CurrentState.Id", ns
            )
        )
        assert await shelving.read_value() == numeric_id(
            ObjectIds.ShelvedStateMachineType_TimedShelved
        )
        unshelve_in = client.get_node(
            string_id(
                "demo/utilities/pump1/Alarms/bearing_temp.limit.ShelvingState.UnshelveTime", ns
            )
        )
        assert 0 < await unshelve_in.read_value() <= 3_600_000.0
        await client.disconnect()
        # Wait for the first scan of the restarted gateway to judge the restored level alarm.
        deadline = time.monotonic() + 30
        while len(rows(first.db, JOURNAL)) == len(journal_before):
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.2)
    finally:
        second.close()
    after = rows(first.db, JOURNAL)
    assert after[: len(journal_before)] == journal_before
    # The restarted gateway started from the acknowledged state: the plant (scenario
    # 'none') is normal, so the restored alarm cleared straight to normal.
    restarted = [r for r in after[len(journal_before) :] if r[1] == "tank1.level.limit"]
    assert restarted[0][2:5] == ("clear", "active_acknowledged", "normal")
    final = {r[0]: r for r in rows(first.db, STATES)}
    assert final["pump1.bearing_temp.limit"][2:4] == bearing_row[2:4]  # same shelve, same until
