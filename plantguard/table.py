"""The current-value table: one numpy slot per point.

Drivers write whole poll-group blocks into it, rules read whole arrays from it,
and each update returns the slots that changed, for history and publishers.  Keeping values
in arrays rather than per-point objects is what lets one gateway scan tens of
thousands of points a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .model import Point, Quality

__all__ = ["ValueTable"]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class ValueTable:
    """Values, qualities and source timestamps of every point, by index."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.point_ids: tuple[str, ...] = tuple(p.id for p in points)
        self.index: dict[str, int] = {pid: i for i, pid in enumerate(self.point_ids)}
        n = len(self.point_ids)
        self.values: FloatArray = np.full(n, np.nan)
        self.quality: npt.NDArray[np.uint8] = np.full(
            n, Quality.BAD_WAITING_FOR_INITIAL_DATA, dtype=np.uint8
        )
        self.source_time: FloatArray = np.zeros(n)

    def __len__(self) -> int:
        return len(self.point_ids)

    def indices(self, point_ids: Sequence[str]) -> IndexArray:
        return np.fromiter((self.index[p] for p in point_ids), dtype=np.intp, count=len(point_ids))

    def update(
        self,
        idx: IndexArray,
        values: FloatArray,
        quality: npt.NDArray[np.uint8],
        source_time: float | FloatArray,
    ) -> IndexArray:
        """Store a block of samples; return the indices whose value or quality changed."""
        old_v = self.values[idx]
        old_q = self.quality[idx]
        changed_mask = (old_q != quality) | ~(
            (old_v == values) | (np.isnan(old_v) & np.isnan(values))
        )
        self.values[idx] = values
        self.quality[idx] = quality
        self.source_time[idx] = source_time
        changed: IndexArray = idx[changed_mask]
        return changed

    def set_quality(self, idx: IndexArray, quality: Quality, source_time: float) -> IndexArray:
        """Mark points with a quality (e.g. communication loss) keeping their last value."""
        q = np.full(idx.size, quality, dtype=np.uint8)
        return self.update(idx, self.values[idx].copy(), q, source_time)
