"""``<site>.ReportHazard``: a hidden danger reported from an OPC UA client, through a
real engine (with the risk plugin's ``safety_index`` service as the reporter), a real
asyncua server and client, and a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from asyncua_typed import string_id
from opcua_engine import FakeEngine

from plantguard.auth import DEMO_USERS, Principal, Role, ensure_users
from plantguard.errors import PermissionDenied, StoreError, UsageError
from plantguard.model import Site
from plantguard.store import Store
from plantguard.store.risk import RiskStore
from plantguard.testing import RunningSite, free_tcp_port
from plantguard_opcua import OpcUaOptions, OpcUaService, hazards
from plantguard_opcua.hazards import (
    METHOD,
    HazardReporter,
    find_reporter,
    status_of,
)
from plantguard_risk.device import IndexService
from plantguard_risk.index import IndexSettings
from plantguard_risk.reporting import HazardReporting


def _site(sim: int, opcua: int, *, reporter: bool = True) -> str:
    index = "  safety_index: {}\n" if reporter else ""
    return f"""
id: plant
poll_groups: {{default: {{interval: 0.2}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  opcua: {{port: {opcua}, security: [none], anonymous: true}}
{index}areas:
  - id: yard
    devices:
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, address: {{register: 0}}}}
      - id: tank2
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, address: {{register: 0}}}}
"""


def _users(db: str) -> None:
    store = Store(db)
    ensure_users(store.users, DEMO_USERS)
    store.close()


def _client(endpoint: str, user: str | None) -> Client:
    client = Client(endpoint)
    if user is not None:
        client.set_user(user)
        client.set_password(user)
    return client


async def _call(client: Client, *args: str) -> object:
    ns = await client.get_namespace_index("urn:plantguard")
    site: Node = client.get_node(string_id("plant", ns))
    return await site.call_method(string_id(f"plant.{METHOD}", ns), *args)


async def _refused(client: Client, *args: str) -> int:
    with pytest.raises(UaStatusCodeError) as refused:
        await _call(client, *args)
    return int(refused.value.code)


async def test_operator_reports_and_the_report_is_journalled(
    running_site: RunningSite, tmp_path: Path
) -> None:
    db = str(tmp_path / "h.db")
    _users(db)
    sim, opcua = free_tcp_port(), free_tcp_port()
    async with running_site(_site(sim, opcua), db=db) as engine:
        endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
        async with _client(endpoint, "operator") as client:
            ns = await client.get_namespace_index("urn:plantguard")
            method = client.get_node(string_id(f"plant.{METHOD}", ns))
            inputs = await (await method.get_child(["0:InputArguments"])).read_value()
            assert [a.Name for a in inputs] == ["Title", "Description", "Device", "Point"]
            hazard_id = await _call(
                client,
                "  Guard missing on tank 1 ladder ",
                "seen at the 06:00 round",
                "",
                "tank1.level",
            )
            plain = await _call(client, "Oil on the floor", "", "tank2", "")
        risks = RiskStore(engine.store.engine)
        assert isinstance(hazard_id, str)
        assert hazard_id.startswith("HD-")
        hazard = risks.hazard(hazard_id)
        assert hazard is not None
        assert (hazard.title, hazard.state, hazard.reported_by, hazard.source) == (
            "Guard missing on tank 1 ladder",
            "reported",
            "operator",
            "person",
        )
        assert hazard.description == "seen at the 06:00 round"
        # The point names its device.
        assert (hazard.device_id, hazard.point_id) == ("tank1", "tank1.level")
        [entry] = risks.journal(hazard_id)
        assert (entry.action, entry.state_before, entry.state_after, entry.user) == (
            "report",
            "",
            "reported",
            "operator",
        )
        other = risks.hazard(str(plain))
        assert other is not None
        assert (other.device_id, other.point_id, other.reported_by) == ("tank2", None, "operator")


async def test_refusals_write_nothing(running_site: RunningSite, tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    _users(db)
    sim, opcua = free_tcp_port(), free_tcp_port()
    async with running_site(_site(sim, opcua), db=db) as engine:
        endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
        good = ("Guard missing", "", "tank1", "tank1.level")
        for user in ("viewer", None):
            async with _client(endpoint, user) as client:
                assert await _refused(client, *good) == StatusCodes.BadUserAccessDenied
                # A viewer learns nothing about devices: the role is checked first.
                assert (
                    await _refused(client, "x", "", "nope", "") == StatusCodes.BadUserAccessDenied
                )
        async with _client(endpoint, "operator") as client:
            for args in (
                ("", "", "tank1", ""),  # no title
                ("   ", "", "", ""),
                ("Guard missing", "", "pump9", ""),  # unknown device
                ("Guard missing", "", "", "tank1.nope"),  # unknown point
                ("Guard missing", "", "tank2", "tank1.level"),  # a point of another device
            ):
                assert await _refused(client, *args) == StatusCodes.BadInvalidArgument, args
            assert await _refused(client, "too", "few") == StatusCodes.BadArgumentsMissing
        risks = RiskStore(engine.store.engine)
        assert risks.hazards() == []
        assert risks.journal() == []


async def test_no_method_without_a_reporter(running_site: RunningSite, tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    _users(db)
    sim, opcua = free_tcp_port(), free_tcp_port()
    async with running_site(_site(sim, opcua, reporter=False), db=db) as engine:
        assert find_reporter(engine) is None
        async with _client(f"opc.tcp://127.0.0.1:{opcua}/plantguard", "operator") as client:
            ns = await client.get_namespace_index("urn:plantguard")
            names = [
                (await child.read_browse_name()).Name
                for child in await client.get_node(string_id("plant", ns)).get_children()
            ]
            assert "yard" in names
            assert METHOD not in names


def test_the_index_service_is_a_reporter_only_once_started() -> None:
    service = IndexService(IndexSettings())
    assert isinstance(service, HazardReporter)

    class NoServices:
        pass

    assert find_reporter(NoServices()) is None  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="not running with a store"):
        service.report_hazard(Principal("op", Role.OPERATOR), "Guard missing")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PermissionDenied("viewer"), StatusCodes.BadUserAccessDenied),
        (UsageError("no title"), StatusCodes.BadInvalidArgument),
        (StoreError("database gone"), StatusCodes.BadInternalError),
    ],
)
def test_refusals_map_to_status_codes(error: StoreError, code: int) -> None:
    assert status_of(error) == code


async def test_a_failed_method_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site.model_validate({"id": "plant", "areas": [{"id": "yard", "devices": []}]})
    store = Store(str(tmp_path / "h.db"))

    class Engine(FakeEngine):
        services: ClassVar[dict[str, object]] = {"safety_index": IndexService(IndexSettings())}

    async def broken(*_args: object) -> None:
        raise RuntimeError("cannot add the method")

    monkeypatch.setattr(hazards, "add_report_hazard", broken)
    service = OpcUaService(
        OpcUaOptions(host="127.0.0.1", port=0, security=["none"], anonymous=True)
    )
    try:
        with pytest.raises(RuntimeError, match="cannot add"):
            await service.start(Engine(site, store=store))
        assert service.server is None
        assert service.endpoint == ""
    finally:
        store.close()


def test_reporter_checks_before_it_writes(store_target: str) -> None:
    """The reporter on its own, on SQLite and (with the CI variable) PostgreSQL."""
    site = Site.model_validate(
        {
            "id": "plant",
            "areas": [
                {
                    "id": "yard",
                    "devices": [
                        {"id": d, "driver": "modbus", "points": [{"id": "level"}]}
                        for d in ("tank1", "tank2")
                    ],
                }
            ],
        }
    )
    store = Store(store_target)
    try:
        store.records.sync_site(site)
        store.register_points(site.points)
        reporter = HazardReporting(store, lambda: 1_790_000_000.0)
        operator = Principal("op1", Role.OPERATOR)
        refused: list[tuple[Principal, str, str, str]] = [
            (Principal("v", Role.VIEWER), "Guard missing", "tank1", ""),
            (operator, " ", "tank1", ""),
            (operator, "Guard missing", "tank9", ""),
            (operator, "Guard missing", "", "tank1.nope"),
            (operator, "Guard missing", "tank2", "tank1.level"),
        ]
        for principal, title, device, point in refused:
            with pytest.raises((PermissionDenied, UsageError)):
                reporter.report_hazard(principal, title, device=device, point=point)
        risks = RiskStore(store.engine)
        assert risks.hazards() == []
        hazard_id = reporter.report_hazard(
            operator, "Guard missing", description=" ladder ", point="tank2.level"
        )
        hazard = risks.hazard(hazard_id)
        assert hazard is not None
        assert (hazard.device_id, hazard.point_id, hazard.description) == (
            "tank2",
            "tank2.level",
            "ladder",
        )
        assert hazard_id.startswith("HD-20260921-")
        assert [e.user for e in risks.journal(hazard_id)] == ["op1"]
    finally:
        store.close()
