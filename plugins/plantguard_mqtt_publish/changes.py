"""Which points changed since a publisher last looked: a mask the engine's listener marks.

The engine awaits its value listeners in the poll path, so a publisher's listener
only marks slots and wakes the publisher; the publisher reads the table when it
runs.  Changes between two runs are coalesced (the newest value is published; the
history store keeps every sample), which is what keeps a slow broker from
holding up polling.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

__all__ = ["Changes"]


class Changes:
    def __init__(self, size: int) -> None:
        self._dirty = np.zeros(size, dtype=bool)
        self._event = asyncio.Event()

    async def __call__(self, indices: npt.NDArray[np.intp]) -> None:
        """The engine's :data:`~plantguard.plugin.ValuesListener`."""
        self._dirty[indices] = True
        self._event.set()

    def poke(self) -> None:
        """Wake the publisher without a value change (an alarm changed)."""
        self._event.set()

    async def take(self) -> npt.NDArray[np.intp]:
        """Wait for changes; return the changed indices (ascending) and forget them."""
        await self._event.wait()
        self._event.clear()
        changed = np.flatnonzero(self._dirty)
        self._dirty[changed] = False
        return changed

    def clear(self) -> None:
        self._dirty[:] = False
