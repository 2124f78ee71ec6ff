"""OPC UA Alarms & Conditions against the real gateway, with an asyncua client.

``plantguard demo`` runs as a subprocess on free ports; its scenario raises the
tank level alarm about 10 s after start.  The client browses the conditions,
subscribes to events on the Server object with an A&C field filter whose
WhereClause is ``OfType(AlarmConditionType)`` (so only subtype matching lets the
ExclusiveLimitAlarmType events through), calls ConditionRefresh, and exercises
every method with the demo's users: refusals carry the standard status codes,
and actions reach the journal with the session's user and comment.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from asyncua_typed import numeric_id

from plantguard.cli import main
from plantguard.testing import free_tcp_port

pytestmark = pytest.mark.integration

#: Browse paths of the event fields the tests select (all standard A&C fields).
FIELDS = [
    "EventId", "EventType", "SourceNode", "SourceName", "Time", "Message", "Severity",
    "ConditionName", "BranchId", "Retain", "ActiveState", "ActiveState/Id", "AckedState",
    "AckedState/Id", "ConfirmedState", "ConfirmedState/Id", "EnabledState", "EnabledState/Id",
    "Comment", "ClientUserId", "ShelvingState/CurrentState", "ShelvingState/CurrentState/Id",
    "SuppressedOrShelved", "LimitState/CurrentState",
]  # fmt: skip
LEVEL = "level.limit"


class Gateway:
    """``plantguard demo`` in a subprocess, on free ports, with its own database."""

    def __init__(self, tmp_path: Path, db: Path | None = None, scenario: str = "cycle") -> None:
        self.port = free_tcp_port()
        self.db = db or tmp_path / "gateway.db"
        self.log = tmp_path / f"gateway-{self.port}.log"
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/plantguard"
        cmd = [
            sys.executable, "-m", "plantguard", "demo", "--quiet",
            "--opcua-port", str(self.port), "--modbus-port", str(free_tcp_port()),
            "--db", str(self.db), "--scenario", scenario, "--duration", "150",
        ]  # fmt: skip
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
        self.proc.wait(timeout=30)
        self._out.close()

    async def client(self, user: str | None = None, timeout: float = 40.0) -> Client:
        deadline = time.monotonic() + timeout
        while True:
            client = Client(self.endpoint, timeout=10)
            if user is not None:
                client.set_user(user)
                client.set_password(user)  # demo users: password = name
            try:
                await client.connect()
                return client
            except (TimeoutError, OSError, UaError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gateway did not serve OPC UA:\n{self.output()}")
                await asyncio.sleep(0.3)


def alarm_filter(where_type: int = ObjectIds.AlarmConditionType) -> ua.EventFilter:
    """An A&C event filter: the standard fields, ConditionId, and OfType(where_type)."""
    evfilter = ua.EventFilter()
    for path in FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = numeric_id(ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(p, 0) for p in path.split("/")]
        op.AttributeId = AttributeIds.Value
        evfilter.SelectClauses.append(op)
    condition_id = ua.SimpleAttributeOperand()
    condition_id.TypeDefinitionId = numeric_id(ObjectIds.ConditionType)
    condition_id.AttributeId = AttributeIds.NodeId
    evfilter.SelectClauses.append(condition_id)
    element = ua.ContentFilterElement()
    element.FilterOperator = ua.FilterOperator.OfType
    element.FilterOperands = [ua.LiteralOperand(Value=ua.Variant(numeric_id(where_type)))]
    evfilter.WhereClause.Elements.append(element)
    return evfilter


class Events:
    """Collects event notifications as dicts of field path → value."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def event_notification(self, event: Any) -> None:
        self.items.append(event.get_event_props_as_fields_dict())

    def values(self) -> list[dict[str, Any]]:
        return [{k: v.Value for k, v in e.items()} for e in self.items]

    async def wait(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 40.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.values()[::-1]:
                if predicate(e):
                    return e
            await asyncio.sleep(0.2)
        pytest.fail(f"no event {what} within {timeout} s; got {self.values()[-5:]}")


def is_level(e: dict[str, Any]) -> bool:
    return e.get("ConditionName") == LEVEL


async def call_status(node: Node, method: int | ua.NodeId, *args: Any) -> int:
    """The StatusCode value of a method call (0 = Good)."""
    method_id = method if isinstance(method, ua.NodeId) else numeric_id(method)
    try:
        await node.call_method(method_id, *args)
    except UaStatusCodeError as exc:
        return int(exc.code)
    return 0


def journal(db: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["alarms", "journal", "--db", str(db), "--json"]) == 0
    entries: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return entries


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path)
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture
async def sessions(gateway: Gateway) -> AsyncIterator[dict[str, Client]]:
    clients = {name: await gateway.client(name) for name in ("operator", "engineer", "viewer")}
    clients["anonymous"] = await gateway.client(None)
    try:
        yield clients
    finally:
        for c in clients.values():
            await c.disconnect()


async def test_alarms_and_conditions_with_asyncua(  # noqa: PLR0915 - one scenario, step by step
    gateway: Gateway, sessions: dict[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    op = sessions["operator"]
    ns = await op.get_namespace_index("urn:plantguard")
    # --- browse: the condition under its device, HasCondition from the point --------------
    tank = await op.nodes.objects.get_child(
        [f"{ns}:PlantGuard", f"{ns}:demo", f"{ns}:utilities", f"{ns}:tank1"]
    )
    condition = await tank.get_child([f"{ns}:Alarms", f"{ns}:{LEVEL}"])
    assert (await condition.read_type_definition()) == numeric_id(ObjectIds.ExclusiveLimitAlarmType)
    level_point = await tank.get_child([f"{ns}:Points", f"{ns}:level"])
    targets = await level_point.get_referenced_nodes(refs=ObjectIds.HasCondition)
    assert condition in targets
    # --- subscribe on the Server (OfType AlarmConditionType: subtypes must match) and device
    events, device_events = Events(), Events()
    sub = await op.create_subscription(50, events)
    await sub.subscribe_events(
        op.nodes.server, ObjectIds.AlarmConditionType, evfilter=alarm_filter()
    )
    device_sub = await op.create_subscription(50, device_events)
    await device_sub.subscribe_events(tank, ObjectIds.AlarmConditionType, evfilter=alarm_filter())
    active = await events.wait(
        lambda e: is_level(e) and e["ActiveState/Id"], "of the level alarm", 45
    )
    assert active["EventType"] == numeric_id(ObjectIds.ExclusiveLimitAlarmType)
    assert active["NodeId"] == condition.nodeid  # ConditionId
    assert active["SourceName"] == "tank1.level"
    assert active["SourceNode"] == level_point.nodeid
    assert (active["AckedState/Id"], active["ConfirmedState/Id"], active["EnabledState/Id"]) == (
        False,
        False,
        True,
    )
    assert active["Retain"] is True
    assert active["Severity"] >= 700
    assert active["LimitState/CurrentState"].Text in ("High", "HighHigh")
    assert active["ShelvingState/CurrentState/Id"] == numeric_id(
        ObjectIds.ShelvedStateMachineType_Unshelved
    )
    await device_events.wait(is_level, "on the device notifier")

    # --- ConditionRefresh replays the retained conditions between start and end markers ---
    events.items.clear()
    refresh_filter = alarm_filter(ObjectIds.BaseEventType)
    all_events = Events()
    all_sub = await op.create_subscription(50, all_events)
    await all_sub.subscribe_events(
        op.nodes.server, ObjectIds.BaseEventType, evfilter=refresh_filter
    )
    conditions_type = op.get_node(numeric_id(ObjectIds.ConditionType))
    assert (
        await call_status(
            conditions_type,
            ObjectIds.ConditionType_ConditionRefresh,
            ua.Variant(all_sub.subscription_id, ua.VariantType.UInt32),
        )
        == 0
    )
    await all_events.wait(
        lambda e: e["EventType"] == numeric_id(ObjectIds.RefreshEndEventType), "RefreshEnd"
    )
    types = [e["EventType"] for e in all_events.values()]
    start = types.index(numeric_id(ObjectIds.RefreshStartEventType))
    end = types.index(numeric_id(ObjectIds.RefreshEndEventType))
    assert any(is_level(e) for e in all_events.values()[start:end])
    assert (
        await call_status(
            conditions_type,
            ObjectIds.ConditionType_ConditionRefresh,
            ua.Variant(999999, ua.VariantType.UInt32),
        )
        == StatusCodes.BadSubscriptionIdInvalid
    )

    # --- Acknowledge: refused for viewer and anonymous, unknown EventId, then as operator -
    event_id = ua.Variant(
        (await events.wait(is_level, "after refresh"))["EventId"], ua.VariantType.ByteString
    )
    ack = ObjectIds.AcknowledgeableConditionType_Acknowledge
    for who in ("viewer", "anonymous"):
        node = sessions[who].get_node(condition.nodeid)
        assert (
            await call_status(node, ack, event_id, ua.LocalizedText("no"))
            == StatusCodes.BadUserAccessDenied
        )
    assert (
        await call_status(
            condition, ack, ua.Variant(b"bogus", ua.VariantType.ByteString), ua.LocalizedText("x")
        )
        == StatusCodes.BadEventIdUnknown
    )
    assert (
        await call_status(condition, ack, event_id, ua.LocalizedText("tank checked on site")) == 0
    )
    acked = await events.wait(lambda e: is_level(e) and e["AckedState/Id"], "acknowledged")
    assert (acked["ClientUserId"], acked["Comment"].Text) == ("operator", "tank checked on site")
    assert (
        await call_status(condition, ack, event_id, ua.LocalizedText("again"))
        == StatusCodes.BadConditionBranchAlreadyAcked
    )
    # the instance's own copy of the method works too: Confirm
    confirm = await condition.get_child("0:Confirm")
    assert (
        await call_status(condition, confirm.nodeid, event_id, ua.LocalizedText("confirmed")) == 0
    )
    await events.wait(lambda e: is_level(e) and e["ConfirmedState/Id"], "confirmed")
    assert (
        await call_status(
            condition,
            ObjectIds.AcknowledgeableConditionType_Confirm,
            event_id,
            ua.LocalizedText(""),
        )
        == StatusCodes.BadConditionBranchAlreadyConfirmed
    )
    assert (
        await call_status(
            condition, ObjectIds.ConditionType_AddComment, event_id, ua.LocalizedText("note")
        )
        == 0
    )

    # --- shelving: operator refused, engineer shelves through the ShelvingState object ----
    shelving_state = await condition.get_child("0:ShelvingState")
    timed = ObjectIds.ShelvedStateMachineType_TimedShelve
    assert (
        await call_status(shelving_state, timed, ua.Variant(60_000.0, ua.VariantType.Double))
        == StatusCodes.BadUserAccessDenied
    )
    eng_shelving = sessions["engineer"].get_node(shelving_state.nodeid)
    assert await call_status(eng_shelving, timed, ua.Variant(60_000.0, ua.VariantType.Double)) == 0
    shelved = await events.wait(lambda e: is_level(e) and e["SuppressedOrShelved"], "shelved")
    assert shelved["ShelvingState/CurrentState/Id"] == numeric_id(
        ObjectIds.ShelvedStateMachineType_TimedShelved
    )
    assert shelved["ClientUserId"] == "engineer"
    assert (
        await call_status(eng_shelving, timed, ua.Variant(60_000.0, ua.VariantType.Double))
        == StatusCodes.BadConditionAlreadyShelved
    )
    assert await call_status(eng_shelving, ObjectIds.ShelvedStateMachineType_Unshelve) == 0
    assert (
        await call_status(eng_shelving, ObjectIds.ShelvedStateMachineType_Unshelve)
        == StatusCodes.BadConditionNotShelved
    )
    assert (
        await call_status(eng_shelving, timed, ua.Variant(9 * 3600_000.0, ua.VariantType.Double))
        == StatusCodes.BadShelvingTimeOutOfRange
    )
    assert await call_status(eng_shelving, ObjectIds.ShelvedStateMachineType_OneShotShelve) == 0

    # --- Disable / Enable (out of service): engineer only ---------------------------------
    gas = await op.nodes.objects.get_child(
        [
            f"{ns}:PlantGuard",
            f"{ns}:demo",
            f"{ns}:process",
            f"{ns}:gas1",
            f"{ns}:Alarms",
            f"{ns}:lel.limit",
        ]
    )
    assert (
        await call_status(gas, ObjectIds.ConditionType_Disable) == StatusCodes.BadUserAccessDenied
    )
    eng_gas = sessions["engineer"].get_node(gas.nodeid)
    assert await call_status(eng_gas, ObjectIds.ConditionType_Disable) == 0
    assert (
        await call_status(eng_gas, ObjectIds.ConditionType_Disable)
        == StatusCodes.BadConditionAlreadyDisabled
    )
    assert await call_status(eng_gas, ObjectIds.ConditionType_Enable) == 0
    # condition variables follow the events
    assert await (await gas.get_child(["0:EnabledState", "0:Id"])).read_value() is True

    # --- the journal has who, when and why ---------------------------------------------------
    entries = [e for e in journal(gateway.db, capsys) if e["alarm"] == "tank1.level.limit"]
    by_action = {e["action"]: e for e in entries}
    assert by_action["acknowledge"]["user"] == "operator"
    assert by_action["acknowledge"]["comment"] == "tank checked on site"
    assert by_action["confirm"]["user"] == "operator"
    assert by_action["shelve"]["user"] == "engineer"
    assert by_action["shelve"]["shelved_until"]
    assert {"time", "alarm", "action", "transition", "user", "comment"} <= set(entries[0])
