"""The Sparkplug NDATA/DDATA fast path against pysparkplug's ``DData.decode``.

The driver reads data messages straight from the protobuf message
(:func:`plantguard_mqtt.spdata.fast_data`); pysparkplug stays the reference.  Each
payload here is decoded both ways and must give the same samples (name, value or
reason it is no number, timestamp), or fail both ways — every numeric datatype with
negative signed values, null, historical, alias-only metrics, odd value fields,
out-of-range integers, missing fields and truncated bytes.  The node tracker must
turn a payload the library refuses into the same bad_payload fault.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pysparkplug as sp
import pytest
from pysparkplug._protobuf import Payload

from plantguard_mqtt.sparkplug import SparkplugNode
from plantguard_mqtt.spdata import Sample, birth_maps, fast_data, library_data, samples_of

T = sp.DataType
NOW = 1_764_000_000_000

#: (datatype, values) — the extremes of each numeric type and a few ordinary ones.
NUMERIC: list[tuple[sp.DataType, list[Any]]] = [
    (T.INT8, [-128, -1, 0, 5, 127]),
    (T.INT16, [-32768, -300, 32767]),
    (T.INT32, [-(2**31), -70_000, 2**31 - 1]),
    (T.INT64, [-(2**63), -1, 2**63 - 1]),
    (T.UINT8, [0, 255]),
    (T.UINT16, [65535]),
    (T.UINT32, [2**32 - 1]),
    (T.UINT64, [2**64 - 1, 0]),
    (T.FLOAT, [1.5, -2.25, math.nan, math.inf]),
    (T.DOUBLE, [-1e300, 0.1, math.nan, -math.inf]),
    (T.BOOLEAN, [True, False]),
]


def _metrics() -> list[sp.Metric]:
    out: list[sp.Metric] = []
    for datatype, values in NUMERIC:
        for i, value in enumerate(values):
            out.append(sp.Metric(NOW + i, f"{datatype.name}/{i}", datatype, value=value))
    return out


def _birth(metrics: Sequence[sp.Metric], aliased: bool = True) -> sp.DBirth:
    born = tuple(
        sp.Metric(NOW, m.name, m.datatype, value=None, is_null=True, alias=k if aliased else None)
        for k, m in enumerate(metrics)
    )
    return sp.DBirth(NOW, 1, born)


def _outcome(payload: bytes, birth: sp.DBirth | None) -> tuple[str, object]:
    """What pysparkplug makes of ``payload``: its samples, or its exception."""
    try:
        decoded = sp.DData.decode(payload, birth=birth)
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    return "ok", (decoded.timestamp, decoded.seq, samples_of(decoded.metrics))


def _fast(payload: bytes, birth: sp.DBirth | None) -> tuple[str, object]:
    """What the fast path makes of it (an error is only reported, the library words it)."""
    try:
        decoded = fast_data(payload, birth_maps(birth) if birth is not None else None)
    except Exception:
        return "error", _outcome(payload, birth)[1]
    return "ok", (decoded.timestamp, decoded.seq, decoded.samples)


def _same(payload: bytes, birth: sp.DBirth | None) -> tuple[str, Any]:
    expected = _outcome(payload, birth)
    got = _fast(payload, birth)
    assert _normal(got) == _normal(expected)
    return expected


def _normal(outcome: tuple[str, object]) -> object:
    """NaN != NaN: compare samples by repr."""
    return repr(outcome)


def _pb(*metrics: dict[str, Any], seq: int | None = 3, timestamp: int | None = NOW) -> bytes:
    """A payload made field by field (what pysparkplug's encoder would not write)."""
    message = Payload()
    if timestamp is not None:
        message.timestamp = timestamp
    if seq is not None:
        message.seq = seq
    for fields in metrics:
        metric = message.metrics.add()
        for key, value in fields.items():
            setattr(metric, key, value)
    payload: bytes = message.SerializeToString()
    return payload


def test_every_numeric_datatype_with_datatypes_in_the_message() -> None:
    metrics = _metrics()
    payload = sp.DData(NOW, 2, tuple(metrics)).encode(include_dtypes=True)
    kind, (_, _, samples) = _same(payload, None)
    assert kind == "ok"
    values = {name: value for name, value, _ in samples}
    # The signed conventions really were undone: negatives come back negative.
    assert values["INT8/0"] == -128.0
    assert values["INT16/1"] == -300.0
    assert values["INT32/0"] == float(-(2**31))
    assert values["INT64/0"] == float(-(2**63))
    assert values["UINT64/0"] == float(2**64 - 1)
    assert values["FLOAT/1"] == -2.25
    assert values["BOOLEAN/0"] == 1.0
    assert values["FLOAT/2"] == "nan is not a finite number"
    assert values["DOUBLE/3"] == "-inf is not a finite number"
    assert all(stamp >= NOW for _, _, stamp in samples)


def test_datatypes_and_names_from_the_birth_alias_only_metrics() -> None:
    metrics = _metrics()
    birth = _birth(metrics)
    # Data as edge nodes send it: alias only, no datatype, no metric timestamps.
    data = tuple(
        sp.Metric(None, None, m.datatype, value=m.value, alias=k) for k, m in enumerate(metrics)
    )
    payload = sp.DData(NOW, 2, data).encode(include_dtypes=False)
    kind, (_, _, samples) = _same(payload, birth)
    assert kind == "ok"
    assert [name for name, _, _ in samples] == [m.name for m in metrics]
    assert samples[1] == ("INT8/1", -1.0, 0)


def test_null_historical_and_non_numeric_metrics() -> None:
    metrics: tuple[sp.Metric, ...] = (
        sp.Metric(NOW, "n", T.DOUBLE, value=None, is_null=True),
        sp.Metric(NOW, "h", T.DOUBLE, value=4.0, is_historical=True),
        sp.Metric(NOW, "hi", T.INT16, value=-4, is_historical=True),
        sp.Metric(NOW, "s", T.STRING, value="running"),
        sp.Metric(NOW, "d", T.DATETIME, value=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        sp.Metric(NOW, "a", T.INT16_ARRAY, value=(1, -2)),
        sp.Metric(NOW, "b", T.BYTES, value=b"\x00\x01"),
        sp.Metric(NOW, "ok", T.INT32, value=-7),
    )
    payload = sp.DData(NOW, 9, metrics).encode(include_dtypes=True)
    kind, (_, seq, samples) = _same(payload, None)
    assert kind == "ok"
    assert seq == 9
    by_name: dict[str | None, object] = {name: value for name, value, _ in samples}
    assert by_name == {
        "n": "null",
        "h": None,
        "hi": None,
        "s": "a STRING metric, not a number",
        "d": "a DATETIME metric, not a number",
        "a": "a INT16_ARRAY metric, not a number",
        "b": "a BYTES metric, not a number",
        "ok": -7.0,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "x", "datatype": int(T.DOUBLE), "int_value": 7},  # another field of the oneof
        {"name": "x", "datatype": int(T.FLOAT), "boolean_value": True},
        {"name": "x", "datatype": int(T.BOOLEAN), "long_value": 2},
        {"name": "x", "datatype": int(T.INT8), "double_value": 200.0},  # a float as an INT8
        {"name": "x", "datatype": int(T.UINT8), "double_value": math.nan},  # refused
        {"name": "x", "datatype": int(T.DOUBLE), "string_value": "7"},
        {"name": "x", "datatype": int(T.INT8), "int_value": 300},  # out of range: refused
        {"name": "x", "datatype": int(T.INT8), "int_value": 300, "is_null": True},
        {"name": "x", "datatype": int(T.INT32), "int_value": 2**32 - 1, "is_null": True},
        {"name": "x", "datatype": int(T.DOUBLE), "is_null": True},
        {"name": "x", "datatype": int(T.DOUBLE), "double_value": 2.5, "is_null": True},
        {"name": "x", "datatype": int(T.FLOAT), "float_value": 2.5, "is_historical": True},
        {"name": "x", "datatype": int(T.FLOAT), "double_value": -0.5},
        {"name": "x", "datatype": int(T.DOUBLE)},  # no value, not flagged null
        {"name": "x", "datatype": 99, "double_value": 1.0},  # unknown datatype
        {"name": "x", "double_value": 1.0},  # no datatype and no birth
        {"name": "x"},
        {"alias": 4, "datatype": int(T.DOUBLE), "double_value": 1.0},  # no name, no birth
        {"name": "", "datatype": int(T.DOUBLE), "double_value": 1.0},
        {"name": "x", "datatype": int(T.DATASET), "dataset_value": {"num_of_columns": 0}},
        {"name": "x", "datatype": int(T.STRING_ARRAY), "bytes_value": b"\xff\x00"},
        {"name": "x", "datatype": int(T.DATETIME), "long_value": 2**63},
    ],
)
def test_odd_metrics_without_a_birth(fields: dict[str, Any]) -> None:
    if "dataset_value" not in fields:
        payload = _pb(fields)
    else:
        message = Payload()
        message.timestamp, message.seq = NOW, 3
        metric = message.metrics.add()
        metric.name, metric.datatype = "x", int(T.DATASET)
        metric.dataset_value.num_of_columns = 0
        payload = message.SerializeToString()
    _same(payload, None)


def test_odd_metrics_with_a_birth() -> None:
    birth = sp.DBirth(
        NOW,
        1,
        (
            sp.Metric(NOW, "p", T.INT16, value=-1, alias=1),
            sp.Metric(NOW, "q", T.UINT32, value=1, alias=2),
            sp.Metric(NOW, "r", T.STRING, value="x", alias=3),
        ),
    )
    cases = [
        _pb({"alias": 1, "int_value": 65535}),  # -1 as INT16, datatype from the birth
        _pb({"alias": 1, "int_value": 65536}),  # out of INT16 range
        _pb({"alias": 9, "int_value": 1}),  # an alias the birth does not know
        _pb({"int_value": 1}),  # neither name nor alias: alias 0 is unknown
        _pb({"name": "unborn", "int_value": 1}),  # no datatype and not in the birth
        _pb({"name": "q", "int_value": 5, "timestamp": NOW - 5}),
        _pb({"alias": 3, "string_value": "on"}),
        _pb({"alias": 2, "datatype": int(T.INT32), "int_value": 2**31}),  # the message's type wins
    ]
    outcomes = [_same(payload, birth) for payload in cases]
    assert [kind for kind, _ in outcomes] == ["ok", "error", "error", "error", "error"] + ["ok"] * 3
    assert outcomes[0][1] == (NOW, 3, [("p", -1.0, 0)])
    assert outcomes[7][1] == (NOW, 3, [("q", float(-(2**31)), 0)])


def test_missing_payload_fields_and_truncated_bytes() -> None:
    assert _same(_pb({"name": "x", "datatype": 10, "double_value": 1.0}, seq=None), None)[0] == (
        "error"
    )
    assert _same(_pb({"name": "x"}, timestamp=None), None)[0] == "error"
    assert _same(b"\xff\xff\xff", None)[0] == "error"
    assert _same(b"", None)[0] == "error"  # no timestamp
    metrics = _metrics()
    birth = _birth(metrics)
    payload = sp.DData(NOW, 2, tuple(metrics)).encode()
    assert _same(payload, birth)[0] == "ok"
    # seq is field 3, written after the metrics: every cut loses it, if nothing else.
    assert {_same(payload[:cut], birth)[0] for cut in range(len(payload) - 1, 0, -3)} == {"error"}
    # Cuts inside the metrics, with seq and timestamp kept: some parse, some do not.
    message = Payload.FromString(payload)
    head = _pb(seq=2)
    body = message.metrics[0].SerializeToString()
    framed = b"\x12" + bytes([len(body)]) + body  # field 2 (metrics), length-delimited
    assert _same(head + framed, birth)[0] == "ok"
    kinds = {_same(head + framed[:cut], birth)[0] for cut in range(1, len(framed))}
    assert kinds == {"error"}


def test_library_fallback_gives_the_same_message() -> None:
    metrics = _metrics()
    birth = _birth(metrics)
    payload = sp.DData(NOW, 2, tuple(metrics)).encode()
    ours = fast_data(payload, birth_maps(birth))
    theirs = library_data(sp.DData, payload, birth)
    assert (ours.timestamp, ours.seq) == (theirs.timestamp, theirs.seq) == (NOW, 2)
    assert repr(ours.samples) == repr(theirs.samples)
    assert ours.labels == theirs.labels == [m.name for m in metrics]
    nameless = fast_data(_pb({"alias": 4, "datatype": 10, "double_value": 1.0}, {}), None)
    assert nameless.labels == ["alias 4", "alias None"]
    one = _pb({"alias": 4, "datatype": 10, "double_value": 1.0})
    assert library_data(sp.DData, one, None).labels == fast_data(one, None).labels == ["alias 4"]


class _Target:
    """Records what the node tracker hands a driver (the driver itself is tested
    against a real broker in test_mqtt_driver_sparkplug.py)."""

    def __init__(self) -> None:
        self.samples: list[list[Sample]] = []
        self.faults: list[tuple[str, str, Sequence[str] | None]] = []
        self.alive: list[bool] = []
        self.counts: list[str] = []

    def sparkplug_metrics(self, samples: Sequence[Sample], sent: float, now: float) -> None:
        self.samples.append(list(samples))

    def sparkplug_alive(self, alive: bool, why: str) -> None:
        self.alive.append(alive)

    def sparkplug_fault(
        self, counter: str, reason: str, names: Sequence[str] | None, now: float
    ) -> None:
        self.faults.append((counter, reason, names))

    def sparkplug_count(self, counter: str) -> None:
        self.counts.append(counter)


def test_node_tracker_uses_the_birth_and_words_bad_payloads_as_the_library() -> None:
    requests: list[str] = []

    def rebirth(node: SparkplugNode) -> bool:
        requests.append(node.node)
        return True

    node = SparkplugNode("g", "n", rebirth)
    target = _Target()
    node.attach(target, "dev")
    nbirth = sp.NBirth(NOW, 0, (sp.Metric(NOW, "bdSeq", T.INT64, value=0),)).encode()
    metrics = _metrics()
    birth = _birth(metrics)
    node.receive("NBIRTH", None, nbirth, 1.0)
    node.receive("DBIRTH", "dev", birth.encode(), 1.0)
    data = tuple(
        sp.Metric(None, None, m.datatype, value=m.value, alias=k) for k, m in enumerate(metrics)
    )
    payload = sp.DData(NOW, 2, data).encode()
    node.receive("DDATA", "dev", payload, 1.0)
    assert repr(target.samples[-1]) == repr(_same(payload, birth)[1][2])
    assert target.alive == [True]

    truncated = sp.DData(NOW, 3, data).encode()[:-3]
    expected = _outcome(truncated, birth)
    assert expected[0] == "error"
    node.receive("DDATA", "dev", truncated, 1.0)
    counter, reason, names = target.faults[-1]
    assert (counter, names) == ("bad_payload", None)
    assert reason == f"undecodable Sparkplug DDATA of n/dev: {expected[1]}"
    assert requests == ["n"]

    # Out of sequence: the fault names the metrics, resolved through the birth's aliases.
    node.receive("DDATA", "dev", sp.DData(NOW, 7, data[:2]).encode(), 1.0)
    assert target.faults[-1][0] == ""
    assert target.faults[-1][2] == ["INT8/0", "INT8/1"]
    assert target.counts == ["rebirth_requests", "sequence_errors", "rebirth_requests"]

    # After a DDEATH the birth is forgotten: alias-only data no longer decodes.
    node.receive("DDEATH", "dev", sp.DDeath(NOW, 8).encode(), 1.0)
    assert target.alive == [True, False]
    node.receive("DDATA", "dev", sp.DData(NOW, 9, data[:1]).encode(), 1.0)
    assert target.faults[-1][0] == "bad_payload"
