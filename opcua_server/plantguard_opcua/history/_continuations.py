"""Continuation points of unfinished reads, in one table shared by every session.

Keys are 16 random bytes, so one session cannot guess another's.  The table is
capped in number and in the samples the cursors hold (oldest first out), and an
unused point lapses: a client that never comes back costs nothing for long.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from ._events import EventCursor
from ._processed import ProcessedCursor
from ._raw import RawCursor

__all__ = ["Continuations", "Cursor"]

Cursor = RawCursor | ProcessedCursor | EventCursor


@dataclass(slots=True)
class _Held:
    cursor: Cursor
    expires: float


class Continuations:
    """Continuation points of unfinished reads, shared by every session.

    Keyed by 16 random bytes, so one session cannot guess another's.  Bounded in
    number and in samples held; the oldest are dropped first (a client then gets
    BadContinuationPointInvalid), and any left unused for ``ttl`` seconds lapse.
    """

    def __init__(self, limit: int, max_samples: int, ttl: float) -> None:
        self._held: OrderedDict[bytes, _Held] = OrderedDict()
        self._limit = limit
        self._max_samples = max_samples
        self._ttl = ttl
        self._samples = 0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, cursor: Cursor) -> bytes:
        self._expire()
        key = secrets.token_bytes(16)
        self._held[key] = _Held(cursor, time.monotonic() + self._ttl)
        self._samples += self._size(cursor)
        while len(self._held) > self._limit or (
            self._samples > self._max_samples and len(self._held) > 1
        ):
            self._drop(next(iter(self._held)))
        return key

    def take(self, key: bytes) -> Cursor | None:
        """The cursor of ``key``, removed (a continuation point is used once)."""
        self._expire()
        held = self._held.get(key)
        if held is None:
            return None
        self._drop(key)
        return held.cursor

    def release(self, key: bytes) -> None:
        if key in self._held:
            self._drop(key)

    def clear(self) -> None:
        self._held.clear()
        self._samples = 0

    def _drop(self, key: bytes) -> None:
        self._samples -= self._size(self._held.pop(key).cursor)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, h in self._held.items() if h.expires < now]:
            self._drop(key)

    @staticmethod
    def _size(cursor: Cursor) -> int:
        if isinstance(cursor, ProcessedCursor):
            return len(cursor.rest)
        return len(cursor.buffer) if isinstance(cursor, RawCursor) else 0
