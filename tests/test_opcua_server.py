"""The OPC UA service against a real asyncua client on 127.0.0.1.

The engine is replaced by a minimal :class:`EngineView` that owns a real value
table and alarm manager and calls the values listeners after each
``table.update``, as the engine does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from opcua_engine import FakeEngine
from pydantic import BaseModel, ValidationError

from plantguard.errors import PortInUse
from plantguard.model import Quality, Site
from plantguard.services import ServiceType
from plantguard_opcua import NAMESPACE_URI, OpcUaOptions, OpcUaService
from plantguard_opcua.plugin import OpcUaServiceType, plantguard_register_services
from plantguard_opcua.quality import status_value
from plantguard_opcua.units import unece_unit_id

pytestmark = pytest.mark.integration

SITE: dict[str, Any] = {
    "id": "demo",
    "name": "Demo plant",
    "areas": [
        {
            "id": "utilities",
            "name": "Utilities",
            "devices": [
                {
                    "id": "pump1",
                    "name": "Cooling water pump 1",
                    "category": "pump",
                    "driver": "modbus",
                    "info": {
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
                    "points": [
                        {"id": "current", "name": "Motor current", "unit": "A", "range": [0, 50]},
                        {"id": "running", "name": "Running", "data_type": "bool"},
                        {"id": "starts", "name": "Start count", "data_type": "int"},
                    ],
                },
                {
                    "id": "comp1",
                    "name": "Air compressor",
                    "category": "compressor",
                    "driver": "modbus",
                    "info": {"manufacturer": "Atlas Copco", "status": "standby"},
                    "points": [{"id": "pressure", "name": "Outlet pressure", "unit": "bar"}],
                },
            ],
        },
        {
            "id": "boilerhouse",
            "name": "Boiler house",
            "devices": [
                {
                    "id": "boiler1",
                    "name": "Steam boiler",
                    "category": "boiler",
                    "driver": "modbus",
                    "points": [
                        {
                            "id": "temperature",
                            "name": "Drum temperature",
                            "unit": "°C",
                            "range": [0, 250],
                        }
                    ],
                }
            ],
        },
    ],
}

#: These tests are about the address space: an open endpoint (the secure defaults are
#: tested in test_opcua_security.py).
OPEN: dict[str, Any] = {"security": ["none"], "anonymous": True}


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(Site.model_validate(SITE))


@pytest.fixture
async def service(engine: FakeEngine) -> AsyncIterator[OpcUaService]:
    svc = OpcUaService(OpcUaOptions(host="127.0.0.1", port=0, **OPEN))
    await svc.start(engine)
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def client(service: OpcUaService) -> AsyncIterator[Client]:
    async with Client(service.endpoint) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client() -> AsyncIterator[Client]:
    """One server and client for the tests that only read the address space (starts cost ~2 s)."""
    svc = OpcUaService(OpcUaOptions(port=0, **OPEN))
    await svc.start(FakeEngine(Site.model_validate(SITE)))
    try:
        async with Client(svc.endpoint) as c:
            yield c
    finally:
        await svc.stop()


async def _ns(client: Client) -> int:
    index: int = await client.get_namespace_index(NAMESPACE_URI)
    return index


async def _node(client: Client, *path: str) -> Any:
    ns = await _ns(client)
    return await client.nodes.objects.get_child([f"{ns}:PlantGuard", *(f"{ns}:{p}" for p in path)])


def _sid(identifier: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(identifier), ua.Int16(ns))


PUMP = ("demo", "utilities", "pump1")


# --- address space ----------------------------------------------------------------


async def test_endpoint_is_the_configured_url_with_the_bound_port(service: OpcUaService) -> None:
    assert service.endpoint.startswith("opc.tcp://127.0.0.1:")
    assert service.endpoint.endswith("/plantguard")
    assert int(service.endpoint.split(":")[2].split("/")[0]) > 0


@pytest.mark.asyncio(loop_scope="module")
class TestAddressSpace:
    """Browse names, NodeIds and metadata, read from one shared server."""

    async def test_browse_path_resolves_to_the_device(self, shared_client: Client) -> None:
        ns = await _ns(shared_client)
        device = await _node(shared_client, *PUMP)
        assert device.nodeid == _sid("demo/utilities/pump1", ns)
        assert (await device.read_display_name()).Text == "Cooling water pump 1"
        area = await _node(shared_client, "demo", "utilities")
        children = {(await c.read_browse_name()).Name for c in await area.get_children()}
        assert children == {"pump1", "comp1"}
        boiler = await _node(shared_client, "demo", "boilerhouse", "boiler1")
        assert (await boiler.read_display_name()).Text == "Steam boiler"

    async def test_device_properties_read_back_configured_values(
        self, shared_client: Client
    ) -> None:
        expected = {
            "Manufacturer": "Grundfos",
            "Model": "CR 15-3",
            "SerialNumber": "SN-4711",
            "HardwareRevision": "B2",
            "SoftwareRevision": "3.1.4",
            "DeviceClass": "pump",
            "AssetId": "pump1",
            "Location": "B1 › G › bay 3",
            "Responsible": "Li Wei",
            "SafetyCritical": True,
            "Status": "in_service",
            "CommissioningDate": dt.datetime(2021, 5, 17, tzinfo=dt.UTC),
        }
        read = {
            name: await (await _node(shared_client, *PUMP, name)).read_value() for name in expected
        }
        assert read == expected
        ns = await _ns(shared_client)
        manufacturer = await _node(shared_client, *PUMP, "Manufacturer")
        assert manufacturer.nodeid == _sid("demo/utilities/pump1#Manufacturer", ns)

    async def test_unset_device_information_reads_empty_or_null(
        self, shared_client: Client
    ) -> None:
        comp = ("demo", "utilities", "comp1")
        assert (
            await (await _node(shared_client, *comp, "Manufacturer")).read_value() == "Atlas Copco"
        )
        assert await (await _node(shared_client, *comp, "SerialNumber")).read_value() == ""
        assert await (await _node(shared_client, *comp, "Status")).read_value() == "standby"
        assert await (await _node(shared_client, *comp, "CommissioningDate")).read_value() is None

    async def test_point_variables_carry_type_units_and_range(self, shared_client: Client) -> None:
        ns = await _ns(shared_client)
        current = await _node(shared_client, *PUMP, "Points", "current")
        assert current.nodeid == _sid("demo/utilities/pump1/Points/current", ns)
        assert await current.read_data_type_as_variant_type() == ua.VariantType.Double
        assert (await current.read_description()).Text == "Motor current"
        eu = await (
            await _node(shared_client, *PUMP, "Points", "current", "EngineeringUnits")
        ).read_value()
        assert eu.DisplayName.Text == "A"
        assert eu.UnitId == unece_unit_id("A") == 0x414D50
        eu_range = await (
            await _node(shared_client, *PUMP, "Points", "current", "EURange")
        ).read_value()
        assert (eu_range.Low, eu_range.High) == (0.0, 50.0)

        running = await _node(shared_client, *PUMP, "Points", "running")
        assert await running.read_data_type_as_variant_type() == ua.VariantType.Boolean
        starts = await _node(shared_client, *PUMP, "Points", "starts")
        assert await starts.read_data_type_as_variant_type() == ua.VariantType.Int64
        prop_names = {(await p.read_browse_name()).Name for p in await starts.get_properties()}
        assert prop_names == {"EngineeringUnits"}  # no range configured, so no EURange

        temp = await (
            await _node(
                shared_client, "demo", "boilerhouse", "boiler1", "Points", "temperature", "EURange"
            )
        ).read_value()
        assert (temp.Low, temp.High) == (0.0, 250.0)

    async def test_points_start_waiting_for_initial_data(self, shared_client: Client) -> None:
        dv = await (await _node(shared_client, *PUMP, "Points", "current")).read_data_value(
            raise_on_bad_status=False
        )
        assert dv.StatusCode.value == StatusCodes.BadWaitingForInitialData


# --- live values ------------------------------------------------------------------

T0 = 1_700_000_000.25


async def test_table_update_reaches_a_client_read(engine: FakeEngine, client: Client) -> None:
    await engine.push({"pump1.current": 12.5, "pump1.running": 1.0, "pump1.starts": 42.0}, time=T0)
    current = await _node(client, *PUMP, "Points", "current")
    dv = await current.read_data_value()
    assert dv.Value.Value == 12.5
    assert dv.Value.VariantType == ua.VariantType.Double
    assert dv.StatusCode.is_good()
    assert dv.SourceTimestamp == dt.datetime.fromtimestamp(T0, tz=dt.UTC)
    assert dv.ServerTimestamp is not None
    assert await (await _node(client, *PUMP, "Points", "running")).read_value() is True
    starts = await (await _node(client, *PUMP, "Points", "starts")).read_data_value()
    assert (starts.Value.Value, starts.Value.VariantType) == (42, ua.VariantType.Int64)


class _Changes:
    """A subscription handler that queues (node id, DataValue) of each notification."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.queue.put_nowait((node.nodeid.Identifier, data.monitored_item.Value))

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout=5)


async def test_table_update_reaches_a_subscription(engine: FakeEngine, client: Client) -> None:
    handler = _Changes()
    subscription = await client.create_subscription(20, handler)
    current = await _node(client, *PUMP, "Points", "current")
    await subscription.subscribe_data_change(current)
    _, initial = await handler.next()
    assert initial.StatusCode.value == StatusCodes.BadWaitingForInitialData

    await engine.push({"pump1.current": 33.0}, time=T0 + 1)
    node_id, dv = await handler.next()
    assert node_id == "demo/utilities/pump1/Points/current"
    assert dv.Value.Value == 33.0
    assert dv.SourceTimestamp == dt.datetime.fromtimestamp(T0 + 1, tz=dt.UTC)
    await subscription.delete()


async def test_bad_quality_shows_as_mapped_status_code(engine: FakeEngine, client: Client) -> None:
    current = await _node(client, *PUMP, "Points", "current")
    await engine.push({"pump1.current": 10.0}, time=T0)
    await engine.lose(["pump1.current"], Quality.BAD_COMMUNICATION_ERROR, T0 + 5)
    dv = await current.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == StatusCodes.BadCommunicationError
    assert dv.SourceTimestamp == dt.datetime.fromtimestamp(T0 + 5, tz=dt.UTC)
    with pytest.raises(UaStatusCodeError):
        await current.read_data_value()

    await engine.push({"pump1.current": 11.0}, Quality.UNCERTAIN_LAST_USABLE, T0 + 6)
    dv = await current.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == StatusCodes.UncertainLastUsableValue
    assert dv.Value.Value == 11.0


async def test_nan_int_point_keeps_its_last_value(engine: FakeEngine, client: Client) -> None:
    starts = await _node(client, *PUMP, "Points", "starts")
    await engine.push({"pump1.starts": 7.0}, time=T0)
    await engine.push({"pump1.starts": float("nan")}, Quality.UNCERTAIN, T0 + 1)
    dv = await starts.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == StatusCodes.Uncertain
    assert (dv.Value.Value, dv.Value.VariantType) == (7, ua.VariantType.Int64)


def test_every_quality_maps_to_its_status_code() -> None:
    codes = StatusCodes
    expected = {
        Quality.GOOD: codes.Good,
        Quality.UNCERTAIN: codes.Uncertain,
        Quality.UNCERTAIN_LAST_USABLE: codes.UncertainLastUsableValue,
        Quality.UNCERTAIN_SENSOR_NOT_ACCURATE: codes.UncertainSensorNotAccurate,
        Quality.BAD: codes.Bad,
        Quality.BAD_WAITING_FOR_INITIAL_DATA: codes.BadWaitingForInitialData,
        Quality.BAD_COMMUNICATION_ERROR: codes.BadCommunicationError,
        Quality.BAD_NOT_CONNECTED: codes.BadNotConnected,
        Quality.BAD_DEVICE_FAILURE: codes.BadDeviceFailure,
        Quality.BAD_CONFIGURATION_ERROR: codes.BadConfigurationError,
        Quality.BAD_OUT_OF_SERVICE: codes.BadOutOfService,
    }
    assert {q: status_value(q) for q in Quality} == expected
    assert status_value(70) == codes.Uncertain
    assert status_value(200) == codes.Bad


# --- lifecycle --------------------------------------------------------------------


async def _all_node_ids(client: Client) -> list[str]:
    """Every NodeId below PlantGuard, as ``nsu=<uri>;s=...`` strings in browse order."""
    namespaces = await client.get_namespace_array()
    found: list[str] = []
    pending = [await _node(client)]
    while pending:
        node = pending.pop(0)
        found.append(f"nsu={namespaces[node.nodeid.NamespaceIndex]};s={node.nodeid.Identifier}")
        pending.extend(await node.get_children())
    return found


async def test_node_ids_are_identical_across_restarts(engine: FakeEngine) -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        svc = OpcUaService(OpcUaOptions(port=0, **OPEN))
        await svc.start(engine)
        try:
            async with Client(svc.endpoint) as c:
                runs.append(await _all_node_ids(c))
        finally:
            await svc.stop()
    first, second = runs
    assert first == second
    # root, site, 2 areas; 3 devices with 12 properties and Points each; 5 points; 6 unit/range
    assert len(first) == 4 + 3 * (1 + 12 + 1) + 5 + 6
    assert f"nsu={NAMESPACE_URI};s=demo/boilerhouse/boiler1/Points/temperature#EURange" in first
    assert f"nsu={NAMESPACE_URI};s=/" == first[0]


async def test_stop_leaves_no_tasks_and_closes_the_port(engine: FakeEngine) -> None:
    before = asyncio.all_tasks()
    svc = OpcUaService(OpcUaOptions(port=0, **OPEN))
    await svc.start(engine)
    endpoint = svc.endpoint
    async with Client(endpoint) as c:
        await _node(c, *PUMP)
    await svc.stop()
    await asyncio.sleep(0)
    assert svc.endpoint == ""
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leftover, leftover
    with pytest.raises((OSError, asyncio.TimeoutError)):
        async with Client(endpoint, timeout=2):
            pass
    await svc.stop()  # a second stop is harmless
    await engine.push({"pump1.current": 1.0}, time=T0)  # the old listener is inert


async def test_failed_start_cleans_up(engine: FakeEngine) -> None:
    before = asyncio.all_tasks()
    first = OpcUaService(OpcUaOptions(port=0, **OPEN))
    await first.start(engine)
    try:
        port = int(first.endpoint.split(":")[2].split("/")[0])
        second = OpcUaService(OpcUaOptions(port=port, **OPEN))
        with pytest.raises(PortInUse, match="the port is in use"):
            await second.start(engine)
        await second.stop()
    finally:
        await first.stop()
    await asyncio.sleep(0)
    assert not asyncio.all_tasks() - before - {asyncio.current_task()}


# --- plugin -----------------------------------------------------------------------


def test_plugin_registers_the_opcua_service_type() -> None:
    registered: dict[str, ServiceType] = {}

    def register(name: str, service_type: ServiceType) -> None:
        registered[name] = service_type

    plantguard_register_services(register)
    service_type = registered["opcua"]
    assert isinstance(service_type, OpcUaServiceType)
    assert service_type.order == 50
    options: BaseModel = service_type.options_model.model_validate({"port": 4841})
    service = service_type.create(options)
    assert isinstance(service, OpcUaService)
    assert service.options.endpoint() == "opc.tcp://127.0.0.1:4841/plantguard"
    with pytest.raises(ValidationError):
        service_type.options_model.model_validate({"port": 70000})
    with pytest.raises(ValidationError):
        service_type.options_model.model_validate({"security": "none"})
