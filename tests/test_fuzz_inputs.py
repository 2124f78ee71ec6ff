"""Property-based tests: no input gets past PlantGuard's documented errors.

* the site loader, fed arbitrary bytes, arbitrary text, and the demo site with
  values replaced by arbitrary YAML at arbitrary places, raises nothing but
  :class:`~plantguard.config.ConfigError`;
* the OPC UA methods, called with arbitrary argument lists over a real session,
  answer only the status codes Part 4 / Part 9 define for a refusal, never
  BadUnexpectedError (an exception in a handler), and nothing reaches the journal.

(The records imports have their own, in ``test_fuzz_imports.py``.)
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua_typed import numeric_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opcua_engine import FakeEngine, MemoryJournal
from test_opcua_server import SITE

from plantguard.alarms import AlarmManager
from plantguard.config import ConfigError, load_site, parse_site
from plantguard.host import PluginHost
from plantguard.model import AlarmDefinition, Priority, Site
from plantguard_opcua import OpcUaOptions, OpcUaService

DEMO = (Path(__file__).parents[1] / "plugins" / "plantguard_sim" / "demo_site.yaml").read_text()
LINES = DEMO.splitlines()
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _issues(load: Any) -> list[Any]:
    """What ``load()`` refused, as ConfigIssues (none if it loaded); any other exception fails."""
    try:
        load()
    except ConfigError as exc:
        return list(exc.issues) or [None]
    return []


def _loads_or_refuses(text: str, host: PluginHost) -> None:
    for issue in _issues(lambda: parse_site(text, "fuzz.yaml", host)):
        assert issue is not None, "a ConfigError lists what is wrong"
        assert issue.file == "fuzz.yaml"
        assert issue.message


# --- the site loader --------------------------------------------------------------------------

yaml_scalars = st.one_of(
    st.sampled_from(
        [
            ".nan", ".inf", "-.inf", "1e400", "~", "null", "true", "no", "0x1F", "0o17",
            "2023-13-45", "9999-12-31", "0001-01-01T00:00:00+14:00", "&a [*a]", "*nope",
            "!!python/object:os.system", "? [a, b]", "[[[[[[", "{a: {b: {c: }}}", '"\\x07"',
            "'", '"', "|", ">", "- - -", "@", "`", "%YAML 1.1", "---", "...", "-1", "1e300",
            "99999999999999999999999999999999999999", "[]", "{}", "''",
        ]
    ),
    st.text(max_size=30).map(lambda s: s.replace("\n", " ")),
    st.integers().map(str),
    st.floats().map(repr),
)  # fmt: skip


@FUZZ
@given(line=st.integers(min_value=0, max_value=len(LINES) - 1), value=yaml_scalars)
def test_the_demo_site_with_any_value_anywhere(line: int, value: str, host: PluginHost) -> None:
    lines = list(LINES)
    text = lines[line]
    if ":" in text:
        key = text.split(":", 1)[0]
        lines[line] = f"{key}: {value}"
    else:
        lines[line] = value
    _loads_or_refuses("\n".join(lines) + "\n", host)


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text(text: str, host: PluginHost) -> None:
    _loads_or_refuses(text, host)


@FUZZ
@given(data=st.binary(max_size=400), splice=st.integers(min_value=0, max_value=len(DEMO)))
def test_any_bytes_inside_a_site_file(
    data: bytes, splice: int, host: PluginHost, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "site.yaml"
    raw = DEMO.encode()
    path.write_bytes(raw[:splice] + data + raw[splice:])
    for issue in _issues(lambda: load_site(path, host)):
        assert issue.file == str(path)


# --- OPC UA method arguments -------------------------------------------------------------------

#: What a refused call may answer: argument errors, and the alarm manager's refusals.
REFUSALS = {
    StatusCodes.BadArgumentsMissing,
    StatusCodes.BadTooManyArguments,
    StatusCodes.BadInvalidArgument,
    StatusCodes.BadTypeMismatch,
    StatusCodes.BadUserAccessDenied,
    StatusCodes.BadNodeIdUnknown,
    StatusCodes.BadNodeIdInvalid,
    StatusCodes.BadEventIdUnknown,
    StatusCodes.BadSubscriptionIdInvalid,
    StatusCodes.BadMonitoredItemIdInvalid,
    StatusCodes.BadShelvingTimeOutOfRange,
    StatusCodes.BadMethodInvalid,
    StatusCodes.BadNothingToDo,
}

METHODS = {
    "ConditionRefresh": ObjectIds.ConditionType_ConditionRefresh,
    "ConditionRefresh2": ObjectIds.ConditionType_ConditionRefresh2,
    "Acknowledge": ObjectIds.AcknowledgeableConditionType_Acknowledge,
    "Confirm": ObjectIds.AcknowledgeableConditionType_Confirm,
    "AddComment": ObjectIds.ConditionType_AddComment,
    "TimedShelve": ObjectIds.ShelvedStateMachineType_TimedShelve,
    "OneShotShelve": ObjectIds.ShelvedStateMachineType_OneShotShelve,
    "Enable": ObjectIds.ConditionType_Enable,
}

_V = ua.VariantType
variants = st.one_of(
    st.none().map(lambda _: ua.Variant()),
    st.booleans().map(lambda b: ua.Variant(b, _V.Boolean)),
    st.integers(-(2**31), 2**31 - 1).map(lambda i: ua.Variant(i, _V.Int32)),
    st.integers(0, 2**32 - 1).map(lambda i: ua.Variant(i, _V.UInt32)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: ua.Variant(i, _V.Int64)),
    st.floats().map(lambda f: ua.Variant(f, _V.Double)),
    st.text(max_size=50).map(lambda s: ua.Variant(s, _V.String)),
    st.binary(max_size=20).map(lambda b: ua.Variant(b, _V.ByteString)),
    st.text(max_size=50).map(lambda s: ua.Variant(ua.LocalizedText(s), _V.LocalizedText)),
    st.lists(st.integers(0, 9), max_size=3).map(lambda x: ua.Variant(x, _V.UInt32)),
)


class _Served:
    """A gateway OPC UA server and a client on an event loop of their own thread,
    so that hypothesis (synchronous) can drive calls over a real session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.journal = MemoryJournal()
        self.condition: ua.NodeId | None = None
        self.run(self._start())

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    async def _start(self) -> None:
        alarm = AlarmDefinition(
            id="pump1.current.limit",
            source_id="pump1.current",
            device_id="pump1",
            kind="limit",
            rule="limit",
            priority=Priority.HIGH,
        )
        engine = FakeEngine(
            Site.model_validate(SITE), alarms=lambda _t: AlarmManager(self.journal, [alarm])
        )
        self.service = OpcUaService(
            OpcUaOptions(host="127.0.0.1", port=0, security=["none"], anonymous=True)
        )
        await self.service.start(engine)
        self.client = Client(self.service.endpoint)
        await self.client.connect()

    async def call(self, method: int, args: list[ua.Variant]) -> int:
        request = ua.CallMethodRequest(
            ObjectId=numeric_id(ObjectIds.ConditionType),
            MethodId=numeric_id(method),
            InputArguments=args,
        )
        (result,) = await self.client.uaclient.call([request])
        return int(result.StatusCode.value)

    def close(self) -> None:
        async def stop() -> None:
            await self.client.disconnect()
            await self.service.stop()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[_Served]:
    s = _Served()
    yield s
    s.close()


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(sorted(METHODS)), args=st.lists(variants, max_size=4))
def test_any_method_arguments_get_a_standard_refusal(
    method: str, args: list[ua.Variant], served: _Served
) -> None:
    code = served.run(served.call(METHODS[method], args))
    assert code == StatusCodes.Good or code in REFUSALS, (method, args, hex(code))
    assert served.journal.recorded == []


@pytest.mark.parametrize(
    ("method", "args", "expected"),
    [
        ("ConditionRefresh", [ua.Variant("abc")], StatusCodes.BadInvalidArgument),
        ("ConditionRefresh", [ua.Variant()], StatusCodes.BadInvalidArgument),
        ("ConditionRefresh", [], StatusCodes.BadArgumentsMissing),
        ("ConditionRefresh2", [ua.Variant(1, _V.UInt32), ua.Variant("x")], StatusCodes.BadInvalidArgument),
        ("TimedShelve", [ua.Variant(True)], StatusCodes.BadInvalidArgument),
        ("TimedShelve", [ua.Variant(math.nan)], StatusCodes.BadInvalidArgument),
        ("Acknowledge", [ua.Variant(b"e", _V.ByteString), ua.Variant(5, _V.Int32)], StatusCodes.BadInvalidArgument),
        (
            "Acknowledge",
            [ua.Variant(b"e", _V.ByteString), ua.Variant(ua.LocalizedText("x")), ua.Variant(3)],
            StatusCodes.BadTooManyArguments,
        ),
        (
            "AddComment",
            [ua.Variant(b"e", _V.ByteString), ua.Variant(ua.LocalizedText("x" * 1_000_000))],
            StatusCodes.BadInvalidArgument,
        ),
        ("OneShotShelve", [ua.Variant(1)], StatusCodes.BadTooManyArguments),
    ],
)  # fmt: skip
def test_the_reported_arguments_get_their_status_codes(
    method: str, args: list[ua.Variant], expected: int, served: _Served
) -> None:
    async def call() -> ua.CallMethodResult:
        request = ua.CallMethodRequest(
            ObjectId=numeric_id(ObjectIds.ConditionType),
            MethodId=numeric_id(METHODS[method]),
            InputArguments=args,
        )
        (result,) = await served.client.uaclient.call([request])
        return result

    result = served.run(call())
    assert result.StatusCode.value == expected
    if expected == StatusCodes.BadInvalidArgument:
        bad = [r.value for r in result.InputArgumentResults if not r.is_good()]
        assert bad
        assert set(bad) <= {StatusCodes.BadTypeMismatch, StatusCodes.BadOutOfRange}
    assert served.journal.recorded == []
