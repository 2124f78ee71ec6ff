"""Login throttling (plantguard.throttle): delays and locks per user name and per client
address, with a fake clock; then the real OPC UA server with a real asyncua client.

No timing is asserted: the fake clock decides what "later" means, and the
integration test checks outcomes (refused, accepted, how many log lines), not
durations.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from pydantic import ValidationError

from plantguard.auth import DEMO_USERS, ensure_users
from plantguard.events import KINDS, EventBus, SecurityEvent
from plantguard.store import Store
from plantguard.testing import RunningSite, free_tcp_port, wait_for
from plantguard.throttle import LoginThrottle, ThrottleSettings
from plantguard_opcua.compat import PrincipalUserManager
from plantguard_opcua.options import LoginThrottleOptions, OpcUaOptions

HOST = "127.0.0.1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def make(
    clock: FakeClock, events: list[SecurityEvent] | None = None, **settings: Any
) -> LoginThrottle:
    sink = events if events is not None else []
    return LoginThrottle(
        ThrottleSettings(**settings),
        clock=clock,
        wall=lambda: 1_700_000_000.0 + clock.now,
        publish=sink.append,
        sleep=clock.sleep,
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "plantguard.throttle" and r.levelno >= logging.WARNING
    ]


# --- the core, with a fake clock ----------------------------------------------------------


def test_delay_starts_after_n_failures_and_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    t = make(clock, delay_after=3, lock_after=50, base_delay=0.5, max_delay=4.0)
    delays = []
    for _ in range(8):
        delays.append(t.check("bob", HOST).delay)
        t.fail("bob", HOST, 40000)
    assert delays == [0, 0, 0, 0.5, 1.0, 2.0, 4.0, 4.0]
    # The delay counts from the last failure: waiting it out leaves nothing to wait.
    clock.now += 1.5
    assert t.check("bob", HOST).delay == pytest.approx(2.5)
    clock.now += 2.5
    assert t.check("bob", HOST).delay == 0
    assert not t.check("bob", HOST).locked


async def test_lock_refuses_the_right_password_without_checking_it() -> None:
    clock = FakeClock()
    events: list[SecurityEvent] = []
    t = make(clock, events, delay_after=2, lock_after=4, lock_seconds=900)
    checked: list[str] = []

    def verify(password: str) -> Any:
        def check() -> str | None:
            checked.append(password)
            return "principal" if password == "right" else None

        return check

    for _ in range(4):
        assert await t.attempt("bob", HOST, 40001, verify("wrong")) is None
    assert t.check("bob", HOST).locked
    assert await t.attempt("bob", HOST, 40002, verify("right")) is None
    assert checked == ["wrong"] * 4  # the right password was never hashed
    assert t.counts["refused_locked"] == 1
    assert t.counts["delayed"] == 2  # attempts 3 and 4 waited (on the fake clock)
    assert clock.now == pytest.approx(1000 + 0.5 + 1.0)

    kinds = [(e.kind, e.detail.get("reason"), e.detail.get("scope")) for e in events]
    assert kinds == [
        *[("failed_login", "bad_credentials", None)] * 3,
        ("failed_login", "bad_credentials", None),
        ("login_locked", None, "user"),
        ("login_locked", None, "address"),
        ("failed_login", "locked", None),
    ]
    assert {e.source for e in events} == {HOST}
    assert events[0].user == "bob"
    assert events[0].detail["client"] == f"{HOST}:40001"
    assert events[-1].detail["client"] == f"{HOST}:40002"
    assert "login_locked" in KINDS


async def test_lock_expires_and_the_right_password_works_again() -> None:
    clock = FakeClock()
    t = make(clock, delay_after=2, lock_after=3, lock_seconds=60)
    for _ in range(3):
        await t.attempt("bob", HOST, None, lambda: None)
    assert await t.attempt("bob", HOST, None, lambda: "ok") is None
    clock.now += 59.9
    assert t.check("bob", HOST).locked
    clock.now += 0.2
    assert t.check("bob", HOST) == t.check("alice", "10.0.0.9")  # nothing left
    assert await t.attempt("bob", HOST, None, lambda: "ok") == "ok"
    assert len(t) == 0  # ended bursts are forgotten


def test_user_and_address_are_separate_keys() -> None:
    clock = FakeClock()
    t = make(clock, delay_after=3, lock_after=5)
    for _ in range(3):
        t.fail("bob", "10.0.0.1")
    assert t.check("alice", "10.0.0.1").delay > 0  # same address
    assert t.check("bob", "10.0.0.2").delay > 0  # same user
    assert t.check("alice", "10.0.0.2").delay == 0  # neither
    for _ in range(2):
        t.fail("bob", "10.0.0.1")
    assert t.check("alice", "10.0.0.1").locked
    assert t.check("bob", "10.0.0.2").locked
    assert not t.check("alice", "10.0.0.2").locked


def test_spraying_users_from_one_address_locks_the_address() -> None:
    t = make(FakeClock(), delay_after=3, lock_after=5)
    for n in range(5):
        t.fail(f"user{n}", "10.0.0.1")
    assert t.check("someone-else", "10.0.0.1").locked
    assert not t.check("user0", "10.0.0.2").locked


def test_success_resets_the_user_not_the_address() -> None:
    t = make(FakeClock(), delay_after=2, lock_after=4)
    for _ in range(3):
        t.fail("mallory", "10.0.0.1")
    t.succeed("bob", "10.0.0.1")  # a valid account on the guessing host
    t.fail("mallory2", "10.0.0.1")
    assert t.check("anyone", "10.0.0.1").locked  # the address kept counting

    t2 = make(FakeClock(), delay_after=2, lock_after=4)
    for _ in range(3):
        t2.fail("bob", "10.0.0.5")
    t2.succeed("bob", "10.0.0.5")
    assert t2.check("bob", "10.0.0.6").delay == 0  # bob's failures are forgiven
    assert t2.check("carol", "10.0.0.5").delay > 0  # the address's are not


def test_failures_are_forgotten_after_a_quiet_window() -> None:
    clock = FakeClock()
    t = make(clock, delay_after=2, lock_after=4, window=300)
    for _ in range(3):
        t.fail("bob", HOST)
    clock.now += 299
    assert t.check("bob", HOST).delay == 0  # the delay has long passed …
    t.fail("bob", HOST)
    assert t.check("bob", HOST).locked  # … but the failures still count
    t = make(clock, delay_after=2, lock_after=4, window=300)
    for _ in range(3):
        t.fail("bob", HOST)
    clock.now += 301
    t.fail("bob", HOST)
    assert not t.check("bob", HOST).locked
    assert t.check("bob", HOST).delay == 0  # a new burst: one failure


def test_tracked_keys_are_bounded() -> None:
    clock = FakeClock()
    t = make(clock, max_keys=100, delay_after=1, lock_after=2)
    t.fail("first", "10.0.0.1")
    for n in range(1000):
        clock.now += 0.001
        t.fail(f"u{n}", f"10.{n // 250}.{n % 250}.1")
    assert len(t) == 100
    assert t.check("first", "10.0.0.1").delay == 0  # dropped (least recently used)
    assert t.check("u999", "10.3.249.1").delay > 0  # recent: still tracked
    # Long names cost bounded memory: they are tracked by a digest.
    t.fail("x" * 100_000, None)
    assert t.check("x" * 100_000, None).delay > 0
    assert max(len(name) for _, name in t._bursts) < 200


async def test_a_check_is_recorded_even_if_the_client_hangs_up() -> None:
    t = LoginThrottle(ThrottleSettings(delay_after=5, lock_after=6), publish=lambda e: None)
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_wrong_password() -> None:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

    task = asyncio.create_task(t.attempt("bob", HOST, 1, slow_wrong_password))
    await wait_for(lambda: t.counts["checked"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await wait_for(lambda: t.counts["failed"] == 1)
    t.close()


def test_one_warning_when_throttled_one_when_locked_then_summaries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="plantguard.throttle")
    clock = FakeClock()
    t = make(clock, delay_after=5, lock_after=20, lock_seconds=900, summary_interval=60)
    for _ in range(4):
        t.fail("bob", HOST, 50000)
    assert warnings(caplog) == []  # a few typos are not an incident
    for _ in range(38):  # 42 in all, over 20 s
        clock.now += 20 / 38
        t.check("bob", HOST)
        t.fail("bob", HOST, 50000)
    for _ in range(300):
        t.refuse("bob", HOST, 50001)
    lines = warnings(caplog)
    assert len(lines) == 2, lines
    assert "throttling started for user 'bob' and address 127.0.0.1" in lines[0]
    assert "5 failed logins" in lines[0]
    assert "locked for user 'bob' and address 127.0.0.1 until" in lines[1]
    assert "20 failed logins" in lines[1]

    clock.now += 60
    t.sweep()
    t.sweep()  # nothing new: no second summary
    lines = warnings(caplog)
    assert len(lines) == 3, lines
    # User key and address key describe the same burst: one line, not two.
    assert "42 failed logins and 300 refused unchecked for 'bob' from 127.0.0.1 in" in lines[2]
    assert "; locked until " in lines[2]

    clock.now += 900
    t.sweep()
    lines = warnings(caplog)
    assert len(lines) == 4, lines
    assert "42 failed logins and 300 refused unchecked for 'bob' from 127.0.0.1" in lines[3]
    assert lines[3].endswith("ended: lock expired")
    assert len(t) == 0


def test_a_spray_from_one_address_is_summarised_by_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="plantguard.throttle")
    clock = FakeClock()
    t = make(clock, delay_after=3, lock_after=1000, summary_interval=10)
    for n in range(50):
        t.fail(f"user{n}", "10.0.0.66")
    clock.now += 10
    t.sweep()
    lines = warnings(caplog)
    assert len(lines) == 2, lines  # started, one summary
    assert "50 failed logins for 'user0', 'user1'" in lines[1]
    assert "and others from 10.0.0.66" in lines[1]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThrottleSettings(delay_after=0)
    with pytest.raises(ValueError, match="positive"):
        ThrottleSettings(lock_seconds=0)
    options = OpcUaOptions.model_validate(
        {"login_throttle": {"delay_after": 3, "lock_after": 10, "lock_seconds": 60}}
    )
    settings = options.login_throttle.settings()
    assert (settings.delay_after, settings.lock_after, settings.lock_seconds) == (3, 10, 60)
    assert OpcUaOptions().login_throttle == LoginThrottleOptions()
    assert LoginThrottleOptions().settings() == ThrottleSettings()
    with pytest.raises(ValidationError):
        OpcUaOptions.model_validate({"login_throttle": {"lock_after": 0}})
    with pytest.raises(ValidationError):
        OpcUaOptions.model_validate({"login_throttle": {"lockout": 5}})


def test_events_go_to_the_bus_the_rules_read() -> None:
    bus = EventBus()
    reader = bus.reader()
    t = LoginThrottle(ThrottleSettings(delay_after=1, lock_after=2), publish=bus.publish)
    t.fail("bob", HOST, 1234)
    t.fail("bob", HOST, 1235)
    t.refuse("bob", HOST, 1236)
    got = [(e.kind, e.source, e.user) for e in reader.drain()]
    assert got == [
        ("failed_login", HOST, "bob"),
        ("failed_login", HOST, "bob"),
        ("login_locked", HOST, "bob"),
        ("login_locked", HOST, "bob"),
        ("failed_login", HOST, "bob"),
    ]


# --- the real OPC UA server ---------------------------------------------------------------


def _site(sim: int, opcua: int, pki: Path) -> str:
    return f"""
id: plant
scan_interval: 0.2
rules:
  failed_logins: {{threshold: 3, window: 60}}
services:
  sim: {{port: {sim}, scenario: none}}
  opcua:
    port: {opcua}
    pki_dir: "{pki}"
    security: [none]
    anonymous: true
    login_throttle: {{delay_after: 2, lock_after: 4, lock_seconds: 3}}
areas:
  - id: yard
    devices:
      - id: tank1
        driver: modbus
        connection: {{host: 127.0.0.1, port: {sim}, unit: 2}}
        points:
          - {{id: level, address: {{register: 0}}}}
"""


async def _login(endpoint: str, user: str | None, password: str | None = None) -> int:
    """0 if a session was activated (and a value read), else the refusal's status code."""
    client = Client(endpoint, timeout=10)
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    try:
        async with client:
            await client.nodes.server_state.read_value()
    except UaStatusCodeError as exc:
        return int(exc.code)
    return 0


@pytest.mark.integration
async def test_opcua_wrong_passwords_lock_then_the_lock_expires(
    running_site: RunningSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db = str(tmp_path / "t.db")
    store = Store(db)
    ensure_users(store.users, DEMO_USERS)
    store.close()
    opcua = free_tcp_port()
    endpoint = f"opc.tcp://127.0.0.1:{opcua}/plantguard"
    denied = StatusCodes.BadUserAccessDenied
    async with running_site(_site(free_tcp_port(), opcua, tmp_path / "pki"), db=db) as engine:
        server = engine.services["opcua"].server  # type: ignore[attr-defined]
        manager = server.iserver.user_manager
        assert isinstance(manager, PrincipalUserManager)
        # The site file's login_throttle reached the server.
        assert manager.throttle.settings == ThrottleSettings(
            delay_after=2, lock_after=4, lock_seconds=3
        )
        checks: list[str] = []
        authenticate = manager._authenticate

        def counting(name: str, password: str) -> Any:
            checks.append(name)
            return authenticate(name, password)

        manager._authenticate = counting

        assert await _login(endpoint, "operator", "operator") == 0
        attempts = 12
        results = [await _login(endpoint, "operator", f"guess{n}") for n in range(attempts)]
        assert results == [denied] * attempts
        assert manager.throttle.check("operator", HOST).locked
        hashed = len(checks)
        assert hashed == 1 + 4  # the good login, then 4 wrong ones until the lock

        # Locked: the right password is refused, unchecked; anonymous still browses.
        assert await _login(endpoint, "operator", "operator") == denied
        assert await _login(endpoint, "viewer", "viewer") == denied  # same address
        assert len(checks) == hashed
        assert await _login(endpoint, None) == 0

        await wait_for(lambda: not manager.throttle.check("operator", HOST).locked, timeout=15)
        assert await _login(endpoint, "operator", "operator") == 0
        assert len(checks) == hashed + 1

    server_lines = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and (r.name.startswith("plantguard") or r.name.startswith("asyncua.server"))
        and "device tank1" not in r.getMessage()  # the site's Modbus device is not served
    ]
    messages = [r.getMessage() for r in server_lines]
    login_lines = [m for m in messages if "login" in m.lower()]
    assert len(login_lines) <= 4, messages  # started, locked, (summary), ended
    assert any("locked for user 'operator' and address 127.0.0.1" in m for m in login_lines)
    assert len(messages) < attempts, messages


def test_refusals_by_a_lock_are_published_at_most_once_a_second() -> None:
    clock = FakeClock()
    events: list[SecurityEvent] = []
    t = make(clock, events, delay_after=1, lock_after=2)
    t.fail("bob", HOST)
    t.fail("bob", HOST)
    del events[:]
    for _ in range(3):
        for _ in range(1000):
            t.refuse("bob", HOST, 5000)
            clock.now += 0.0005
        clock.now += 0.5  # 1 s per round
    clock.now += 0.1
    t.refuse("bob", HOST, 5000)
    counts = [int(e.detail["count"]) for e in events]
    assert [e.detail["reason"] for e in events] == ["locked"] * len(counts)
    assert len(counts) == 4
    assert counts[0] == 1
    assert sum(counts) <= 3001
    assert t.counts["refused_locked"] == 3001
