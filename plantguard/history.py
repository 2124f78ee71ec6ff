"""Batching samples into the store.

The engine hands over whole blocks (numpy arrays) as they are read; the writer
concatenates them and writes one bulk insert per flush interval, in a worker
thread so that a slow disk never delays a poll.  Retention is applied by the
same writer, so there is one place that touches the history table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .model import StoreSettings
from .store import Store

__all__ = ["HistoryWriter"]

log = logging.getLogger(__name__)

_PURGE_EVERY = 3600.0


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
        self._last_purge = 0.0
        self.written = 0

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
        """Flush every ``flush_interval`` (or sooner when a batch fills) until :meth:`close`.

        Stopping goes through :meth:`close`, not cancellation: a write cancelled
        half-way would still finish in its worker thread, after the caller had
        moved on believing everything was flushed.
        """
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval)
            self._wake.clear()
            await self.flush()
            if not self._closing and self._clock() - self._last_purge > _PURGE_EVERY:
                await self.purge()
        await self.flush()

    def close(self) -> None:
        """Ask :meth:`run` to write what is queued and return."""
        self._closing = True
        self._wake.set()

    async def flush(self) -> int:
        if not self._blocks:
            return 0
        blocks, self._blocks, self._pending = self._blocks, [], 0
        keys, times, values, quality = (
            np.concatenate(parts) for parts in zip(*blocks, strict=True)
        )
        n = await asyncio.to_thread(self._store.write_history, keys, times, values, quality)
        self.written += n
        return n

    async def purge(self) -> int:
        self._last_purge = self._clock()
        cutoff = self._last_purge - self._settings.retention_days * 86_400.0
        removed = await asyncio.to_thread(self._store.purge_history, cutoff)
        if removed:
            log.info(
                "history retention: removed %d samples older than %.1f days",
                removed,
                self._settings.retention_days,
            )
        return removed
