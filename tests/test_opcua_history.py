"""OPC UA Historical Access: the real service on a real SQLite store, asyncua as the client.

History is written with ``Store.write_history`` and alarm transitions go through a
real :class:`AlarmManager` journalling into the same store, at fixed times long
past (so no interval reaches the server's clock).  Every expectation is computed
here, in plain Python, from what the store returns (``Store.trend`` and
``Store.journal``) — never by the code under test; only the chunking test compares
the service with itself (tiny chunks and pages against one big read).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import Buffer
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaStatusCodeError
from asyncua_typed import numeric_id, status_of, string_id, value_of
from opcua_engine import FakeEngine

from plantguard.alarms import AlarmManager, AlarmState
from plantguard.model import AlarmDefinition, Finding, Priority, Quality, Site
from plantguard.store import Store, Trend
from plantguard_opcua import NAMESPACE_URI, OpcUaOptions, OpcUaService
from plantguard_opcua.history import HistoryLimits, HistoryService
from plantguard_opcua.quality import status_value

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SITE: dict[str, Any] = {
    "id": "plant",
    "areas": [
        {
            "id": "yard",
            "devices": [
                {
                    "id": "pump1",
                    "driver": "modbus",
                    "points": [
                        {"id": "current", "unit": "A", "range": [0, 50]},
                        {"id": "running", "data_type": "bool"},
                        {"id": "starts", "data_type": "int"},
                    ],
                },
                {"id": "tank1", "driver": "modbus", "points": [{"id": "level", "unit": "%"}]},
            ],
        }
    ],
}
ALARMS = [
    AlarmDefinition(
        id="tank1.level.limit", source_id="tank1.level", device_id="tank1", kind="limit",
        rule="limit", priority=Priority.HIGH,
    ),
    AlarmDefinition(
        id="pump1.running.off", source_id="pump1.running", device_id="pump1", kind="discrete",
        rule="discrete", priority=Priority.LOW,
    ),
]  # fmt: skip

#: Long past: no processing interval reaches the server's clock.
T0 = 1_700_000_000.0
N_CURRENT = 600
#: Samples every 0.75 s: every 40th lies on a 30 s boundary (Raw bits, exact bounds).
STEP = 0.75
#: Alarm transitions, after the samples.
TA = T0 + 1000.0
#: A day of one-second samples of tank1.level.
DAY = T0 + 100_000.0

_S = StatusCodes
_INFO, _CALC, _INTERP, _PARTIAL, _MULTI = 0x400, 0x1, 0x2, 0x4, 0x10


def _quality(i: int) -> int:
    if i % 97 == 5 or i == 80:  # 80: on an interval start, the interpolation skips it
        return int(Quality.BAD_COMMUNICATION_ERROR)
    if i % 71 == 7:
        return int(Quality.UNCERTAIN)
    return int(Quality.GOOD)


def _write_history(store: Store) -> None:
    keys = store.register_points(Site.model_validate(SITE).points)
    # float64 sample numbers: the times and values made from them are float64, as stored
    i = np.arange(N_CURRENT, dtype=np.float64)
    quality = np.array([_quality(k) for k in range(N_CURRENT)], dtype=np.uint8)
    value = np.round(20.0 + 5.0 * np.sin(i / 7.0), 3)
    value[quality >= Quality.BAD] = np.nan
    value[[100, 101]] = value[99]  # equal maxima side by side
    value[[240, 250]] = 10.0  # a Good minimum on an interval's start, twice
    store.write_history(np.full(N_CURRENT, keys["pump1.current"]), T0 + STEP * i, value, quality)
    n = 20
    steps = np.arange(n, dtype=np.float64)
    store.write_history(
        np.full(n, keys["pump1.starts"]), T0 + 10.0 * steps, steps * 3.0 + 0.7,
        np.zeros(n, dtype=np.uint8),
    )  # fmt: skip
    day = np.arange(86_400, dtype=np.float64)
    store.write_history(
        np.full(day.size, keys["tank1.level"]), DAY + day, np.round(50 + 10 * np.sin(day / 600), 4),
        np.zeros(day.size, dtype=np.uint8),
    )  # fmt: skip
    store.write_history(
        np.full(n, keys["pump1.running"]), T0 + 10.0 * steps, (steps % 2) * 1.0,
        np.zeros(n, dtype=np.uint8),
    )  # fmt: skip
    # Five samples at one instant (a device that reports faster than its clock ticks).
    store.write_history(
        np.full(5, keys["pump1.running"]), np.full(5, T0 + 500.0), np.array([1, 0, 1, 0, 1.0]),
        np.zeros(5, dtype=np.uint8),
    )  # fmt: skip


async def _journal_alarms(alarms: AlarmManager) -> None:
    """A level alarm's life (activate, change, acknowledge, confirm, clear) and a discrete alarm."""

    def finding(alarm: str, condition: str, t: float, severity: int = 700) -> Finding:
        return Finding(alarm, bool(condition), condition, severity if condition else 0,
                       f"{alarm} {condition or 'normal'}", 91.0, t)  # fmt: skip

    level, running = "tank1.level.limit", "pump1.running.off"
    await alarms.apply_findings([finding(level, "H", TA + 1)])
    await alarms.apply_findings([finding(running, "off", TA + 2, 250)])
    await alarms.apply_findings([finding(level, "HH", TA + 3, 900)])
    await alarms.acknowledge(level, user="olga", comment="seen it", now=TA + 4)
    await alarms.apply_findings([finding(level, "", TA + 5)])
    await alarms.acknowledge(running, user="olga", comment="", now=TA + 6)


class Gateway:
    def __init__(self, service: OpcUaService, engine: FakeEngine, client: Client, ns: int) -> None:
        assert engine.store is not None  # the gw fixture gives its engine a store
        self.service = service
        self.engine = engine
        self.store = engine.store
        self.client = client
        self.ns = ns

    def node(self, identifier: str) -> Any:
        return self.client.get_node(string_id(identifier, self.ns))

    def point(self, point: str) -> Any:
        device, local = point.split(".", 1)
        return self.node(f"plant/yard/{device}/Points/{local}")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("history") / "history.db"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(db: Path) -> AsyncIterator[Gateway]:
    store = Store(str(db))
    _write_history(store)
    engine = FakeEngine(
        Site.model_validate(SITE),
        alarms=lambda _table: AlarmManager(store, ALARMS, clock=lambda: TA),
        store=store,
    )
    service = OpcUaService(
        OpcUaOptions(host="127.0.0.1", port=0, security=["none"], anonymous=True)
    )
    await service.start(engine)
    await _journal_alarms(engine.alarms)
    try:
        async with Client(service.endpoint, timeout=30) as client:
            yield Gateway(service, engine, client, await client.get_namespace_index(NAMESPACE_URI))
    finally:
        await service.stop()
        store.close()


# --- helpers --------------------------------------------------------------------------------


def utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def rows(trend: Trend) -> list[tuple[float, float, int]]:
    return list(zip(trend.time.tolist(), trend.value.tolist(), trend.quality.tolist(), strict=True))


def expected_dv(t: float, value: float, quality: int) -> tuple[dt.datetime, Any, int]:
    """What a raw sample must read as: Bad carries no value, NaN is no value."""
    status = status_value(quality)
    bad = status & 0x80000000 or math.isnan(value)
    return utc(t), None if bad else value, status


def got(dvs: list[ua.DataValue]) -> list[tuple[dt.datetime | None, Any, int]]:
    return [
        (d.SourceTimestamp, d.Value.Value if d.Value is not None else None, status_of(d).value)
        for d in dvs
    ]


def raw_details(
    start: float | None, end: float | None, count: int = 0, bounds: bool = False
) -> ua.ReadRawModifiedDetails:
    details = ua.ReadRawModifiedDetails()
    details.IsReadModified = False
    details.StartTime = utc(start) if start is not None else ua.get_win_epoch()
    details.EndTime = utc(end) if end is not None else ua.get_win_epoch()
    details.NumValuesPerNode = count
    details.ReturnBounds = bounds
    return details


async def history_read(
    gw: Gateway,
    details: Any,
    *nodes: ua.NodeId,
    points: list[bytes | None] | None = None,
    release: bool = False,
    timestamps: ua.TimestampsToReturn = ua.TimestampsToReturn.Source,
) -> list[ua.HistoryReadResult]:
    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = details
    params.TimestampsToReturn = timestamps
    params.ReleaseContinuationPoints = release
    for n, node in enumerate(nodes):
        item = ua.HistoryReadValueId()
        item.NodeId = node
        item.ContinuationPoint = points[n] if points else None
        params.NodesToRead.append(item)
    results: list[ua.HistoryReadResult] = await gw.client.uaclient.history_read(params)
    return results


async def read_all(gw: Gateway, details: Any, node: ua.NodeId) -> tuple[list[Any], int]:
    """Follow continuation points to the end: every item, and how many responses it took."""
    out: list[Any] = []
    point: bytes | None = None
    pages = 0
    while True:
        [result] = await history_read(gw, details, node, points=[point])
        assert result.StatusCode.is_good(), result.StatusCode
        data = result.HistoryData
        out.extend(data.DataValues if isinstance(data, ua.HistoryData) else data.Events)
        pages += 1
        point = result.ContinuationPoint
        if not point:
            return out, pages


# --- raw values ---------------------------------------------------------------------------------


async def test_raw_values_and_timestamps_are_the_stores(gw: Gateway) -> None:
    start, end = T0 + 10.0, T0 + 300.0
    dvs = await gw.point("pump1.current").read_raw_history(
        utc(start), utc(end), return_bounds=False
    )
    trend = gw.store.trend("pump1.current", start, end)
    assert len(dvs) == len(trend) > 300
    assert got(dvs) == [expected_dv(*r) for r in rows(trend)]
    assert {d.Value.VariantType for d in dvs if d.Value.Value is not None} == {
        ua.VariantType.Double
    }
    assert any(d.StatusCode.value == _S.BadCommunicationError for d in dvs)
    assert any(d.StatusCode.value == _S.Uncertain for d in dvs)
    # Typed by the point's data type, as the live variables are.
    starts = await gw.point("pump1.starts").read_raw_history(utc(T0), utc(T0 + 100.0))
    assert [(d.Value.VariantType, d.Value.Value) for d in starts[:3]] == [
        (ua.VariantType.Int64, 0), (ua.VariantType.Int64, 3), (ua.VariantType.Int64, 6)
    ]  # fmt: skip
    running = await gw.point("pump1.running").read_raw_history(utc(T0), utc(T0 + 100.0))
    assert [d.Value.Value for d in running[:4]] == [False, True, False, True]
    # A page without a single value (sample 5 is Bad).
    [bad] = await gw.point("pump1.current").read_raw_history(
        utc(T0 + 5 * STEP), utc(T0 + 5.5 * STEP), return_bounds=False
    )
    assert (bad.Value.Value, bad.StatusCode.value) == (None, _S.BadCommunicationError)


async def test_timestamps_to_return(gw: Gateway) -> None:
    node = gw.point("pump1.current").nodeid
    details = raw_details(T0, T0 + 5.0)
    for asked in (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both):
        [result] = await history_read(gw, details, node, timestamps=asked)
        dvs = result.HistoryData.DataValues
        assert dvs
        assert all(d.SourceTimestamp is not None and d.ServerTimestamp is None for d in dvs)
    # The store keeps source timestamps only (Part 11 §4.3).
    for refused in (ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Neither):
        with pytest.raises(UaStatusCodeError) as err:
            await history_read(gw, details, node, timestamps=refused)
        assert err.value.code == _S.BadTimestampsToReturnInvalid


async def test_continuation_points_page_through_every_value_once(gw: Gateway) -> None:
    node = gw.point("pump1.current").nodeid
    start, end = T0, T0 + 400.0
    values, pages = await read_all(gw, raw_details(start, end, count=50), node)
    trend = gw.store.trend("pump1.current", start, end)
    assert got(values) == [expected_dv(*r) for r in rows(trend)]
    assert pages == math.ceil(len(trend) / 50) > 5
    times = [d.SourceTimestamp for d in values]
    assert len(set(times)) == len(times)


async def test_released_continuation_point_is_invalid(gw: Gateway) -> None:
    node = gw.point("pump1.current").nodeid
    details = raw_details(T0, T0 + 400.0, count=10)
    [first] = await history_read(gw, details, node)
    point = first.ContinuationPoint
    assert point
    assert len(first.HistoryData.DataValues) == 10
    [released] = await history_read(gw, details, node, points=[point], release=True)
    assert released.StatusCode.is_good()
    [again] = await history_read(gw, details, node, points=[point])
    assert again.StatusCode.value == _S.BadContinuationPointInvalid
    # A continuation point is for its own node only.
    [other] = await history_read(gw, details, node)
    [wrong] = await history_read(
        gw, details, gw.point("pump1.starts").nodeid, points=[other.ContinuationPoint]
    )
    assert wrong.StatusCode.value == _S.BadContinuationPointInvalid


async def test_bounding_values(gw: Gateway) -> None:
    node = gw.point("pump1.current")
    start, end = T0 + 10.1, T0 + 20.2  # between samples
    dvs = await node.read_raw_history(utc(start), utc(end), return_bounds=True)
    all_rows = rows(gw.store.trend("pump1.current"))
    before = [r for r in all_rows if r[0] < start][-1]
    inside = [r for r in all_rows if start <= r[0] < end]
    after = next(r for r in all_rows if r[0] >= end)
    assert got(dvs) == [expected_dv(*r) for r in [before, *inside, after]]
    # A sample exactly at the start time is the start bound itself, not repeated.
    exact = await node.read_raw_history(utc(T0 + 30.0), utc(T0 + 31.0), return_bounds=True)
    assert [d.SourceTimestamp for d in exact][:2] == [utc(T0 + 30.0), utc(T0 + 30.75)]
    # No data before the first sample or after the last: BadBoundNotFound placeholders.
    last = all_rows[-1][0]
    edge = await node.read_raw_history(utc(T0 - 5.0), utc(T0 + 1.0), return_bounds=True)
    assert (edge[0].SourceTimestamp, edge[0].StatusCode.value) == (
        utc(T0 - 5.0),
        _S.BadBoundNotFound,
    )
    assert edge[0].Value.Value is None
    tail = await node.read_raw_history(utc(last - 1.0), utc(last + 50.0), return_bounds=True)
    assert (tail[-1].SourceTimestamp, tail[-1].StatusCode.value) == (
        utc(last + 50.0),
        _S.BadBoundNotFound,
    )


async def test_reverse_order_when_end_is_before_start(gw: Gateway) -> None:
    node = gw.point("pump1.current").nodeid
    start, end = T0 + 300.0, T0 + 30.0  # (end, start], newest first
    values, _ = await read_all(gw, raw_details(start, end, count=40), node)
    all_rows = rows(gw.store.trend("pump1.current"))
    expected = [r for r in all_rows if end < r[0] <= start][::-1]
    assert got(values) == [expected_dv(*r) for r in expected]
    assert values[0].SourceTimestamp == utc(T0 + 300.0)  # a sample lies on the start time
    # Only an end time and a count: that many values before it, newest first.
    [result] = await history_read(gw, raw_details(None, T0 + 100.0, count=7), node)
    before = [r for r in all_rows if r[0] < T0 + 100.0][::-1][:7]
    assert got(result.HistoryData.DataValues) == [expected_dv(*r) for r in before]
    assert not result.ContinuationPoint
    # Only a start time and a count: that many values from it, oldest first.
    [result] = await history_read(gw, raw_details(T0 + 100.0, None, count=7), node)
    after = [r for r in all_rows if r[0] >= T0 + 100.0][:7]
    assert got(result.HistoryData.DataValues) == [expected_dv(*r) for r in after]


async def test_a_day_of_one_second_values_in_one_read(gw: Gateway) -> None:
    dvs = await gw.point("tank1.level").read_raw_history(
        utc(DAY), utc(DAY + 86_400.0), return_bounds=False
    )
    trend = gw.store.trend("tank1.level", DAY, DAY + 86_400.0)
    assert len(dvs) == len(trend) == 86_400
    assert [d.Value.Value for d in dvs] == trend.value.tolist()
    assert [d.SourceTimestamp for d in dvs[::997]] == [utc(t) for t in trend.time[::997].tolist()]


async def read_in_process(
    service: HistoryService, details: Any, node: ua.NodeId
) -> list[ua.DataValue]:
    """Every page of a read, straight from a HistoryService (bodies decoded as a client would)."""
    out: list[ua.DataValue] = []
    point: bytes | None = None
    while True:
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details, TimestampsToReturn=ua.TimestampsToReturn.Source,
            ReleaseContinuationPoints=False,
            NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=point)],
        )  # fmt: skip
        [result] = await service.read_history(params)
        assert result.StatusCode.is_good(), result.StatusCode
        body = result.HistoryData.Body
        out.extend(struct_from_binary(ua.HistoryData, Buffer(body)).DataValues)
        point = result.ContinuationPoint
        if not point:
            return out


@pytest.mark.parametrize("chunk", [1, 2, 7])
async def test_reads_in_small_chunks_return_the_same(gw: Gateway, chunk: int) -> None:
    """The store is read in chunks of whole instants (a page and a chunk at most in memory);
    with tiny chunks and pages every kind of read returns what one big read does."""
    assert gw.service.server is not None
    limits = HistoryLimits(read_chunk=chunk, max_return_data_values=5)
    small = HistoryService(
        gw.service.server, gw.store, Site.model_validate(SITE), gw.ns,
        conditions={}, alarms=gw.engine.alarms, limits=limits,
    )  # fmt: skip
    reads = [
        ("pump1.current", raw_details(T0 + 10.1, T0 + 40.0, bounds=True)),
        ("pump1.current", raw_details(T0 + 40.0, T0 + 10.1, bounds=True)),
        ("pump1.current", raw_details(T0 + 30.0, None, count=23, bounds=True)),
        ("pump1.current", raw_details(None, T0 + 30.0, count=23, bounds=True)),
        ("pump1.running", raw_details(T0 + 150.0, T0 + 600.0, bounds=True)),
        ("pump1.running", raw_details(T0 + 600.0, T0 + 150.0)),
        ("pump1.current", processed(T0 - 20.0, T0 + 425.0, 7.0, ObjectIds.AggregateFunction_Average)),
        ("pump1.current", processed(T0 + 425.0, T0 - 20.0, 7.0, ObjectIds.AggregateFunction_Minimum)),
        ("pump1.current", processed(T0 - 20.0, T0 + 425.0, 7.0, ObjectIds.AggregateFunction_Interpolative)),
    ]  # fmt: skip
    for point, details in reads:
        node = gw.point(point).nodeid
        expected, _ = await read_all(gw, details, node)
        assert got(await read_in_process(small, details, node)) == got(expected), details
    running = await read_in_process(
        small, raw_details(T0 + 500.0, T0 + 501.0), gw.point("pump1.running").nodeid
    )
    assert [value_of(d) for d in running] == [True, False, True, False, True]


# --- processed values -------------------------------------------------------------------------


def processed(
    start: float, end: float, interval_s: float, aggregate: int
) -> ua.ReadProcessedDetails:
    details = ua.ReadProcessedDetails()
    details.StartTime, details.EndTime = utc(start), utc(end)
    details.ProcessingInterval = interval_s * 1000.0
    details.AggregateType = [numeric_id(aggregate)]
    details.AggregateConfiguration = ua.AggregateConfiguration(UseServerCapabilitiesDefaults=True)
    return details


async def read_processed(
    gw: Gateway, node: ua.NodeId, start: float, end: float, interval_s: float, *, aggregate: int
) -> ua.HistoryReadResult:
    [result] = await history_read(gw, processed(start, end, interval_s, aggregate), node)
    return result


def is_good(q: int, v: float) -> bool:
    return q == Quality.GOOD and not math.isnan(v)


def is_uncertain(q: int, v: float) -> bool:
    return 0 < q < Quality.BAD and not math.isnan(v)


def with_bits(status: int, bits: int) -> int:
    return status | bits | _INFO if bits else status


def expect_aggregate(
    name: str, history: list[tuple[float, float, int]], lo: float, hi: float, interval: float
) -> tuple[dt.datetime, Any, int]:
    """Part 13's definition of one aggregate over ``[lo, hi)``, written out plainly."""
    inside = [s for s in history if lo <= s[0] < hi]
    good = [s for s in inside if is_good(s[2], s[1])]
    # Partial (Part 13 §5.3.3.2): a short last interval, or one the data begins within.
    partial = _PARTIAL if hi - lo < interval - 1e-9 or lo < history[0][0] < hi else 0
    no_data = (utc(lo), None, _S.BadNoData)
    if hi <= history[0][0]:
        return no_data  # "before the start of data", whatever the aggregate
    nongood = len(inside) - len(good)  # TreatUncertainAsBad is true by default
    counted = _S.Good if nongood == 0 else _S.Bad if not good else _S.UncertainDataSubNormal
    if name == "Average":
        if not good:
            return no_data
        return utc(lo), sum(s[1] for s in good) / len(good), with_bits(counted, _CALC)
    if name == "Count":
        status = with_bits(counted if inside else _S.Good, _CALC | partial)
        return utc(lo), None if status & 0x80000000 else len(good), status
    if name in ("Minimum", "Maximum"):
        if not good:
            return no_data
        pick = min if name == "Minimum" else max
        best = pick(s[1] for s in good)
        below: Callable[[float], bool] = (
            (lambda v: v < best) if name == "Minimum" else (lambda v: v > best)
        )
        bad_seen = any(not is_good(s[2], s[1]) and not is_uncertain(s[2], s[1]) for s in inside)
        worse_uncertain = any(is_uncertain(s[2], s[1]) and below(s[1]) for s in inside)
        subnormal = bad_seen or worse_uncertain
        on_start = any(s[0] == lo and s[1] == best for s in good)
        bits = (_CALC if subnormal or not on_start else 0) | partial
        bits |= _MULTI if sum(s[1] == best for s in good) > 1 else 0
        return utc(lo), best, with_bits(_S.UncertainDataSubNormal if subnormal else _S.Good, bits)
    if name in ("Start", "End"):
        if not inside:
            return no_data
        t, v, q = inside[0] if name == "Start" else inside[-1]
        status = with_bits(status_value(q), partial)
        return utc(t), None if status & 0x80000000 or math.isnan(v) else v, status
    assert name == "Interpolative"
    before = [s for s in history if s[0] <= lo]
    usable = [s for s in before if is_good(s[2], s[1])]
    if not usable:
        return no_data
    t, v, _ = usable[-1]
    skipped = usable[-1] is not before[-1]
    status = _S.UncertainDataSubNormal if skipped else _S.Good
    return utc(lo), v, with_bits(status, 0 if t == lo and not skipped else _INTERP)


AGGREGATE_IDS = {
    "Average": ObjectIds.AggregateFunction_Average,
    "Minimum": ObjectIds.AggregateFunction_Minimum,
    "Maximum": ObjectIds.AggregateFunction_Maximum,
    "Count": ObjectIds.AggregateFunction_Count,
    "Start": ObjectIds.AggregateFunction_Start,
    "End": ObjectIds.AggregateFunction_End,
    "Interpolative": ObjectIds.AggregateFunction_Interpolative,
}


@pytest.mark.parametrize("offset", [0.0, 0.3], ids=["on-samples", "between-samples"])
@pytest.mark.parametrize("name", list(AGGREGATE_IDS))
async def test_aggregate_equals_its_definition_over_the_stores_trend(
    gw: Gateway, name: str, offset: float
) -> None:
    # Starts before the first sample (BadNoData); 30 s intervals that begin on samples
    # (Raw bits) or between them; a range that leaves a partial last interval.
    start, end, interval = T0 - 60.0 + offset, T0 + 425.0, 30.0
    node = gw.point("pump1.current").nodeid
    result = await read_processed(gw, node, start, end, interval, aggregate=AGGREGATE_IDS[name])
    assert result.StatusCode.is_good()
    dvs = result.HistoryData.DataValues
    history = rows(gw.store.trend("pump1.current"))
    edges = [start + k * interval for k in range(int((end - start) // interval) + 1)] + [end]
    expected = [expect_aggregate(name, history, lo, hi, interval) for lo, hi in pairwise(edges)]
    assert len(dvs) == len(expected) == 17
    actual = got(dvs)
    for k, (mine, theirs) in enumerate(zip(actual, expected, strict=True)):
        assert mine[0] == theirs[0], (k, mine, theirs)
        assert mine[2] == theirs[2], (k, mine, theirs)
        if isinstance(theirs[1], float):
            assert mine[1] == pytest.approx(theirs[1], rel=1e-12), (k, mine, theirs)
        else:
            assert mine[1] == theirs[1], (k, mine, theirs)
    assert actual[0][2] == _S.BadNoData  # before the first sample
    if name in ("Minimum", "Maximum", "Count", "Start", "End"):
        assert actual[-1][2] & _PARTIAL  # the last interval is 5 s of 30


async def test_aggregate_types_and_reverse_intervals(gw: Gateway) -> None:
    node = gw.point("pump1.starts").nodeid
    count = await read_processed(
        gw, node, T0, T0 + 100.0, 50.0, aggregate=ObjectIds.AggregateFunction_Count
    )
    maximum = await read_processed(
        gw, node, T0, T0 + 100.0, 50.0, aggregate=ObjectIds.AggregateFunction_Maximum
    )
    average = await read_processed(
        gw, node, T0, T0 + 100.0, 50.0, aggregate=ObjectIds.AggregateFunction_Average
    )
    assert [(d.Value.VariantType, d.Value.Value) for d in count.HistoryData.DataValues] == [
        (ua.VariantType.Int32, 5), (ua.VariantType.Int32, 5)
    ]  # fmt: skip
    assert [(d.Value.VariantType, d.Value.Value) for d in maximum.HistoryData.DataValues] == [
        (ua.VariantType.Int64, 12), (ua.VariantType.Int64, 27)
    ]  # fmt: skip
    assert [d.Value.VariantType for d in average.HistoryData.DataValues] == [
        ua.VariantType.Double
    ] * 2
    # EndTime before StartTime: intervals run backwards, each (lo, hi] stamped with hi.
    start, end = T0 + 100.0, T0 + 20.0
    backwards = await read_processed(
        gw, node, start, end, 30.0, aggregate=ObjectIds.AggregateFunction_Count
    )
    samples = [r[0] for r in rows(gw.store.trend("pump1.starts"))]
    edges = [start, start - 30.0, start - 60.0, end]
    expected = [(utc(hi), sum(lo < t <= hi for t in samples)) for hi, lo in pairwise(edges)]
    assert [
        (d.SourceTimestamp, d.Value.Value) for d in backwards.HistoryData.DataValues
    ] == expected


async def test_processed_refusals(gw: Gateway) -> None:
    node = gw.point("pump1.current").nodeid
    unknown = await read_processed(
        gw, node, T0, T0 + 10, 1, aggregate=ObjectIds.AggregateFunction_TimeAverage
    )
    assert unknown.StatusCode.value == _S.BadAggregateNotSupported
    empty = await read_processed(gw, node, T0, T0, 1, aggregate=ObjectIds.AggregateFunction_Average)
    assert empty.StatusCode.value == _S.BadInvalidArgument
    mismatch = processed(T0, T0 + 10, 1, ObjectIds.AggregateFunction_Average)
    with pytest.raises(UaStatusCodeError) as err:
        await history_read(gw, mismatch, node, node)
    assert err.value.code == _S.BadAggregateListMismatch


# --- events -------------------------------------------------------------------------------------

FIELDS = [
    "EventId", "EventType", "SourceName", "Time", "Message", "Severity", "ConditionName",
    "ActiveState/Id", "AckedState/Id", "ConfirmedState/Id", "ClientUserId", "Comment", "Retain",
    "LastSeverity", "LimitState/CurrentState",
]  # fmt: skip


def event_filter(of_type: int | None = None) -> ua.EventFilter:
    evfilter = ua.EventFilter()
    for path in FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = numeric_id(ObjectIds.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(p, 0) for p in path.split("/")]
        op.AttributeId = AttributeIds.Value
        evfilter.SelectClauses.append(op)
    if of_type is not None:
        element = ua.ContentFilterElement()
        element.FilterOperator = ua.FilterOperator.OfType
        element.FilterOperands = [ua.LiteralOperand(Value=ua.Variant(numeric_id(of_type)))]
        evfilter.WhereClause.Elements.append(element)
    return evfilter


def event_details(
    start: float | None, end: float | None, count: int = 0, of_type: int | None = None
) -> ua.ReadEventDetails:
    details = ua.ReadEventDetails()
    details.StartTime = utc(start) if start is not None else ua.get_win_epoch()
    details.EndTime = utc(end) if end is not None else ua.get_win_epoch()
    details.NumValuesPerNode = count
    details.Filter = event_filter(of_type)
    return details


def as_dicts(events: list[ua.HistoryEventFieldList]) -> list[dict[str, Any]]:
    return [dict(zip(FIELDS, (v.Value for v in e.EventFields), strict=True)) for e in events]


def journal_view(store: Store, alarms: set[str] | None = None) -> list[dict[str, Any]]:
    """What each journal row must read as in event history."""
    out = []
    for row in store.journal():
        if alarms is not None and row.alarm_id not in alarms:
            continue
        state = AlarmState(row.state_after)
        definition = next(d for d in ALARMS if d.id == row.alarm_id)
        out.append({
            "Time": utc(row.time), "Message": row.message,
            "ConditionName": row.alarm_id.split(".", 1)[1], "SourceName": definition.source_id,
            "Severity": row.severity or int(definition.priority), "ActiveState/Id": state.active,
            "AckedState/Id": state.acknowledged, "ClientUserId": row.user, "Comment": row.comment,
        })  # fmt: skip
    return out


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """The fields :func:`journal_view` predicts, with LocalizedTexts as their text."""
    keys = ("Time", "ConditionName", "SourceName", "Severity", "ActiveState/Id",
            "AckedState/Id", "ClientUserId")  # fmt: skip
    out = {k: event[k] for k in keys}
    out["Message"] = event["Message"].Text
    out["Comment"] = event["Comment"].Text or ""
    return out


async def test_event_history_of_the_server_is_the_journal(gw: Gateway) -> None:
    server = numeric_id(ObjectIds.Server)
    events, pages = await read_all(gw, event_details(TA, TA + 100.0, count=2), server)
    mine = as_dicts(events)
    expected = journal_view(gw.store)
    assert len(expected) >= 6
    assert [comparable(e) for e in mine] == expected
    assert pages == math.ceil(len(expected) / 2)
    # What the journal does not record is replayed: the level alarm's acknowledgement,
    # after an activation, leaves it unconfirmed; its HH event carried LimitState HighHigh.
    level = [e for e in mine if e["ConditionName"] == "level.limit"]
    acked = next(e for e in level if e["ClientUserId"] == "olga")
    assert (acked["AckedState/Id"], acked["ConfirmedState/Id"], acked["Retain"]) == (
        True,
        False,
        True,
    )
    assert acked["Comment"].Text == "seen it"
    hh = next(e for e in level if e["Severity"] == 900)
    assert hh["LimitState/CurrentState"].Text == "HighHigh"
    assert hh["LastSeverity"] == 700
    assert hh["EventType"] == numeric_id(ObjectIds.ExclusiveLimitAlarmType)
    # EventIds are stable: the same on every read.
    again = as_dicts((await read_all(gw, event_details(TA, TA + 100.0), server))[0])
    assert [e["EventId"] for e in again] == [e["EventId"] for e in mine]
    assert len({e["EventId"] for e in mine}) == len(mine)


async def test_event_history_of_a_device_and_filters(gw: Gateway) -> None:
    tank = gw.node("plant/yard/tank1").nodeid
    events, _ = await read_all(gw, event_details(TA, TA + 100.0), tank)
    assert [comparable(e)["Time"] for e in as_dicts(events)] == [
        e["Time"] for e in journal_view(gw.store, {"tank1.level.limit"})
    ]
    server = numeric_id(ObjectIds.Server)
    # OfType matches subtypes: AlarmConditionType selects both alarms ...
    every, _ = await read_all(
        gw, event_details(TA, TA + 100.0, of_type=ObjectIds.AlarmConditionType), server
    )
    assert {e["ConditionName"] for e in as_dicts(every)} == {"level.limit", "running.off"}
    # ... ExclusiveLimitAlarmType only the limit alarm, OffNormalAlarmType only the discrete one.
    limit, _ = await read_all(
        gw, event_details(TA, TA + 100.0, of_type=ObjectIds.ExclusiveLimitAlarmType), server
    )
    assert {e["ConditionName"] for e in as_dicts(limit)} == {"level.limit"}
    off, _ = await read_all(
        gw, event_details(TA, TA + 100.0, of_type=ObjectIds.OffNormalAlarmType), server
    )
    assert {e["ConditionName"] for e in as_dicts(off)} == {"running.off"}
    # Newest first when EndTime is before StartTime; the time domain excludes EndTime.
    backwards, _ = await read_all(gw, event_details(TA + 100.0, TA + 1.0, count=3), server)
    times = [e["Time"] for e in as_dicts(backwards)]
    assert times == sorted(times, reverse=True)
    assert times == [e["Time"] for e in journal_view(gw.store)][1:][::-1]


async def test_event_history_through_asyncuas_helper(gw: Gateway) -> None:
    server = gw.client.get_node(numeric_id(ObjectIds.Server))
    events = await server.read_event_history(
        utc(TA), utc(TA + 100.0), evtypes=ObjectIds.ExclusiveLimitAlarmType
    )
    fields = [e.get_event_props_as_fields_dict() for e in events]
    assert [f["Time"].Value for f in fields] == [
        e["Time"] for e in journal_view(gw.store, {"tank1.level.limit"})
    ]
    assert all(f["SourceName"].Value == "tank1.level" for f in fields)


# --- refusals and capabilities --------------------------------------------------------------


async def test_unknown_nodes_and_nodes_without_that_history(gw: Gateway) -> None:
    raw = raw_details(T0, T0 + 10.0)
    unknown = string_id("plant/yard/pump9/Points/current", gw.ns)
    device = gw.node("plant/yard/pump1").nodeid
    point = gw.point("pump1.current").nodeid
    results = await history_read(gw, raw, unknown, device, numeric_id(ObjectIds.Server), point)
    assert [r.StatusCode.value for r in results] == [
        _S.BadNodeIdUnknown, _S.BadHistoryOperationUnsupported,
        _S.BadHistoryOperationUnsupported, _S.Good,
    ]  # fmt: skip
    events = await history_read(gw, event_details(TA, TA + 10.0), unknown, point)
    assert [r.StatusCode.value for r in events] == [
        _S.BadNodeIdUnknown,
        _S.BadHistoryOperationUnsupported,
    ]
    modified = raw_details(T0, T0 + 10.0)
    modified.IsReadModified = True
    [result] = await history_read(gw, modified, point)
    assert result.StatusCode.value == _S.BadHistoryOperationUnsupported


async def test_history_update_is_refused(gw: Gateway) -> None:
    update = ua.UpdateDataDetails()
    update.NodeId = gw.point("pump1.current").nodeid
    update.PerformInsertReplace = ua.PerformUpdateType.Insert
    update.UpdateValues = [ua.DataValue(ua.Variant(1.0, ua.VariantType.Double))]
    params = ua.HistoryUpdateParameters()
    params.HistoryUpdateDetails = [update, update]
    # asyncua lets only its Admin role send HistoryUpdate, and no PlantGuard session has it ...
    with pytest.raises(UaStatusCodeError) as err:
        await gw.client.uaclient.history_update(params)
    assert err.value.code == _S.BadUserAccessDenied
    # ... and the history service refuses each item for any session that would.
    assert gw.service.server is not None
    service = gw.service.server.iserver.history_manager
    results = service.update_history(params)
    assert [r.StatusCode.value for r in results] == [_S.BadHistoryOperationUnsupported] * 2
    assert len(gw.store.trend("pump1.current")) == N_CURRENT


async def test_capabilities_are_advertised(gw: Gateway) -> None:
    async def value(node: int) -> Any:
        return await gw.client.get_node(numeric_id(node)).read_value()

    o = ObjectIds
    assert await value(o.HistoryServerCapabilities_AccessHistoryDataCapability) is True
    assert await value(o.HistoryServerCapabilities_AccessHistoryEventsCapability) is True
    assert await value(o.HistoryServerCapabilities_InsertDataCapability) is False
    assert await value(o.HistoryServerCapabilities_DeleteRawCapability) is False
    assert await value(o.HistoryServerCapabilities_ServerTimestampSupported) is False
    assert await value(o.HistoryServerCapabilities_MaxReturnDataValues) == 100_000
    assert await value(o.Server_ServerCapabilities_MaxHistoryContinuationPoints) == 100
    for folder in (
        o.HistoryServerCapabilities_AggregateFunctions,
        o.Server_ServerCapabilities_AggregateFunctions,
    ):
        listed = {c.nodeid for c in await gw.client.get_node(numeric_id(folder)).get_children()}
        assert {numeric_id(a) for a in AGGREGATE_IDS.values()} <= listed
    notifier = await gw.client.get_node(numeric_id(o.Server)).read_attribute(
        AttributeIds.EventNotifier
    )
    assert value_of(notifier) & (1 << ua.EventNotifier.HistoryRead)


async def test_point_variables_advertise_history(gw: Gateway) -> None:
    """Set by the address space (node_specs), served here."""
    node = gw.point("pump1.current")
    assert await node.read_attribute(AttributeIds.Historizing) is not None
    assert (await node.read_attribute(AttributeIds.Historizing)).Value.Value is True
    access = (await node.read_attribute(AttributeIds.AccessLevel)).Value.Value
    assert access & ua.AccessLevel.HistoryRead.mask
    user_access = (await node.read_attribute(AttributeIds.UserAccessLevel)).Value.Value
    assert user_access & ua.AccessLevel.HistoryRead.mask


async def test_devices_with_alarms_advertise_event_history(gw: Gateway) -> None:
    device = gw.node("plant/yard/tank1")
    notifier = (await device.read_attribute(AttributeIds.EventNotifier)).Value.Value
    assert notifier & (1 << ua.EventNotifier.SubscribeToEvents)
    assert notifier & (1 << ua.EventNotifier.HistoryRead)
