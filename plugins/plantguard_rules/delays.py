"""On-delay and off-delay for alarm levels (ISA-18.2 "alarm delays").

An on-delay holds back a new or more severe level until the condition has
lasted ``on_delay`` seconds; an off-delay holds back a return to a less severe
level (or normal) for ``off_delay`` seconds.  Both suppress chattering that a
deadband cannot: a noisy value that crosses its limit for one scan raises
nothing, and an alarm that clears for one scan does not re-announce itself.

Vectorised: one ``pending`` level and the time it was first seen per alarm.
"""

from __future__ import annotations

import numpy as np

from .base import FloatArray, Levels

__all__ = ["LevelDelay"]


class LevelDelay:
    def __init__(self, on_delay: FloatArray, off_delay: FloatArray) -> None:
        self._on = on_delay
        self._off = off_delay
        self._pending: Levels = np.zeros(on_delay.size, dtype=np.int8)
        self._since: FloatArray = np.full(on_delay.size, np.nan)
        self.active = bool(np.any(on_delay > 0) or np.any(off_delay > 0))

    def apply(self, current: Levels, candidate: Levels, now: float) -> Levels:
        """The level to adopt this scan, given the committed and the raw level."""
        if not self.active:
            return candidate
        differs = candidate != current
        restart = differs & ((candidate != self._pending) | np.isnan(self._since))
        self._pending = np.where(differs, candidate, current).astype(np.int8)
        self._since = np.where(restart, now, np.where(differs, self._since, np.nan))
        cand16, cur16 = candidate.astype(np.int16), current.astype(np.int16)
        escalating = (np.abs(cand16) > np.abs(cur16)) | (cand16 * cur16 < 0)
        delay = np.where(escalating, self._on, self._off)
        with np.errstate(invalid="ignore"):
            due = differs & (now - self._since >= delay)
        out: Levels = np.where(due, candidate, current).astype(np.int8)
        self._since = np.where(due, np.nan, self._since)
        return out
