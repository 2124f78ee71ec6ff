"""On-delay and off-delay for alarm levels (ISA-18.2 "alarm delays").

An on-delay holds back a new or more severe level until the condition has
lasted ``on_delay`` seconds; an off-delay holds back a return to a less severe
level (or normal) for ``off_delay`` seconds.  Both suppress chattering that a
deadband cannot: a noisy value that crosses its limit for one scan raises
nothing, and an alarm that clears for one scan does not re-announce itself.

Vectorised and sparse: one ``pending`` level and the time it was first seen per
alarm, touched only for the rows whose candidate level differs from the
committed one (a scan where every level holds costs nothing here).  A row whose
candidate equals its level forgets what was pending, so the rows still waiting
are kept as an index array and reset when they drop out.
"""

from __future__ import annotations

import numpy as np

from .base import FloatArray, IntArray, Levels

__all__ = ["LevelDelay"]


class LevelDelay:
    def __init__(self, on_delay: FloatArray, off_delay: FloatArray) -> None:
        self._on = on_delay
        self._off = off_delay
        self._pending: Levels = np.zeros(on_delay.size, dtype=np.int8)
        self._since: FloatArray = np.full(on_delay.size, np.nan)
        self._waiting: IntArray = np.zeros(0, dtype=np.intp)
        self.active = bool(np.any(on_delay > 0) or np.any(off_delay > 0))

    def apply_rows(self, rows: IntArray, current: Levels, candidate: Levels, now: float) -> Levels:
        """The level to adopt this scan at the distinct ``rows``, given their
        committed and raw levels; every other row's raw level is taken to equal its
        committed one (it forgets what was pending)."""
        if not self.active:
            return candidate
        differs = candidate != current
        since = self._since[rows]
        restart = differs & ((candidate != self._pending[rows]) | np.isnan(since))
        since = np.where(restart, now, since)
        cand16, cur16 = candidate.astype(np.int16), current.astype(np.int16)
        escalating = (np.abs(cand16) > np.abs(cur16)) | (cand16 * cur16 < 0)
        delay = np.where(escalating, self._on[rows], self._off[rows])
        with np.errstate(invalid="ignore"):
            due = differs & (now - since >= delay)
        wait = differs & ~due
        self._since[self._waiting] = np.nan
        self._waiting = rows[wait]
        self._since[self._waiting] = since[wait]
        self._pending[self._waiting] = candidate[wait]
        out: Levels = np.where(due, candidate, current).astype(np.int8)
        return out
