"""OPC UA Historical Access (Part 11) for point values and alarm events, from the store.

asyncua's own history manager records what it subscribes to in memory (or in
tables of its own) and knows nothing of PlantGuard's store, which already holds
one sample per change of every point and every alarm transition.
:class:`HistoryService` replaces ``InternalServer.history_manager`` — asyncua
calls its ``read_history``, ``update_history`` and ``stop`` — and answers from
the store:

* **ReadRaw** (``ReadRawModifiedDetails``, ``IsReadModified`` false) of a point
  variable: its samples in ``[StartTime, EndTime)``, newest first when
  ``EndTime < StartTime``, with bounding values and continuation points.
* **ReadProcessed** of a point variable with the aggregates Interpolative,
  Average, Minimum, Maximum, Count, Start and End (OPC 10000-13), computed with
  numpy over the whole request at once.
* **ReadEvent** of the Server object (all alarms) or of a device (its alarms):
  the alarm journal as condition events with the fields live events have, through
  the same WhereClause evaluator and select-clause mapping.
* **HistoryUpdate** is refused: history is what the devices reported.

Samples leave as columns.  asyncua builds and encodes one ``DataValue`` object
per value (tens of µs each, more than the store's own read); :mod:`._encoding`
writes the binary ``HistoryData`` body straight from the arrays, so a HistoryRead
costs little more than the ``Store.trend`` beneath it.

NodeIds are resolved from the site model: a point's string NodeId is parsed back
to its device (one dict entry per device, nothing per point).  Continuation
points are random 16-byte keys into one table shared by all sessions, capped in
number and in the samples they hold (oldest first out).

What PlantGuard's history is, and how the standard's definitions meet it:
history holds a sample per *change*, so a value holds until the next sample —
every point is treated as ``Stepped``.  The store keeps the source timestamp only:
``TimestampsToReturn`` Source and Both return it (Both without a server timestamp,
because asyncua's and node-opcua's history helpers always ask for Both), Server
and Neither are refused with ``BadTimestampsToReturnInvalid``.  docs/opcua.md
("Historical Access") lists the rest.

The modules, one idea each:

* :mod:`._series` — DataValues as columns; StatusCode bits and request times;
* :mod:`._encoding` — the HistoryData binary body, written from the columns;
* :mod:`._store` — the store's samples as columns, bounds and seeks beyond ``Store.trend``;
* :mod:`._nodes` — which nodes have history: point variables by NodeId, the Server;
* :mod:`._raw` — ReadRaw, read in chunks through a cursor;
* :mod:`._aggregates` — the Part 13 aggregates, pure numpy over all intervals;
* :mod:`._processed` — ReadProcessed, the store read in groups of whole intervals;
* :mod:`._events` — ReadEvent, condition events rebuilt from the alarm journal;
* :mod:`._continuations` — continuation points, shared by every session;
* :mod:`._limits` — :class:`HistoryLimits`;
* :mod:`._capabilities` — the capabilities advertised to clients;
* :mod:`._service` — :class:`HistoryService` and :func:`install_history`.
"""

from ._aggregates import AGGREGATES
from ._limits import HistoryLimits
from ._service import HistoryService, install_history

__all__ = [
    "AGGREGATES",
    "HistoryLimits",
    "HistoryService",
    "install_history",
]
