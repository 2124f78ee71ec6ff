"""Point writes from an OPC UA client reach the device only through the engine's write
path: operator role or above, writable points only, every attempt traced."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from asyncua_typed import string_id

from plantguard.auth import DEMO_USERS, ensure_users
from plantguard.events import default_bus
from plantguard.store import Store
from plantguard.testing import RunningSite, free_tcp_port, wait_for


def _site(sim: int, opcua: int) -> str:
    return f"""
id: plant
poll_groups: {{default: {{interval: 0.1}}}}
services:
  sim: {{port: {sim}, scenario: none}}
  opcua: {{port: {opcua}, security: [none], anonymous: true}}
areas:
  - id: yard
    devices:
      - id: pump1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 1}}
        points:
          - {{id: current, address: {{register: 0}}}}
          - {{id: running, data_type: bool, access: read_write, address: {{register: 6}}}}
"""


async def _write(endpoint: str, user: str | None, point: str, value: object) -> int:
    client = Client(endpoint)
    if user:
        client.set_user(user)
        client.set_password(user)
    async with client:
        ns = await client.get_namespace_index("urn:plantguard")
        node = client.get_node(string_id(f"plant/yard/pump1/Points/{point}", ns))
        variant = ua.Variant(
            value, ua.VariantType.Boolean if isinstance(value, bool) else ua.VariantType.Double
        )
        try:
            await node.write_value(ua.DataValue(variant))
        except UaStatusCodeError as exc:
            return int(exc.code)
        return int(StatusCodes.Good)


async def test_writes_are_role_checked_and_reach_the_device(
    running_site: RunningSite, tmp_path: Path
) -> None:
    db = str(tmp_path / "w.db")
    store = Store(db)
    ensure_users(store.users, DEMO_USERS)
    store.close()
    sim, opcua = free_tcp_port(), free_tcp_port()
    reader = default_bus().reader()
    async with running_site(_site(sim, opcua), db=db) as engine:
        endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
        running = engine.table.index["pump1.running"]
        await wait_for(lambda: engine.table.values[running] == 1.0)

        assert await _write(endpoint, None, "running", False) == StatusCodes.BadUserAccessDenied
        assert await _write(endpoint, "viewer", "running", False) == StatusCodes.BadUserAccessDenied
        assert await _write(endpoint, "operator", "current", 3.0) == StatusCodes.BadNotWritable
        assert engine.table.values[running] == 1.0  # nothing reached the device

        assert await _write(endpoint, "operator", "running", False) == StatusCodes.Good
        await wait_for(lambda: engine.table.values[running] == 0.0)

    traced = [(e.source, e.user, e.detail["outcome"]) for e in reader.drain() if e.kind == "write"]
    assert traced == [
        ("pump1.running", "", "denied"),
        ("pump1.running", "viewer", "denied"),
        ("pump1.current", "operator", "read-only"),
        ("pump1.running", "operator", "written"),
    ]


async def test_write_point_errors_without_opcua(running_site: RunningSite) -> None:
    from plantguard import writes
    from plantguard.auth import Principal, Role

    sim = free_tcp_port()
    site = _site(sim, free_tcp_port()).replace("  opcua: {port: ", "  #opcua: {port: ")
    async with running_site(site) as engine:
        operator = Principal("op", Role.OPERATOR)
        with pytest.raises(writes.UnknownPoint):
            await engine.write_point("pump1.nope", 1.0, operator)
        with pytest.raises(writes.WriteDenied, match="an anonymous session may not write"):
            await engine.write_point(
                "pump1.running", 1.0, Principal("", Role.VIEWER, authenticated=False)
            )
