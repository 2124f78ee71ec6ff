"""Sparkplug B as a host application sees it: births, deaths, sequence numbers, rebirths.

Why a node tracker shared per broker: an edge node numbers every message it
sends (NBIRTH, NDATA, DBIRTH, DDATA, DDEATH of all its devices) in one sequence
0–255, so a gap can only be seen by whoever reads all of them; several
PlantGuard devices may be devices of one node.  :class:`SparkplugNode` keeps the
sequence, the last births (for metric aliases and datatypes) and the bdSeq of
the node's session, and hands each device's metrics to the drivers that map it.

Births, deaths and commands are decoded and encoded with pysparkplug's payload
classes (built from the Sparkplug B protobuf schema); NDATA/DDATA, the hot path,
are read from the schema's protobuf message by :mod:`.spdata`, which falls back to
pysparkplug for anything it does not decide itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pysparkplug as sp

from .spdata import DataMessage, Sample, birth_maps, fast_data, library_data, samples_of

__all__ = [
    "NAMESPACE",
    "REBIRTH_METRIC",
    "SparkplugNode",
    "SparkplugTarget",
    "command_payload",
    "node_filter",
    "rebirth_payload",
]

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_SEQ_MODULO = 256
_NUMERIC = frozenset(
    {
        sp.DataType.INT8,
        sp.DataType.INT16,
        sp.DataType.INT32,
        sp.DataType.INT64,
        sp.DataType.UINT8,
        sp.DataType.UINT16,
        sp.DataType.UINT32,
        sp.DataType.UINT64,
        sp.DataType.FLOAT,
        sp.DataType.DOUBLE,
        sp.DataType.BOOLEAN,
    }
)
_DATA: dict[str, type[sp.NData | sp.DData]] = {"NDATA": sp.NData, "DDATA": sp.DData}
_OTHERS: dict[str, type[sp.NBirth | sp.DBirth | sp.DDeath]] = {
    "NBIRTH": sp.NBirth,
    "DBIRTH": sp.DBirth,
    "DDEATH": sp.DDeath,
}
BirthMaps = tuple[dict[int, str], dict[str, int]]
_INTEGER = _NUMERIC - {sp.DataType.FLOAT, sp.DataType.DOUBLE, sp.DataType.BOOLEAN}


class SparkplugTarget(Protocol):
    """What a node tracker needs of a driver that maps one of its (node or device) sources."""

    def sparkplug_metrics(self, samples: Sequence[Sample], sent: float, now: float) -> None:
        """New values (a birth or data message); ``sent`` is the payload's time (s)."""

    def sparkplug_alive(self, alive: bool, why: str) -> None:
        """A birth (True) or a death (False) of the node or device."""

    def sparkplug_fault(
        self, counter: str, reason: str, names: Sequence[str] | None, now: float
    ) -> None:
        """A message that could not be used: ``names`` are the metrics it carried
        (None: unknown, every point of the device is affected); ``counter`` is the
        statistic it raises ("": counted already)."""

    def sparkplug_count(self, counter: str) -> None:
        """Count an event of the node in the device's statistics (a rebirth request)."""


def node_filter(group: str, node: str) -> str:
    """The one subscription that carries every message of a node and its devices."""
    return f"{NAMESPACE}/{group}/+/{node}/#"


def _now_ms() -> int:
    return int(time.time() * 1000)


def rebirth_payload() -> bytes:
    """NCMD ``Node Control/Rebirth = true``: the node answers with NBIRTH and DBIRTHs."""
    now = _now_ms()
    metric = sp.Metric(now, REBIRTH_METRIC, sp.DataType.BOOLEAN, value=True)
    return sp.NCmd(timestamp=now, metrics=(metric,)).encode(include_dtypes=True)


def command_payload(device: bool, name: str, datatype: sp.DataType, value: float) -> bytes:
    """DCMD (``device``) or NCMD setting metric ``name`` to ``value`` in its datatype."""
    now = _now_ms()
    typed: bool | int | float
    if datatype == sp.DataType.BOOLEAN:
        typed = bool(value)
    elif datatype in _INTEGER:
        typed = round(value)
    else:
        typed = float(value)
    metric = sp.Metric(now, name, datatype, value=typed)
    kind = sp.DCmd if device else sp.NCmd
    return kind(timestamp=now, metrics=(metric,)).encode(include_dtypes=True)


def writable_type(datatype: sp.DataType) -> bool:
    return datatype in _NUMERIC


@dataclass(slots=True)
class SparkplugNode:
    """One edge node on one broker, and the drivers of its node and device metrics."""

    group: str
    node: str
    request_rebirth: Callable[[SparkplugNode], bool]
    node_targets: list[SparkplugTarget] = field(default_factory=list)
    device_targets: dict[str, list[SparkplugTarget]] = field(default_factory=dict)
    next_seq: int | None = None  # None: no birth seen in this session
    bd_seq: int | None = None
    node_birth: sp.NBirth | None = None
    device_births: dict[str, sp.DBirth] = field(default_factory=dict)
    born: bool = False
    # The births' alias and datatype maps, for the data path (spdata.fast_data).
    _node_maps: BirthMaps | None = None
    _maps: dict[str, BirthMaps] = field(default_factory=dict)

    @property
    def targets(self) -> list[SparkplugTarget]:
        return [*self.node_targets, *(t for ts in self.device_targets.values() for t in ts)]

    def attach(self, target: SparkplugTarget, device: str | None) -> None:
        if device is None:
            self.node_targets.append(target)
        else:
            self.device_targets.setdefault(device, []).append(target)

    def detach(self, target: object) -> None:
        self.node_targets = [t for t in self.node_targets if t is not target]
        for name in list(self.device_targets):
            kept = [t for t in self.device_targets[name] if t is not target]
            if kept:
                self.device_targets[name] = kept
            else:
                del self.device_targets[name]

    @property
    def empty(self) -> bool:
        return not self.node_targets and not self.device_targets

    def reset(self) -> None:
        """Forget the session (the broker connection was lost): births are needed again."""
        self.next_seq = None
        self.bd_seq = None
        self.node_birth = None
        self.device_births.clear()
        self._node_maps = None
        self._maps.clear()
        self.born = False

    # --- messages ---------------------------------------------------------------------

    def receive(self, kind: str, device: str | None, payload: bytes, now: float) -> None:
        """One message of this node (``kind`` is NBIRTH, DDATA …; ``device`` for D*)."""
        if kind == "NDEATH":
            self._node_death(payload)
            return
        if kind not in ("NBIRTH", "NDATA", "DBIRTH", "DDATA", "DDEATH"):
            return  # NCMD, DCMD (commands, ours too) and anything newer
        if (device is None) != (kind[0] == "N"):
            return  # a malformed topic: N* with a device level, D* without
        targets = self.node_targets if device is None else self.device_targets.get(device, [])
        decoded = self._decode(kind, device, payload, targets, now)
        if decoded is None:
            return
        if isinstance(decoded, sp.NBirth):
            self._node_birth(decoded)
        elif not self._in_sequence(kind, decoded.seq, targets, decoded, now):
            return
        if isinstance(decoded, sp.DDeath):
            self._device_life(device, None, targets)
            return
        if isinstance(decoded, DataMessage):
            samples = decoded.samples
        else:
            if isinstance(decoded, sp.DBirth):
                self._device_life(device, decoded, targets)
            samples = samples_of(decoded.metrics)
        sent = decoded.timestamp / 1000.0
        for target in targets:
            target.sparkplug_metrics(samples, sent, now)

    def _decode(
        self,
        kind: str,
        device: str | None,
        payload: bytes,
        targets: Sequence[SparkplugTarget],
        now: float,
    ) -> DataMessage | sp.NBirth | sp.DBirth | sp.DDeath | None:
        try:
            if kind in _DATA:
                maps = self._node_maps if device is None else self._maps.get(device)
                try:
                    return fast_data(payload, maps)
                except Exception:  # the library decides, in its own words
                    birth = self.node_birth if device is None else self.device_births.get(device)
                    return library_data(_DATA[kind], payload, birth)
            return _OTHERS[kind].decode(payload)
        except Exception as exc:  # protobuf DecodeError, a missing field, an unknown alias …
            where = f"{self.node}/{device}" if device else self.node
            reason = f"undecodable Sparkplug {kind} of {where}: {type(exc).__name__}: {exc}"
            for target in targets:
                target.sparkplug_fault("bad_payload", reason, None, now)
            self._rebirth()
            return None

    def _device_life(
        self, device: str | None, birth: sp.DBirth | None, targets: Sequence[SparkplugTarget]
    ) -> None:
        """A DBIRTH (``birth``) or a DDEATH (None) of ``device``."""
        name = device or ""
        if birth is None:
            self.device_births.pop(name, None)
            self._maps.pop(name, None)
        else:
            self.device_births[name] = birth
            self._maps[name] = birth_maps(birth)
        for target in targets:
            what = "DDEATH" if birth is None else "DBIRTH"
            target.sparkplug_alive(birth is not None, f"Sparkplug {what} of {self.node}/{name}")

    def _node_birth(self, birth: sp.NBirth) -> None:
        self.node_birth = birth
        self._node_maps = birth_maps(birth)
        self.device_births.clear()
        self._maps.clear()
        self.next_seq = (birth.seq + 1) % _SEQ_MODULO
        self.bd_seq = _bd_seq(birth.metrics)
        self.born = True
        for target in self.node_targets:
            target.sparkplug_alive(True, f"Sparkplug NBIRTH of {self.node}")

    def _in_sequence(
        self,
        kind: str,
        seq: int,
        targets: Sequence[SparkplugTarget],
        decoded: DataMessage | sp.DBirth | sp.DDeath,
        now: float,
    ) -> bool:
        """Check ``seq`` against the node's sequence; False: drop the message."""
        expected = self.next_seq
        self.next_seq = (seq + 1) % _SEQ_MODULO
        if expected is None:  # data of a node whose birth we have not seen
            self._rebirth()
            return True
        if seq == expected:
            return True
        if isinstance(decoded, DataMessage):
            names = decoded.labels
        else:
            names = [m.name or f"alias {m.alias}" for m in getattr(decoded, "metrics", ())]
        reason = (
            f"Sparkplug {kind} of {self.node} has sequence number {seq}, {expected} was "
            "expected (messages lost); rebirth requested"
        )
        for target in self.targets:
            target.sparkplug_count("sequence_errors")
        for target in targets:
            target.sparkplug_fault("", reason, names, now)
        self._rebirth()
        return False

    def _node_death(self, payload: bytes) -> None:
        try:
            death = sp.NDeath.decode(payload)
            bd_seq = death.bd_seq_metric.value
        except Exception as exc:
            log.warning("sparkplug node %s/%s: undecodable NDEATH: %s", self.group, self.node, exc)
            bd_seq = None
        if self.bd_seq is not None and isinstance(bd_seq, int) and bd_seq != self.bd_seq:
            log.info(
                "sparkplug node %s/%s: NDEATH of an earlier session (bdSeq %s, now %s) ignored",
                self.group,
                self.node,
                bd_seq,
                self.bd_seq,
            )
            return
        self.reset()
        for target in self.targets:
            target.sparkplug_alive(False, f"Sparkplug NDEATH of {self.node}")

    def _rebirth(self) -> None:
        if self.request_rebirth(self):
            for target in self.targets:
                target.sparkplug_count("rebirth_requests")


def _bd_seq(metrics: Sequence[sp.Metric]) -> int | None:
    for metric in metrics:
        if metric.name == "bdSeq" and isinstance(metric.value, int):
            return metric.value
    return None
