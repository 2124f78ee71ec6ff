"""Writes changed table slots to their OPC UA variables.

The engine calls the publisher with the numpy indices that changed; it reads
the three columns for those indices in one numpy step each and then writes one
``DataValue`` per index.  Everything per point (NodeId, variant type) was
resolved when the address space was built.

NaN is how the table says "no value" (never read, or lost with a Bad quality).
A NaN is never published as a new value: the variable keeps the last value it
published (NaN for a Double never read, 0/False for Int64/Boolean), with the
new StatusCode.  asyncua, following Part 4 §7.7.1, sends a null value with any
Bad StatusCode, so clients see the last value again once quality recovers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from typing import cast

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.server.server import Server

from plantguard.table import ValueTable

from .address_space import PointTargets
from .quality import STATUS_CODES

__all__ = ["ValuePublisher"]

log = logging.getLogger(__name__)

#: Writes between yields to the event loop, so a block of 50k changes does not stall clients.
_YIELD_EVERY = 2000


def _to_datetime(seconds: float) -> ua.DateTime | None:
    """Epoch seconds as the aware UTC datetime asyncua encodes (0 means never read)."""
    if seconds <= 0 or not math.isfinite(seconds):
        return None
    return cast(ua.DateTime, dt.datetime.fromtimestamp(seconds, tz=dt.UTC))


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _convert(data_type: str, value: float) -> float | int | bool:
    if data_type == "int":
        return min(max(int(value), _INT64_MIN), _INT64_MAX)
    if data_type == "bool":
        return value != 0.0
    return value


class ValuePublisher:
    """The engine's values listener for one running server."""

    def __init__(self, server: Server, table: ValueTable, targets: PointTargets) -> None:
        self._server = server
        self._table = table
        self._targets = targets
        self._last: list[float | int | bool] = [
            t.initial if t is not None else math.nan for t in targets
        ]

    async def publish_all(self) -> None:
        """Publish every slot (at start, so clients see the table's current state)."""
        await self(np.arange(len(self._targets), dtype=np.intp))

    async def __call__(self, indices: npt.NDArray[np.intp]) -> None:
        if indices.size == 0:
            return
        table = self._table
        values: list[float] = table.values[indices].tolist()
        qualities: list[int] = table.quality[indices].tolist()
        times: list[float] = table.source_time[indices].tolist()
        now = cast(ua.DateTime, dt.datetime.now(dt.UTC))
        write = self._server.write_attribute_value
        for n, (index, value, quality, seconds) in enumerate(
            zip(indices.tolist(), values, qualities, times, strict=True)
        ):
            target = self._targets[index]
            if target is None:
                continue
            if math.isnan(value) or (target.data_type == "int" and math.isinf(value)):
                published = self._last[index]
            else:
                published = _convert(target.data_type, value)
                self._last[index] = published
            datavalue = ua.DataValue(
                Value=ua.Variant(published, target.variant_type),
                StatusCode=STATUS_CODES[quality],
                SourceTimestamp=_to_datetime(seconds),
                ServerTimestamp=now,
            )
            try:
                await write(target.node_id, datavalue)
            except Exception:
                log.exception("cannot publish %s", target.node_id.to_string())
            if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
