"""The ISA-18.2 alarm state machine: every transition, through the one entry point,
journalled in a real SQLite store and restored by a new manager on the same file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from plantguard import alarms
from plantguard.alarms import Action, AlarmManager, AlarmPolicy, AlarmState, Shelving, Transition
from plantguard.auth import ANONYMOUS, Principal, Role
from plantguard.model import AlarmDefinition, Finding, Priority
from plantguard.store import Store

S = AlarmState
OPERATOR = Principal("olga", Role.OPERATOR)
ENGINEER = Principal("erik", Role.ENGINEER)
VIEWER = Principal("vera", Role.VIEWER)

DEFS = [
    AlarmDefinition(id="t.level.limit", source_id="t.level", device_id="t", rule="limit",
                    priority=Priority.HIGH),
    AlarmDefinition(id="t.trip", source_id="t.trip", device_id="t", kind="discrete",
                    rule="discrete", latching=True),
    AlarmDefinition(id="t.comm", source_id="t", device_id="t", kind="system", rule="comm"),
    AlarmDefinition(id="u.temp.limit", source_id="u.temp", device_id="u", rule="limit"),
]  # fmt: skip


def on(alarm: str, t: float, condition: str = "H", severity: int = 700) -> Finding:
    return Finding(alarm, True, condition, severity, f"{alarm} {condition}", 1.0, t)


def off(alarm: str, t: float) -> Finding:
    return Finding(alarm, False, "", 0, f"{alarm} normal", 0.0, t)


def _norm(statuses: dict[str, alarms.AlarmStatus]) -> dict[str, tuple[object, ...]]:
    """Statuses comparable across a store round trip (floats as text: NaN equals NaN)."""
    return {
        k: tuple(
            repr(float(x)) if isinstance(x, int | float) and not isinstance(x, bool) else x
            for x in (getattr(v, f) for f in v.__slots__)
        )
        for k, v in statuses.items()
    }


class Harness:
    def __init__(self, path: Path, policy: AlarmPolicy | None = None) -> None:
        self.path = path
        self.store = Store(str(path))
        self.m = AlarmManager(self.store, DEFS, policy=policy, users=self.store.users)
        self.heard: list[Transition] = []

        async def listen(ts: Sequence[Transition]) -> None:
            self.heard.extend(ts)

        self.m.subscribe(listen)

    def state(self, alarm: str) -> AlarmState:
        return self.m.status[alarm].state

    async def find(self, *findings: Finding) -> list[Transition]:
        return await self.m.apply_findings(list(findings))

    async def act(
        self, action: Action, alarm: str, who: Principal = OPERATOR, t: float = 0.0, **kw: object
    ) -> Transition:
        return await self.m.act(action, alarm, who, now=t, **kw)  # type: ignore[arg-type]

    def journal(self, alarm: str | None = None) -> list[tuple[str, str, str, str]]:
        return [
            (r.action, r.state_before, r.state_after, r.user) for r in self.store.journal(alarm)
        ]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "a.db")
    yield harness
    harness.store.close()


async def test_core_cycle_a_b_c_d(h: Harness) -> None:
    a = "t.level.limit"
    [t] = await h.find(on(a, 1))
    assert (t.before, t.after, t.action) == (S.NORMAL, S.UNACK, "activate")
    assert h.m.status[a].confirmed is False  # OPC UA: needs a Confirm after the acknowledgement
    await h.act(Action.ACKNOWLEDGE, a, t=2, comment="on it")
    assert h.state(a) is S.ACKED
    [t] = await h.find(off(a, 3))
    assert (t.after, h.m.status[a].retain) == (S.NORMAL, True)  # unconfirmed: still retained
    await h.act(Action.CONFIRM, a, t=4)
    assert h.m.status[a].retain is False
    # B → D → A: cleared before anyone acknowledged it.
    await h.find(on(a, 5))
    await h.find(off(a, 6))
    assert h.state(a) is S.RTN_UNACK
    await h.act(Action.ACKNOWLEDGE, a, t=7)
    assert h.state(a) is S.NORMAL
    # D → B: back before acknowledged.
    await h.find(on(a, 8))
    await h.find(off(a, 9))
    await h.find(on(a, 10))
    assert h.state(a) is S.UNACK
    assert h.m.status[a].active_since == 10
    assert h.journal(a)[1] == (
        "acknowledge",
        "active_unacknowledged",
        "active_acknowledged",
        "olga",
    )
    assert h.store.journal(a)[1].comment == "on it"


async def test_escalation_needs_a_new_acknowledgement(h: Harness) -> None:
    a = "t.level.limit"
    await h.find(on(a, 1, "H", 700))
    await h.act(Action.ACKNOWLEDGE, a, t=2)
    [t] = await h.find(on(a, 3, "HH", 900))
    assert (t.action, t.after) == ("change", S.UNACK)
    await h.act(Action.ACKNOWLEDGE, a, t=4)
    [t] = await h.find(on(a, 5, "H", 700))
    assert (t.action, t.after) == ("change", S.ACKED)


async def test_latched_alarm_waits_for_reset(h: Harness) -> None:
    a = "t.trip"
    await h.find(on(a, 1, "ON"))
    await h.find(off(a, 2))
    assert h.state(a) is S.LATCHED_UNACK
    with pytest.raises(alarms.NotAcknowledged):
        await h.act(Action.RESET, a, t=3)
    await h.act(Action.ACKNOWLEDGE, a, t=3)
    assert h.state(a) is S.LATCHED
    await h.act(Action.RESET, a, t=4)
    assert h.state(a) is S.NORMAL
    with pytest.raises(alarms.NotLatched):
        await h.act(Action.RESET, a, t=5)
    # acknowledged while active, then cleared: latches acknowledged
    await h.find(on(a, 6, "ON"))
    await h.act(Action.ACKNOWLEDGE, a, t=7)
    await h.find(off(a, 8))
    assert h.state(a) is S.LATCHED
    # re-activation while latched is a new occurrence
    await h.find(on(a, 9, "ON"))
    assert h.state(a) is S.UNACK


async def test_refusals_and_roles(h: Harness) -> None:
    a = "t.level.limit"
    with pytest.raises(alarms.UnknownAlarm, match="no alarm 'nope'"):
        await h.act(Action.ACKNOWLEDGE, "nope")
    with pytest.raises(alarms.AlreadyAcknowledged, match="nothing to acknowledge"):
        await h.act(Action.ACKNOWLEDGE, a)
    await h.find(on(a, 1))
    for who in (VIEWER, ANONYMOUS):
        with pytest.raises(alarms.AccessDenied):
            await h.act(Action.ACKNOWLEDGE, a, who)
    with pytest.raises(alarms.AccessDenied, match="needs the engineer role"):
        await h.act(Action.SHELVE, a, OPERATOR, duration=60)
    with pytest.raises(alarms.AccessDenied):
        await h.act(Action.REMOVE_FROM_SERVICE, a, OPERATOR)
    with pytest.raises(alarms.NotAcknowledged):
        await h.act(Action.CONFIRM, a)
    await h.act(Action.ACKNOWLEDGE, a, t=2)
    await h.act(Action.CONFIRM, a, t=3)
    with pytest.raises(alarms.AlreadyConfirmed):
        await h.act(Action.CONFIRM, a, t=4)
    with pytest.raises(alarms.ShelvingTimeOutOfRange):
        await h.act(Action.SHELVE, a, ENGINEER, duration=9 * 3600)
    with pytest.raises(alarms.ShelvingTimeOutOfRange):
        await h.act(Action.SHELVE, a, ENGINEER, duration=0)
    with pytest.raises(alarms.NotShelved):
        await h.act(Action.UNSHELVE, a, ENGINEER)
    with pytest.raises(alarms.NotOutOfService):
        await h.act(Action.RETURN_TO_SERVICE, a, ENGINEER)
    # Nothing refused was journalled: activate, acknowledge, confirm only.
    assert [j[0] for j in h.journal(a)] == ["activate", "acknowledge", "confirm"]
    # A comment is an action of its own, journalled and kept on the alarm.
    t = await h.act(Action.COMMENT, a, t=5, comment="pump checked")
    assert (t.before, t.after, h.m.status[a].comment) == (S.ACKED, S.ACKED, "pump checked")


async def test_timed_shelve_expires_and_reannunciates(h: Harness) -> None:
    a = "t.level.limit"
    await h.find(on(a, 1))
    t = await h.act(Action.SHELVE, a, ENGINEER, t=2, duration=100, comment="sensor fault")
    st = h.m.status[a]
    assert (st.shelving, st.shelved_until, st.available, t.user) == (
        Shelving.TIMED, 102, False, "erik",
    )  # fmt: skip
    with pytest.raises(alarms.AlreadyShelved):
        await h.act(Action.ONE_SHOT_SHELVE, a, ENGINEER, t=3)
    assert await h.m.tick(101) == []
    [t] = await h.m.tick(102)
    assert (t.action, t.user, t.comment) == ("unshelve", "system", "shelving time expired")
    assert (h.state(a), h.m.status[a].shelved) == (S.UNACK, False)  # still active: annunciated
    # shelved, and the alarm clears meanwhile: back to normal, nothing to acknowledge
    await h.act(Action.SHELVE, a, ENGINEER, t=110, duration=50)
    [t] = await h.find(off(a, 120))
    assert t.after is S.NORMAL
    await h.act(Action.UNSHELVE, a, ENGINEER, t=130)
    assert (h.state(a), h.m.status[a].shelved_until) == (S.NORMAL, None)


async def test_one_shot_shelve_ends_when_the_alarm_clears(h: Harness) -> None:
    a = "t.level.limit"
    await h.find(on(a, 1))
    await h.act(Action.ONE_SHOT_SHELVE, a, ENGINEER, t=2)
    st = h.m.status[a]
    assert (st.shelving, st.shelved_until) == (Shelving.ONE_SHOT, 2 + 8 * 3600)  # maximum time
    await h.find(on(a, 3, "HH", 900))  # still shelved while it changes
    assert h.m.status[a].shelved
    [t] = await h.find(off(a, 4))
    assert (t.after, h.m.status[a].shelving) == (S.NORMAL, Shelving.NONE)
    # one-shot is also bounded by the maximum shelving time
    await h.find(on(a, 5))
    await h.act(Action.ONE_SHOT_SHELVE, a, ENGINEER, t=6)
    [t] = await h.m.tick(6 + 8 * 3600)
    assert (t.action, h.state(a)) == ("unshelve", S.UNACK)


async def test_suppressed_by_design_while_the_device_is_offline(h: Harness) -> None:
    level, comm, other = "t.level.limit", "t.comm", "u.temp.limit"
    await h.find(on(level, 1))
    ts = await h.find(on(comm, 2, "LOST", 900))
    assert [(t.alarm_id, t.action) for t in ts] == [
        ("t.comm", "activate"),
        ("t.level.limit", "suppress"),
        ("t.trip", "suppress"),
    ]
    assert ts[1].comment == "device t offline"
    assert ts[1].user == "system"
    assert h.m.status[level].suppressed
    assert not h.m.status[comm].suppressed
    assert not h.m.status[other].suppressed  # another device
    # changes while suppressed are tracked, not annunciated
    await h.find(off(level, 3))
    assert h.state(level) is S.NORMAL
    await h.find(on(level, 4))
    ts = await h.find(off(comm, 5))
    assert [(t.alarm_id, t.action) for t in ts] == [
        ("t.comm", "clear"),
        ("t.level.limit", "unsuppress"),
        ("t.trip", "unsuppress"),
    ]
    assert h.state(level) is S.UNACK
    assert not h.m.status[level].suppressed


async def test_suppressed_by_design_under_maintenance_and_out_of_service(h: Harness) -> None:
    a, comm = "u.temp.limit", "t.comm"
    h.m.set_maintenance(["t"])
    ts = await h.m.tick(1)
    assert {t.alarm_id for t in ts} == {"t.level.limit", "t.trip", "t.comm"}  # comm too
    assert all(t.action == "suppress" and "maintenance" in t.comment for t in ts)
    await h.find(on(comm, 2))
    assert h.m.status[comm].state is S.UNACK
    assert h.m.status[comm].suppressed
    # Back from maintenance, but the comm alarm is active: the device is offline, so only
    # the comm alarm is annunciated; the others stay suppressed until it clears.
    ts = await h.m.set_device_maintenance("t", False, now=3)
    assert [(t.alarm_id, t.action, t.after) for t in ts] == [("t.comm", "unsuppress", S.UNACK)]
    assert h.m.status["t.level.limit"].suppressed
    # out of service (ISA H, OPC UA Disable)
    await h.find(on(a, 4))
    await h.act(Action.REMOVE_FROM_SERVICE, a, ENGINEER, t=5)
    st = h.m.status[a]
    assert (st.out_of_service, st.retain) == (True, False)
    with pytest.raises(alarms.AlarmDisabled):
        await h.act(Action.ACKNOWLEDGE, a, t=6)
    with pytest.raises(alarms.AlreadyOutOfService):
        await h.act(Action.REMOVE_FROM_SERVICE, a, ENGINEER, t=6)
    await h.find(off(a, 7))
    await h.act(Action.RETURN_TO_SERVICE, a, ENGINEER, t=8)
    assert (h.state(a), h.m.status[a].out_of_service) == (S.NORMAL, False)


async def test_chattering_and_flood_are_detected(h: Harness) -> None:
    a = "t.level.limit"
    for i in range(3):
        await h.find(on(a, 10 + i * 10))
        await h.find(off(a, 15 + i * 10))
    assert "chattering" in [j[0] for j in h.journal(a)]
    assert a in h.m.chatter.chattering
    await h.m.tick(200)
    assert a not in h.m.chatter.chattering
    policy = AlarmPolicy(flood_count=3, flood_window=600)
    flood = Harness(h.path.with_name("f.db"), policy)
    for i, alarm in enumerate(["t.level.limit", "t.trip", "t.comm", "u.temp.limit"]):
        await flood.find(on(alarm, 1000 + i))
    assert flood.m.flooding
    await flood.m.tick(1000 + 700)
    assert not flood.m.flooding
    flood.store.close()


async def test_every_state_and_shelve_survives_a_restart(h: Harness) -> None:
    await h.find(on("t.level.limit", 1))
    await h.act(Action.ACKNOWLEDGE, "t.level.limit", t=2, comment="ok")
    await h.find(on("u.temp.limit", 3))
    await h.act(Action.SHELVE, "u.temp.limit", ENGINEER, t=4, duration=3600)
    await h.find(on("t.trip", 5, "ON"))
    await h.find(off("t.trip", 6))
    await h.act(Action.REMOVE_FROM_SERVICE, "t.comm", ENGINEER, t=7)
    before = dict(h.m.status)
    n = len(h.journal())
    h.store.close()
    again = Harness(h.path)
    assert _norm(again.m.status) == _norm(before)
    assert again.m.status["u.temp.limit"].shelved_until == 3604
    assert again.m.status["t.level.limit"].last_user == "olga"
    assert len(again.journal()) == n
    # and the restored shelve still expires on time
    [t] = await again.m.tick(3604)
    assert (t.alarm_id, t.action) == ("u.temp.limit", "unshelve")
    again.store.close()


async def _hide(h: Harness, a: str, hide: str, t: float) -> None:
    if hide == "shelve":
        await h.act(Action.SHELVE, a, ENGINEER, t=t, duration=100)
    elif hide == "out_of_service":
        await h.act(Action.REMOVE_FROM_SERVICE, a, ENGINEER, t=t)
    else:  # suppressed by design: its device goes under maintenance
        h.m.set_maintenance(["t"])
        await h.m.tick(t)


async def _show(h: Harness, a: str, hide: str, t: float) -> None:
    if hide == "shelve":
        await h.act(Action.UNSHELVE, a, ENGINEER, t=t)
    elif hide == "out_of_service":
        await h.act(Action.RETURN_TO_SERVICE, a, ENGINEER, t=t)
    else:
        h.m.set_maintenance([])
        await h.m.tick(t)


async def _confirmed_then_hidden_occurrence(h: Harness, hide: str) -> str:
    """An alarm acknowledged, cleared (and confirmed where asked), then active again while
    hidden by ``hide`` and shown again."""
    a = "t.level.limit"
    await h.find(on(a, 1))
    await h.act(Action.ACKNOWLEDGE, a, t=2)
    await h.find(off(a, 3))
    if h.m.policy.confirm_required:
        await h.act(Action.CONFIRM, a, t=4)
    assert h.m.status[a].confirmed is True
    await _hide(h, a, hide, 5)
    await h.find(on(a, 6))  # nobody is told: it is hidden
    assert h.m.status[a].available is False
    await _show(h, a, hide, 7)
    return a


HIDE = ["shelve", "out_of_service", "suppression"]


@pytest.mark.parametrize("hide", HIDE)
async def test_an_alarm_annunciated_again_needs_a_new_confirmation(h: Harness, hide: str) -> None:
    a = await _confirmed_then_hidden_occurrence(h, hide)
    st = h.m.status[a]
    assert (st.state, st.confirmed, st.retain) == (S.UNACK, False, True)
    await h.act(Action.ACKNOWLEDGE, a, t=8)
    await h.find(off(a, 9))
    assert h.m.status[a].retain is True  # acknowledged and cleared, still to be confirmed
    await h.act(Action.CONFIRM, a, t=10)
    assert (h.state(a), h.m.status[a].retain) == (S.NORMAL, False)


@pytest.mark.parametrize("hide", HIDE)
async def test_without_confirmation_in_the_policy_none_is_asked(tmp_path: Path, hide: str) -> None:
    h = Harness(tmp_path / "b.db", AlarmPolicy(confirm_required=False))
    try:
        a = await _confirmed_then_hidden_occurrence(h, hide)
        st = h.m.status[a]
        assert (st.state, st.confirmed) == (S.UNACK, True)
    finally:
        h.store.close()
