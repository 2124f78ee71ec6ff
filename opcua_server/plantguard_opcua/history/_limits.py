"""How much the history service reads, returns and holds at once.

One value object, because two modules read it: the service (pages, chunks,
continuation points) and the capabilities it advertises to clients.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HistoryLimits"]


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """Server limits, advertised in ``HistoryServerCapabilities`` and ``ServerCapabilities``."""

    max_return_data_values: int = 100_000
    max_return_event_values: int = 10_000
    max_continuation_points: int = 100
    #: Values all continuation points may hold together (~20 bytes each).
    max_held_samples: int = 2_000_000
    #: Seconds an unused continuation point is kept.
    continuation_ttl: float = 600.0
    max_nodes_per_read: int = 1000
    #: Samples read from the store at a time: a raw read's chunk, a processed read's group.
    read_chunk: int = 100_000
    #: Processing intervals one ReadProcessed may ask for.
    max_intervals: int = 1_000_000
