"""Maintenance and Statistics nodes and RecordMaintenance, through a real engine,
a real OPC UA server and an asyncua client."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from asyncua_typed import numeric_id, string_id

import plantguard
from plantguard.auth import DEMO_USERS, ensure_users
from plantguard.records.models import DeviceRecord, MaintenancePlan
from plantguard.store import Store
from plantguard.testing import RunningSite, free_tcp_port


def _site(sim: int, opcua: int) -> str:
    return f"""
id: plant
poll_groups: {{default: {{interval: 0.2}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  opcua: {{port: {opcua}, security: [none], anonymous: true}}
areas:
  - id: yard
    devices:
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, address: {{register: 0}}}}
"""


def _seed(db: str) -> None:
    store = Store(db)
    store.records.upsert_devices([DeviceRecord(id="tank1")], user="test")
    store.records.upsert_plans(
        [
            MaintenancePlan(id="tank1-insp", device_id="tank1", kind="inspection", title="Wall thickness",
                            trigger="calendar", interval=365, lead=30, start=dt.date(2020, 1, 1)),
            MaintenancePlan(id="tank1-runtime", device_id="tank1", title="Mixer service",
                            trigger="runtime", interval=500, point="tank1.level"),
        ]
    )  # fmt: skip
    ensure_users(store.users, DEMO_USERS)
    store.close()


async def _read(client: Client, ns: int, identifier: str) -> object:
    return await client.get_node(string_id(identifier, ns)).read_value()


async def test_maintenance_nodes_and_record_maintenance(
    running_site: RunningSite, tmp_path: Path
) -> None:
    db = str(tmp_path / "r.db")
    _seed(db)
    sim, opcua = free_tcp_port(), free_tcp_port()
    async with running_site(_site(sim, opcua), db=db) as engine:
        endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
        device = "plant/yard/tank1"
        async with Client(endpoint) as client:
            ns = await client.get_namespace_index("urn:plantguard")
            assert await _read(client, ns, f"{device}/Maintenance#Overdue") is True
            assert await _read(client, ns, f"{device}/Maintenance#PlansDue") == 1
            assert await _read(client, ns, f"{device}/Maintenance/tank1-insp#State") == "overdue"
            assert await _read(client, ns, f"{device}/Maintenance/tank1-insp#Kind") == "inspection"
            assert await _read(client, ns, f"{device}/Maintenance#NextDue") == dt.datetime(
                2020, 1, 1, tzinfo=dt.UTC
            )
            assert await _read(client, ns, "plant/Maintenance#Overdue") == 1
            # A plan without a due date (a meter plan) reads as a null DateTime, not an error.
            assert await _read(client, ns, f"{device}/Maintenance/tank1-runtime#DueAt") is None
            assert await _read(client, ns, f"{device}/Maintenance/tank1-runtime#State") == "idle"
            build = await client.get_node(
                numeric_id(ObjectIds.Server_ServerStatus_BuildInfo)
            ).read_value()
            assert (build.ManufacturerName, build.SoftwareVersion) == (
                "PlantGuard",
                plantguard.__version__,
            )
            assert await _read(client, ns, "plant/Statistics#Devices") == 1
            # Anonymous sessions may read, not record.
            method = client.get_node(string_id(f"{device}.RecordMaintenance", ns))
            node = client.get_node(string_id(device, ns))
            with pytest.raises(UaStatusCodeError) as refused:
                await node.call_method(
                    method.nodeid, "tank1-insp", "UT gauge", "", "true", "C-1", ""
                )
            assert refused.value.code == StatusCodes.BadUserAccessDenied

        client = Client(endpoint)
        client.set_user("operator")
        client.set_password("operator")
        async with client:
            ns = await client.get_namespace_index("urn:plantguard")
            node = client.get_node(string_id(device, ns))
            method = client.get_node(string_id(f"{device}.RecordMaintenance", ns))
            with pytest.raises(UaStatusCodeError) as refused:
                await node.call_method(method.nodeid, "nope", "", "", "", "", "")
            assert refused.value.code == StatusCodes.BadInvalidArgument
            record_id = await node.call_method(
                method.nodeid, "tank1-insp", "UT gauge, 12 points", "", "true", "C-1", ""
            )
            assert await _read(client, ns, f"{device}/Maintenance#Overdue") is False
            assert await _read(client, ns, f"{device}/Maintenance/tank1-insp#State") == "ok"
            last_done = await _read(client, ns, f"{device}/Maintenance#LastDone")
            assert isinstance(last_done, dt.datetime)

        [record] = engine.store.records.records(device_id="tank1")
        assert record.id == record_id
        assert (record.performer, record.passed, record.certificate_number) == (
            "operator",
            True,
            "C-1",
        )
        assert record.kind == "inspection"
