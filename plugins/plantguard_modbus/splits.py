"""Blocks a device refused: which of their points answer, remembered between polls.

Why: the planner merges points into blocks that bridge small gaps, and a device
answers a whole request or refuses it.  When a field device lacks one register
of a block (wrong address in the site file, a firmware without that register),
it answers exception 2 (illegal data address) — or 3 (illegal data value) when
it dislikes the count — and every point of the block would go Bad, including
the ones whose registers exist.  So a refused block is split (see
:func:`.planner.split_block`) and its halves read again, recursively, until the
refused points are isolated; points that answer keep their value and Good
quality.

Splitting is bounded: at most :data:`PROBE_BUDGET` extra requests per poll (per
device and poll group; a block of 125 one-register points with one bad register
is resolved in about 14), and what was found is kept in a :class:`BlockSplit` so
later polls read the readable parts directly and skip the refused points.
Bisection leaves the readable points in a few pieces; each run of readable
pieces between two refused points is then tried as one request (once: a merged
request the device refuses is remembered), so the steady state is one request
per run of registers the device has — the fewest the device allows.  The
whole block is tried again every ``retry_refused`` seconds (60 by default):
when it answers, the split is dropped; when it is still refused, the refused
points are probed again (they may have been fixed one by one).

Other exceptions (4 device failure, 6 busy, 11 gateway) say nothing about
addresses: they fail the request for this poll only and are not split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .planner import Block

__all__ = ["PROBE_BUDGET", "SPLIT_CODES", "Answer", "BlockSplit", "Failure", "Part"]

IntArray = npt.NDArray[np.intp]

#: Exception codes that mean "not these addresses": the block is split to find them.
SPLIT_CODES = frozenset({2, 3})
#: Extra requests per poll (per device and poll group) spent on splitting and retries.
PROBE_BUDGET = 16


@dataclass(frozen=True, slots=True)
class Answer:
    """What one read request brought: data, or a failure with the quality its points get."""

    data: Sequence[int] | Sequence[bool] | None
    quality: int = 0
    code: int | None = None  # the exception code of an exception response
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.data is not None

    @property
    def refused(self) -> bool:
        """An exception response naming addresses or counts (worth splitting)."""
        return self.code in SPLIT_CODES


@dataclass(frozen=True, slots=True)
class Failure:
    """Points (positions in the request) that are Bad after this poll, and why."""

    positions: IntArray
    quality: int
    reason: str
    key: tuple[int, int, int, int, str]  # (planned block, start, count, quality, reason)


@dataclass(slots=True)
class Part:
    """A piece of a refused block: readable, refused, or not yet known (``settled`` False).

    ``reason`` is the device's last refusal covering these points ("" once they
    answered); an unsettled part keeps the refusal of the larger request it came
    from until it is probed.
    """

    block: Block
    positions: IntArray
    reason: str = ""
    settled: bool = True

    @property
    def refused(self) -> bool:
        return bool(self.reason)


@dataclass(slots=True)
class BlockSplit:
    """What is known of one planned block the device refused."""

    block: Block
    reason: str  # the device's refusal of the whole block
    parts: list[Part] = field(default_factory=list)
    retry_at: float = 0.0
    announced: bool = False  # the outcome of the split was logged
    compact: bool = False  # no run of readable parts is left to merge
    #: (start, count) of merged requests the device refused (a missing register
    #: between points): not tried again until the next retry.
    unmergeable: set[tuple[int, int]] = field(default_factory=set)

    @property
    def settled(self) -> bool:
        return all(p.settled for p in self.parts)

    def refused_parts(self) -> list[Part]:
        return [p for p in self.parts if p.refused]

    def runs(self) -> list[list[Part]]:
        """The parts in address order, readable ones grouped in runs between the others.

        A run of several readable parts is a candidate for one merged request
        (bisection leaves the readable points in O(log n) pieces per refused one).
        """
        runs: list[list[Part]] = []
        for part in self.parts:
            readable = part.settled and not part.refused
            if readable and runs and runs[-1] and _readable(runs[-1][-1]):
                runs[-1].append(part)
            else:
                runs.append([part])
        return runs


def _readable(part: Part) -> bool:
    return part.settled and not part.refused
