"""Batching samples into the store, and keeping history within its retention.

The engine hands over whole blocks (numpy arrays) as they are read; the writer
concatenates them and writes one bulk insert per flush interval, in a worker
thread so that a slow disk never delays a poll.  Retention is applied by the
same writer on the same cadence, so there is one place that touches the history
table and a retention of minutes is held to within one flush interval.

Retention costs nothing while there is nothing to remove: the writer keeps the
oldest source time in the store (one index lookup at start and after each
purge, lowered by every write), so a flush only issues a ``DELETE`` when that
time has fallen behind the cutoff.  The ``DELETE`` itself runs along the index
on source time in bounded chunks (:meth:`Store.purge_history`; on PostgreSQL the
expired days' partitions are dropped whole first), and on SQLite the freed pages
then go back to the file system a bounded step per flush
(:meth:`Store.reclaim_space`).  See docs/history.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from .model import StoreSettings
from .store import Store

__all__ = ["HistoryWriter", "format_duration"]

log = logging.getLogger(__name__)

#: A purge removes at most this many batches' worth of rows per flush, so a large
#: backlog (a retention just shortened) drains over several flushes, several times
#: faster than samples arrive, without holding up the writes in between.
_PURGE_BATCHES_PER_FLUSH = 4

#: The oldest stored time is looked up afresh this often (one index lookup), in case
#: another process wrote samples older than the ones this writer knows of.
_RECHECK_EVERY = 3600.0

#: A retention of minutes removes samples at every flush: the log says so once, then
#: at most this often (with the count since its last line); each purge is at DEBUG.
_LOG_EVERY = 3600.0

_UNITS = (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0), ("s", 1.0))


def format_duration(seconds: float) -> str:
    """``9000`` → ``"2 h 30 min"``: the two largest units, rounded to the smaller one.

    Whole days stay days (``"30 d"``); under a minute shows seconds with up to one
    decimal (``"5 s"``, ``"0.5 s"``).
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 1:
        return f"{seconds:.2g} s"
    if round(seconds, 1) < 60:
        return f"{round(seconds, 1):g} s"
    seconds = max(seconds, 60.0)  # 59.96 s is "1 min"
    for i, (unit, size) in enumerate(_UNITS[:-1]):
        if seconds >= size:
            small_unit, small_size = _UNITS[i + 1]
            total = round(seconds / small_size)  # in the smaller unit
            if i > 0 and total * small_size >= _UNITS[i - 1][1]:
                return format_duration(total * small_size)  # 23 h 59.9 min is "1 d"
            big, small = divmod(total, round(size / small_size))
            return f"{big} {unit} {small} {small_unit}" if small else f"{big} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


class HistoryWriter:
    def __init__(
        self,
        store: Store,
        settings: StoreSettings,
        point_keys: npt.NDArray[np.int64],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._settings = settings.history
        self._keys = point_keys  # table index → store key
        self._clock = clock
        self._blocks: list[
            tuple[
                npt.NDArray[np.int64],
                npt.NDArray[np.float64],
                npt.NDArray[np.float64],
                npt.NDArray[np.uint8],
            ]
        ] = []
        self._pending = 0
        self._wake = asyncio.Event()
        self._closing = False
        #: Oldest source time in the store (``inf`` when empty); ``None`` until looked up.
        self._oldest: float | None = None
        self._looked_up = -math.inf  # clock time of the last full lookup
        self._logged = -math.inf  # clock time of the last retention log line
        self._unlogged = 0  # samples removed since that line
        #: Free pages are left to return to the file system (SQLite).
        self._reclaim = False
        self.written = 0
        self.purged = 0

    @property
    def retention(self) -> float:
        """Seconds of history kept."""
        return self._settings.retention_days * 86_400.0

    def append(
        self,
        idx: npt.NDArray[np.intp],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        source_time: npt.NDArray[np.float64],
    ) -> None:
        """Queue samples of table slots ``idx`` (arrays are copied)."""
        if idx.size == 0:
            return
        self._blocks.append((self._keys[idx], source_time.copy(), values.copy(), quality.copy()))
        self._pending += int(idx.size)
        if self._pending >= self._settings.max_batch:
            self._wake.set()

    async def run(self) -> None:
        """Every ``flush_interval`` (or sooner when a batch fills) :meth:`tick`, until
        :meth:`close`.

        Stopping goes through :meth:`close`, not cancellation: a write cancelled
        half-way would still finish in its worker thread, after the caller had
        moved on believing everything was flushed.
        """
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval)
            self._wake.clear()
            if self._closing:
                break
            await self.tick()
        await self.flush()

    def close(self) -> None:
        """Ask :meth:`run` to write what is queued and return."""
        self._closing = True
        self._wake.set()

    async def tick(self) -> None:
        """One flush interval's work: write what is queued, then hold the retention.

        A failed purge (the database busy for longer than its timeout) is logged and
        tried again on the next tick; a failed write is not caught.
        """
        await self.flush()
        try:
            await self.purge()
            if self._reclaim:
                self._reclaim = await asyncio.to_thread(self._store.reclaim_space) > 0
        except sa.exc.OperationalError as exc:
            self._oldest = None  # look it up again next time
            log.warning("history retention: %s; trying again at the next flush", exc.orig or exc)

    async def flush(self) -> int:
        if not self._blocks:
            return 0
        blocks, self._blocks, self._pending = self._blocks, [], 0
        keys, times, values, quality = (
            np.concatenate(parts) for parts in zip(*blocks, strict=True)
        )
        n = await asyncio.to_thread(self._store.write_history, keys, times, values, quality)
        self.written += n
        if self._oldest is not None and n:
            self._oldest = min(self._oldest, float(np.min(times)))
        return n

    async def purge(self) -> int:
        """Delete samples older than the retention, if the oldest stored one is.

        Issues no statement at all when the oldest stored sample is within the
        retention (after the first call, which looks it up).  The first removal is
        logged at once, later ones at most hourly, with the count since the last line.
        """
        now = self._clock()
        cutoff = now - self.retention
        if self._oldest is None or now - self._looked_up >= _RECHECK_EVERY:
            oldest = await asyncio.to_thread(self._store.oldest_history_time)
            self._oldest = math.inf if oldest is None else oldest
            self._looked_up = now
        if not self._oldest < cutoff:
            return 0
        budget = _PURGE_BATCHES_PER_FLUSH * self._settings.max_batch
        removed, oldest = await asyncio.to_thread(self._purge, cutoff, self._oldest, budget)
        self._oldest = math.inf if oldest is None else oldest
        self.purged += removed
        if removed:
            self._reclaim = True
            self._log_removed(removed, now)
        return removed

    def _log_removed(self, removed: int, now: float) -> None:
        self._unlogged += removed
        older_than = format_duration(self.retention)
        if now - self._logged < _LOG_EVERY:
            log.debug(
                "history retention: removed %s samples older than %s", f"{removed:,}", older_than
            )
            return
        log.info(
            "history retention: removed %s samples older than %s",
            f"{self._unlogged:,}",
            older_than,
        )
        self._logged, self._unlogged = now, 0

    def _purge(self, cutoff: float, since: float, budget: int) -> tuple[int, float | None]:
        """Delete what the retention no longer covers and find the new oldest time.

        Both start at the oldest time known (``since``), and the lookup at the cutoff
        once everything before it is gone, so neither walks the index entries of
        rows deleted earlier (PostgreSQL keeps them until the next vacuum).
        """
        removed = self._store.purge_history(cutoff, since=since, max_rows=budget)
        after = cutoff if removed < budget else since
        return removed, self._store.oldest_history_time(since=after)
