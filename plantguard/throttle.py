"""Login throttling: slow password guessing down, then lock it out, at a fixed cost per try.

Why this exists.  Before it, the OPC UA server checked every password with scrypt
(tens of milliseconds of CPU) *on the event loop*, wrote one WARNING line per wrong
password and never stopped anyone.  Measured on the development machine: 318 wrong
passwords in 20 s from one client, 684 over one secure channel, 36/s from four
clients; the right password was still accepted after 1,002 failures; and the plant
side suffered with it — Modbus polling, due every 0.5 s, went 0.71 s without a poll
during the attack, because every scrypt check held the loop.

What it does.  Failed logins are counted per *key*: the user name, and the client's
address (host, without the port, so new connections do not start afresh).  For each
key:

* the first ``delay_after`` failures (5) cost nothing extra;
* each further attempt waits until ``base_delay`` (0.5 s), doubling per failure up to
  ``max_delay``, has passed since the key's last failure;
* at ``lock_after`` failures (20) the key is locked for ``lock_seconds`` (15 min): every
  attempt involving a locked key is refused at once, *without checking the password*
  (no scrypt cost) — the right password included;
* a burst ends when its lock expires, or after ``window`` seconds with no failure, and
  is forgotten.

A successful login ends the *user's* burst (a legitimate user who mistyped is not
punished afterwards); it does not touch the address's — one valid account must not
reset the counter of a host guessing at others.  At most ``max_keys`` keys are
tracked (least recently used dropped first), so an attacker spraying names or
addresses costs bounded memory.

What is reported.  Refused attempts are published on the security event bus as
``failed_login`` (source: the client's host; ``detail``: ``client`` host:port and
``reason`` ``bad_credentials`` or ``locked``): every wrong password, and the attempts a
lock refuses at most once a second per key (``detail`` ``count``: how many refusals the
event stands for), so the ``failed_logins`` rule keeps seeing an attack while it is
locked out without a flood on the bus; each lock as ``login_locked`` (``detail``:
``scope`` user/address, ``key``, ``until``, ``failures``).  The log gets a summary,
not a line per try: one WARNING when a key starts being throttled, one when it is
locked, one every ``summary_interval`` while attempts continue, and one when the
burst ends — for example::

    OPC UA login: 42 failed logins for 'bob' from 127.0.0.1 in 20 s; locked until 12:15:00

The core (:meth:`LoginThrottle.check`, :meth:`~LoginThrottle.fail`,
:meth:`~LoginThrottle.succeed`, :meth:`~LoginThrottle.refuse`,
:meth:`~LoginThrottle.sweep`) does no I/O and takes its time from an injectable
clock; :meth:`LoginThrottle.attempt` is the asyncio driver a server uses — it waits
with ``asyncio.sleep``, runs the password check in a worker thread, one check at a
time, and records its outcome even if the client hangs up meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .events import SecurityEvent
from .events import publish as publish_event

__all__ = ["LoginThrottle", "ThrottleSettings", "Verdict"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Scope = Literal["user", "address"]
_Key = tuple[Scope, str]

#: User names longer than this are tracked by a digest (bounded memory per key).
_MAX_NAME = 128
#: Names of the other side kept per burst for the log (addresses of a user, users of an address).
_MAX_OTHERS = 5
#: Lazy sweeps (summaries, ended bursts) run at most this often from check().
_SWEEP_EVERY = 1.0
#: Seconds between ``failed_login`` events for attempts refused by one lock.
_REFUSALS_EVENT_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """When failed logins are delayed and locked out (see the module docstring)."""

    delay_after: int = 5
    lock_after: int = 20
    lock_seconds: float = 900.0
    window: float = 900.0
    base_delay: float = 0.5
    max_delay: float = 4.0
    max_keys: int = 10_000
    summary_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.delay_after < 1 or self.lock_after < 1:
            raise ValueError("delay_after and lock_after must be at least 1")
        if min(self.lock_seconds, self.window, self.summary_interval) <= 0:
            raise ValueError("lock_seconds, window and summary_interval must be positive")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if self.max_keys < 2:
            raise ValueError("max_keys must be at least 2")

    def delay_for(self, failures: int) -> float:
        """Seconds an attempt waits after the last of ``failures`` failures of a key."""
        if failures < self.delay_after:
            return 0.0
        exponent = failures - self.delay_after
        if exponent >= 64:
            return self.max_delay
        return min(self.base_delay * 2.0**exponent, self.max_delay)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What may happen to an attempt now: wait ``delay`` seconds, or be refused if locked."""

    delay: float = 0.0
    #: Clock time the lock ends (the latest of the keys locked), None if not locked.
    locked_until: float | None = None

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


@dataclass(slots=True)
class _Burst:
    scope: Scope
    name: str
    first: float
    last: float
    failures: int = 0
    refused: int = 0
    locked_until: float = -math.inf
    #: The last failure or refusal.
    seen: float = 0.0
    #: Refusals not yet published as an event, and when the last event was.
    unpublished: int = 0
    published_at: float = -math.inf
    #: The start (or lock) line was written: a summary and an end line are owed.
    throttled: bool = False
    others: dict[str, None] = field(default_factory=dict)
    more_others: bool = False
    summary_at: float = 0.0
    summarised: tuple[int, int] = (0, 0)

    def locked(self, now: float) -> bool:
        return self.locked_until > now

    def was_locked(self) -> bool:
        return self.locked_until > -math.inf

    def add_other(self, name: str) -> None:
        if name in self.others:
            return
        if len(self.others) < _MAX_OTHERS:
            self.others[name] = None
        else:
            self.more_others = True


def _key_name(user: str) -> str:
    if len(user) <= _MAX_NAME:
        return user
    return "sha256:" + hashlib.sha256(user.encode("utf-8", "replace")).hexdigest()


def _shown_user(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:40] + "…")


def _names(names: Iterable[str], more: bool, show: Callable[[str], str]) -> str:
    shown = [show(n) for n in names]
    if more:
        shown.append("others")
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _failed(count: int) -> str:
    return f"{count} failed login{'' if count == 1 else 's'}"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1g} s" if value < 1 else f"{value:.1f} s"


class LoginThrottle:
    """Counts failed logins per user name and per client address; delays, then locks.

    :param settings: thresholds and limits.
    :param service: names the service in log lines ("OPC UA").
    :param clock: monotonic seconds (injectable for tests).
    :param wall: wall-clock seconds, for "locked until" and event times.
    :param publish: where security events go (the process-wide bus by default).
    :param sleep: how :meth:`attempt` waits (``asyncio.sleep``; tests pass one that
        advances their clock).
    """

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        *,
        service: str = "OPC UA",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        publish: Callable[[SecurityEvent], None] = publish_event,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings or ThrottleSettings()
        self.service = service
        self._clock = clock
        self._wall = wall
        self._publish = publish
        self._sleep = sleep
        self._bursts: OrderedDict[_Key, _Burst] = OrderedDict()
        self._throttled: set[_Key] = set()
        self._swept = -math.inf
        self._slot: asyncio.Semaphore | None = None
        self._pending: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        #: Attempts seen, and how they ended (for diagnostics and benchmarks).
        self.counts: dict[str, int] = dict.fromkeys(
            ("attempts", "delayed", "checked", "failed", "succeeded", "refused_locked"), 0
        )

    # --- the core: no I/O, time from the clock -----------------------------------------

    def __len__(self) -> int:
        """Keys currently tracked."""
        return len(self._bursts)

    def check(self, user: str, address: str | None) -> Verdict:
        """May an attempt for ``user`` from ``address`` be checked now, after a wait, or never?"""
        now = self._clock()
        if now - self._swept >= _SWEEP_EVERY:
            self.sweep()
        delay = 0.0
        until: float | None = None
        ended: list[tuple[_Burst, str]] = []
        for key in self._keys(user, address):
            burst = self._live(key, now, ended)
            if burst is None:
                continue
            if burst.locked(now):
                until = burst.locked_until if until is None else max(until, burst.locked_until)
            else:
                delay = max(delay, burst.last + self.settings.delay_for(burst.failures) - now)
        self._report_ended(ended, now)
        return Verdict(delay=max(delay, 0.0), locked_until=until)

    def refuse(self, user: str, address: str | None, port: int | None = None) -> None:
        """Record an attempt refused unchecked because a key is locked.

        Refusals are cheap, so a locked-out client can make thousands a second; they
        are published as at most one ``failed_login`` event a second per locked key,
        whose ``detail["count"]`` says how many refusals it stands for.
        """
        now = self._clock()
        self.counts["refused_locked"] += 1
        locked: list[_Burst] = []
        for key in reversed(self._keys(user, address)):  # the address's first
            burst = self._bursts.get(key)
            if burst is not None and burst.locked(now):
                burst.refused += 1
                burst.seen = now
                self._bursts.move_to_end(key)
                locked.append(burst)
        if locked:
            counter = locked[0]
            counter.unpublished += 1
            if now - counter.published_at >= _REFUSALS_EVENT_EVERY:
                count, counter.unpublished, counter.published_at = counter.unpublished, 0, now
                self._event("failed_login", user, address, port, reason="locked", count=str(count))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s login for %s from %s refused: locked", self.service, _shown_user(user), address
            )

    def fail(self, user: str, address: str | None, port: int | None = None) -> None:
        """Record a wrong user name or password."""
        now = self._clock()
        self.counts["failed"] += 1
        started: list[_Burst] = []
        locked: list[_Burst] = []
        ended: list[tuple[_Burst, str]] = []
        for key in self._keys(user, address):
            burst = self._live(key, now, ended) or self._new(key, now)
            burst.failures += 1
            burst.last = burst.seen = now
            burst.add_other((address or "?") if key[0] == "user" else _key_name(user))
            if burst.failures >= self.settings.lock_after and not burst.locked(now):
                burst.locked_until = now + self.settings.lock_seconds
                locked.append(burst)
            elif not burst.throttled and burst.failures >= self.settings.delay_after:
                started.append(burst)
        self._report_ended(ended, now)
        for b in (*started, *locked):
            if not b.throttled:
                b.throttled = True
                b.summary_at = now
                self._throttled.add((b.scope, b.name))
            b.summarised = (b.failures, b.refused)
        self._event("failed_login", user, address, port, reason="bad_credentials")
        client = self._client(address, port)
        if locked:
            until = max(b.locked_until for b in locked)
            log.warning(
                "%s logins locked for %s until %s (%s): %s (last: %s from %s); "
                "every attempt is refused unchecked until then",
                self.service,
                self._scopes(locked),
                self._at(until, now),
                _seconds(self.settings.lock_seconds),
                self._counts(locked, now),
                _shown_user(user),
                client,
            )
            for b in locked:
                self._event(
                    "login_locked",
                    user,
                    address,
                    port,
                    scope=b.scope,
                    key=b.name,
                    until=self._iso(b.locked_until, now),
                    failures=str(b.failures),
                )
        elif started:
            log.warning(
                "%s login throttling started for %s: %s (last: %s from %s); "
                "further attempts wait %s, doubling up to %s; locked at %d failures",
                self.service,
                self._scopes(started),
                self._counts(started, now),
                _shown_user(user),
                client,
                _seconds(self.settings.base_delay),
                _seconds(self.settings.max_delay),
                self.settings.lock_after,
            )

    def succeed(self, user: str, address: str | None = None) -> None:
        """Record a successful login: the user's burst ends (the address's does not)."""
        now = self._clock()
        self.counts["succeeded"] += 1
        key: _Key = ("user", _key_name(user))
        burst = self._bursts.pop(key, None)
        if burst is not None:
            self._throttled.discard(key)
            if burst.throttled:
                self._report([burst], now, "ended: login succeeded")

    def sweep(self) -> None:
        """Write the summaries that are due and end bursts that are over.

        Called from :meth:`check` at most once a second and by :meth:`attempt`'s timer;
        call it yourself when driving the core without :meth:`attempt`.
        """
        now = self._clock()
        self._swept = now
        due: list[_Burst] = []
        ended: list[tuple[_Burst, str]] = []
        for key in list(self._throttled):
            burst = self._live(key, now, ended)
            if burst is None:
                continue
            activity = (burst.failures, burst.refused) != burst.summarised
            if activity and now - burst.summary_at >= self.settings.summary_interval:
                burst.summary_at = now
                burst.summarised = (burst.failures, burst.refused)
                due.append(burst)
        self._report_ended(ended, now)
        if due:
            self._report(due, now, None)

    def next_due(self) -> float | None:
        """Clock time of the next summary or burst end :meth:`sweep` would report."""
        times: list[float] = []
        for key in self._throttled:
            b = self._bursts[key]
            end = b.locked_until if b.was_locked() else b.last + self.settings.window
            times.append(end)
            if (b.failures, b.refused) != b.summarised:
                times.append(b.summary_at + self.settings.summary_interval)
        return min(times, default=None)

    # --- the asyncio driver ------------------------------------------------------------------

    async def attempt(
        self,
        user: str,
        address: str | None,
        port: int | None,
        verify: Callable[[], T | None],
    ) -> T | None:
        """Throttle one login and run ``verify`` (the password check) if it may run.

        Returns what ``verify`` returns, or None when the attempt is refused (a locked
        key) or ``verify`` returned None (recorded as a failure).  Waiting is
        ``asyncio.sleep``; ``verify`` runs in a worker thread, one check at a time per
        throttle (so an attack costs at most one core's worth of hashing and never the
        event loop).  Once started, a check is finished and recorded even if the caller
        is cancelled (a client that hangs up does not escape counting).
        """
        self.counts["attempts"] += 1
        delayed = False
        try:
            while True:
                verdict = self.check(user, address)
                if verdict.locked:
                    self.refuse(user, address, port)
                    return None
                if verdict.delay > 0:
                    if not delayed:
                        delayed = True
                        self.counts["delayed"] += 1
                    await self._sleep(verdict.delay)
                    continue
                if self._slot is None:
                    self._slot = asyncio.Semaphore(1)
                await self._slot.acquire()
                # No await from here until the check owns the slot: the check task
                # releases it when the hash is done, even if this caller is cancelled.
                verdict = self.check(user, address)
                if verdict.locked or verdict.delay > 0:
                    self._slot.release()
                    if verdict.locked:
                        self.refuse(user, address, port)
                        return None
                    continue  # others failed while this one queued: wait again
                task = asyncio.ensure_future(self._verify(user, address, port, verify, self._slot))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                return await asyncio.shield(task)
        finally:
            self._arm_timer()

    async def _verify(
        self,
        user: str,
        address: str | None,
        port: int | None,
        verify: Callable[[], T | None],
        slot: asyncio.Semaphore,
    ) -> T | None:
        try:
            self.counts["checked"] += 1
            result = await asyncio.to_thread(verify)
        finally:
            slot.release()
        if result is None:
            self.fail(user, address, port)
        else:
            self.succeed(user, address)
        return result

    def attempt_now(
        self,
        user: str,
        address: str | None,
        port: int | None,
        verify: Callable[[], T | None],
    ) -> T | None:
        """:meth:`attempt` for a caller that cannot wait: locks refuse, delays are skipped,
        ``verify`` runs in the caller's thread."""
        self.counts["attempts"] += 1
        if self.check(user, address).locked:
            self.refuse(user, address, port)
            return None
        self.counts["checked"] += 1
        result = verify()
        if result is None:
            self.fail(user, address, port)
        else:
            self.succeed(user, address)
        return result

    def close(self) -> None:
        """Cancel the pending sweep timer (pending checks finish on their own)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self) -> None:
        """Keep one timer pending while bursts are throttled, so that summaries and ends
        are written even when no one tries to log in any more.  It fires at least every
        ``summary_interval`` (then re-arms), so arming is cheap while one is pending."""
        if not self._throttled:
            return
        loop = asyncio.get_running_loop()
        timer = self._timer
        if timer is not None and self._timer_loop is loop and not timer.cancelled():
            return
        due = self.next_due()
        if due is None:
            return
        delay = min(max(due - self._clock(), 0.0), self.settings.summary_interval) + 0.05
        self._timer_loop = loop
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.sweep()
        if self._throttled:
            self._arm_timer()

    # --- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _keys(user: str, address: str | None) -> list[_Key]:
        keys: list[_Key] = [("user", _key_name(user))]
        if address:
            keys.append(("address", address))
        return keys

    def _new(self, key: _Key, now: float) -> _Burst:
        burst = _Burst(key[0], key[1], first=now, last=now, seen=now)
        self._bursts[key] = burst
        while len(self._bursts) > self.settings.max_keys:
            old_key, _ = self._bursts.popitem(last=False)
            self._throttled.discard(old_key)
        return burst

    def _live(self, key: _Key, now: float, ended: list[tuple[_Burst, str]]) -> _Burst | None:
        """The key's burst, or None (ending it first, onto ``ended``, if it is over)."""
        burst = self._bursts.get(key)
        if burst is None:
            return None
        if burst.locked(now):
            return burst
        if burst.was_locked():
            reason = "ended: lock expired"
        elif now - burst.last >= self.settings.window:
            reason = f"ended: no failure for {_seconds(self.settings.window)}"
        else:
            return burst
        del self._bursts[key]
        self._throttled.discard(key)
        if burst.throttled:
            ended.append((burst, reason))
        return None

    def _report_ended(self, ended: list[tuple[_Burst, str]], now: float) -> None:
        reasons: dict[str, list[_Burst]] = {}
        for burst, reason in ended:
            reasons.setdefault(reason, []).append(burst)
        for reason, bursts in reasons.items():
            self._report(bursts, now, reason)

    def _report(self, bursts: list[_Burst], now: float, ending: str | None) -> None:
        """One line per distinct subject: a user key and an address key describing the
        same burst ('bob' from 127.0.0.1) are written once."""
        by_subject: dict[str, list[_Burst]] = {}
        for b in bursts:
            by_subject.setdefault(self._subject(b), []).append(b)
        for subject, group in by_subject.items():
            failures = max(b.failures for b in group)
            refused = max(b.refused for b in group)
            span = max(b.seen for b in group) - min(b.first for b in group)
            text = _failed(failures)
            if refused:
                text += f" and {refused} refused unchecked"
            if ending is not None:
                state = ending
            else:
                until = max(b.locked_until for b in group)
                state = (
                    f"locked until {self._at(until, now)}"
                    if until > now
                    else "further attempts are delayed"
                )
            log.warning(
                "%s login: %s %s in %s; %s", self.service, text, subject, _seconds(span), state
            )

    @staticmethod
    def _subject(b: _Burst) -> str:
        if b.scope == "user":
            return f"for {_shown_user(b.name)} from {_names(b.others, b.more_others, str)}"
        return f"for {_names(b.others, b.more_others, _shown_user)} from {b.name}"

    @staticmethod
    def _scopes(bursts: list[_Burst]) -> str:
        return " and ".join(
            f"user {_shown_user(b.name)}" if b.scope == "user" else f"address {b.name}"
            for b in bursts
        )

    def _counts(self, bursts: list[_Burst], now: float) -> str:
        parts = {f"{_failed(b.failures)} in {_seconds(now - b.first)}" for b in bursts}
        if len(parts) == 1:
            return parts.pop()
        return ", ".join(
            f"{'user' if b.scope == 'user' else 'address'} {b.failures} failed in "
            f"{_seconds(now - b.first)}"
            for b in bursts
        )

    @staticmethod
    def _client(address: str | None, port: int | None) -> str:
        if not address:
            return "an unknown address"
        host = f"[{address}]" if ":" in address and port is not None else address
        return host if port is None else f"{host}:{port}"

    def _at(self, clock_time: float, now: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self._wall() + clock_time - now))

    def _iso(self, clock_time: float, now: float) -> str:
        wall = self._wall() + clock_time - now
        return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="seconds")

    def _event(
        self, kind: str, user: str, address: str | None, port: int | None, **detail: str
    ) -> None:
        info = {"client": self._client(address, port), **detail}
        self._publish(
            SecurityEvent(kind, source=address or "", user=user, detail=info, time=self._wall())
        )
