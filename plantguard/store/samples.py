"""History samples as a driver's ``executemany`` takes them: plain tuples, NULL for NaN.

Built column-wise (one ``tolist()`` per array, one ``zip``): no dict per row, and no
Python-level check per value unless the batch has NaN values at all.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["rows_of"]


def rows_of(
    keys: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> list[tuple[int, float, float | None, int]]:
    """``(point_key, time, value, quality)`` tuples; NaN values become ``None`` (NULL)."""
    null = np.isnan(values)
    if null.any():
        shown = values.astype(object)
        shown[null] = None
        value_list = shown.tolist()
    else:
        value_list = values.tolist()
    return list(zip(keys.tolist(), times.tolist(), value_list, quality.tolist(), strict=True))
