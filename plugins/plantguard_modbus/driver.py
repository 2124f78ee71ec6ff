"""The Modbus device driver: block reads, vectorised decoding, writes, identification.

Why it is shaped this way:

* Reads follow a plan (:mod:`.readplan`) computed once per set of points and
  cached, so a poll is a handful of block requests and no per-point Python work.
* Responses land in two buffers — all register blocks in one ``uint16`` array,
  all coil/input blocks in one ``uint8`` array — and :mod:`.codec` decodes each
  data type with one vector operation.
* Failures are scoped to what they cover.  A Modbus exception response is the
  device saying "not this block": only that block's points go Bad
  (``BAD_DEVICE_FAILURE``) — and when it says "not these addresses" (exception
  2, or 3), the block is split until only the points whose registers are refused
  stay Bad (:mod:`.splits`).  A malformed or missing answer on a connection that
  is still up (short response, wrong unit id, one timeout) makes that block's
  points ``BAD_COMMUNICATION_ERROR`` and the poll goes on.  A lost connection,
  or a second timeout in a row, is the device being unreachable: the read raises
  :class:`~plantguard.drivers.DriverError` and the connection is dropped, so the
  engine marks every point of the device Bad and reconnects with its backoff.
* Field faults are named: :attr:`ModbusDriver.faults` says, per Bad point, which
  request the device refused (exception, function, start, count) or which
  register held NaN/Inf.  It is rebuilt only when the set of faults changes, and
  the core ``<device>.fault`` alarm (:mod:`plantguard.comm`) puts it in front of
  the operator.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException, ModbusIOException

from plantguard.plugin import (
    Device,
    DeviceDriver,
    DriverError,
    Point,
    ProbeReading,
    Quality,
    ReadResult,
)

from .codec import encode_bit_field, encode_value
from .identity import read_identity
from .models import REGISTER_WIDTH, ModbusAddress, ModbusConnection
from .planner import Block, split_block, sub_block
from .probe import raw_points, raw_requests
from .readplan import ReadPlan, build_plan
from .splits import PROBE_BUDGET, Answer, BlockSplit, Failure, Part
from .transport import explain_tls_failure, make_client

__all__ = ["ModbusDriver", "encode_value"]

log = logging.getLogger(__name__)

_TRANSPORT_ERRORS = (ModbusException, OSError, TimeoutError)
#: Timeouts in a row (each after the client's own retries) that mean "device gone".
_SILENT_LIMIT = 2
#: Point sequences remembered by identity (poll groups; one-off reads beyond are keyed by ids).
_SEEN_LIMIT = 64
_READ_CALLS = {
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


class ModbusDriver(DeviceDriver):
    """Driver of one Modbus device (or several unit ids behind one gateway).

    :param device: the configured device.
    :param connection: its validated ``connection`` settings.
    :param addresses: each point's validated ``address``, keyed by global point id.

    After each read, :attr:`texts` holds the decoded text of the string points
    (the value table gets the text's length); after :meth:`identify`,
    :attr:`identity` holds what the device reported.
    """

    def __init__(
        self,
        device: Device,
        connection: ModbusConnection,
        addresses: Mapping[str, ModbusAddress],
    ) -> None:
        self.device = device
        self.connection = connection
        self.addresses = dict(addresses)
        self.texts: dict[str, str] = {}
        self.identity: dict[str, str] = {}
        self._client: Any = None
        self._lock = asyncio.Lock()
        #: Why points are Bad, by point id: blocks the device refused (exception,
        #: function, addresses) and undecodable values (NaN/Inf).  Rebuilt only when it
        #: changes; read by the ``<device>.fault`` alarm (:mod:`plantguard.comm`).
        self.faults: dict[str, str] = {}
        self._plans: dict[tuple[str, ...], ReadPlan] = {}
        self._states: dict[int, _PlanState] = {}  # by id() of a plan in _plans
        self._seen: dict[int, tuple[Sequence[Point], ReadPlan]] = {}
        self._failing: set[tuple[int, str, int, int]] = set()
        self._silent = 0
        self._budget = PROBE_BUDGET
        self._identify_supported = connection.identify

    def __repr__(self) -> str:
        return f"ModbusDriver({self.device.id!r}, {self._endpoint})"

    @property
    def _endpoint(self) -> str:
        return self.connection.endpoint

    # --- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> None:
        async with self._lock:
            await self._connect_locked()

    async def _connect_locked(self) -> None:
        if self.connected:
            return
        self._drop_client()
        try:
            client = make_client(self.connection, f"plantguard-{self.device.id}")
        except (OSError, ValueError) as exc:  # unreadable TLS files, bad serial settings
            raise DriverError(
                f"modbus device {self.device.id!r} ({self._endpoint}): {exc}"
            ) from exc
        try:
            ok = await client.connect()
        except _TRANSPORT_ERRORS as exc:
            client.close()
            raise DriverError(
                f"modbus device {self.device.id!r} ({self._endpoint}): {exc}"
            ) from exc
        if not ok:
            client.close()
            reason = "unreachable"
            if self.connection.transport == "tls":
                reason += f" ({await explain_tls_failure(self.connection)})"
            raise DriverError(f"modbus device {self.device.id!r} is {reason} at {self._endpoint}")
        self._client = client
        log.info("modbus device %s connected (%s)", self.device.id, self._endpoint)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must not raise
                log.debug("error closing modbus client of %s", self.device.id, exc_info=True)

    def _lost(self, exc: BaseException, doing: str) -> DriverError:
        self._drop_client()
        self._silent = 0
        return DriverError(
            f"modbus device {self.device.id!r} ({self._endpoint}) lost {doing}: {exc}"
        )

    async def close(self) -> None:
        self._drop_client()

    # --- reads ------------------------------------------------------------------------

    async def read(self, points: Sequence[Point]) -> ReadResult:
        """Read ``points`` with the planned block requests.

        A connection that was lost is reopened first; if that fails, or the
        connection drops or the device stops answering, :class:`DriverError` is raised.
        A block the device refuses is split to find the refused points (:mod:`.splits`).
        """
        poll = await self._poll(points)
        return self._decode(poll)[0]

    async def probe(self, points: Sequence[Point]) -> ProbeReading:
        """Read ``points`` once, like :meth:`read`, and return what was on the wire:
        each point's registers or bits and each request with the device's answer
        (``plantguard probe``).  Only read requests are sent."""
        poll = await self._poll(points, log=[])
        result, raw = self._decode(poll)
        assert poll.log is not None
        return ProbeReading(
            result,
            raw_points(
                poll.plan,
                raw,
                addresses=self.addresses,
                connection=self.connection,
                words=poll.words,
                bits=poll.bits,
                failures=poll.failures,
            ),
            raw_requests(poll.plan, poll.log, _request_text),
        )

    async def _poll(
        self, points: Sequence[Point], log: list[tuple[Block, Answer]] | None = None
    ) -> _Poll:
        """Send the requests of one poll of ``points``; the responses are in the result."""
        plan = self._plan_for(points)
        poll = _Poll(plan, self._states[id(plan)])
        poll.log = log
        async with self._lock:
            await self._connect_locked()
            self._budget = PROBE_BUDGET
            poll.now = time.monotonic()
            splits = poll.state.splits
            for index in range(len(plan.blocks)):
                split = splits.get(index)
                if split is None:
                    split = await self._read_planned(poll, index)
                    if split is None:
                        continue
                    splits[index] = split
                if await self._read_split(poll, index, split):
                    del splits[index]
        return poll

    def _decode(self, poll: _Poll) -> tuple[ReadResult, FloatArray]:
        """The values and qualities of a poll, and the decoded numbers before scaling."""
        source_time = time.time()
        plan = poll.plan
        words, bits = poll.words, poll.bits
        raw = np.full(len(plan.point_ids), np.nan)
        for group in plan.types:
            group.decode(words, raw)
        for bit_field in plan.fields:
            bit_field.decode(words, raw)
        if plan.flags is not None:
            plan.flags.decode(bits, raw)
        texts = plan.texts.decode(words, raw) if plan.texts is not None else {}
        values = raw * plan.scale + plan.offset
        for digits, positions in plan.rounding:
            values[positions] = np.round(values[positions], digits)

        quality = np.full(len(plan.point_ids), Quality.GOOD, dtype=np.uint8)
        quality[plan.point_block < 0] = Quality.BAD_CONFIGURATION_ERROR
        for failure in poll.failures:
            quality[failure.positions] = failure.quality
        # NaN / ±Inf from a float register (or a scale that overflows): not a measurement.
        undecodable = np.flatnonzero((quality == Quality.GOOD) & ~np.isfinite(values))
        quality[undecodable] = Quality.BAD
        values[quality >= Quality.BAD] = np.nan
        signature = (
            tuple(f.key for f in poll.failures),
            undecodable.tobytes(),
            raw[undecodable].tobytes(),
        )
        if signature != poll.state.signature:  # only when what is Bad, or why, changed
            poll.state.signature = signature
            self._note_faults(poll, undecodable, raw)
        if texts:
            assert plan.texts is not None
            good = quality[plan.texts.positions] == Quality.GOOD
            self.texts.update(
                (pid, text) for (pid, text), ok in zip(texts.items(), good, strict=True) if ok
            )
        return ReadResult(values=values, quality=quality, source_time=source_time), raw

    async def _request(self, poll: _Poll, block: Block) -> Answer:
        """Send one read request; its data, or why there is none (logged in a probe's poll).

        :raises DriverError: the connection is lost or the device stopped answering.
        """
        answer = await self._ask(block)
        if poll.log is not None:
            poll.log.append((block, answer))
        return answer

    async def _ask(self, block: Block) -> Answer:
        client = self._client
        assert client is not None  # _connect_locked succeeded
        request = getattr(client, _READ_CALLS[block.function])
        try:
            response = await request(block.start, count=block.count, device_id=block.unit)
        except ModbusIOException as exc:
            # No usable answer: a garbled frame, or the device going silent.  One is
            # tolerated (pymodbus closes the connection on an undecodable frame, so it
            # is reopened at once); two in a row mean the device is gone.
            self._silent += 1
            if self._silent >= _SILENT_LIMIT:
                raise self._lost(exc, f"reading {_describe(block)}") from exc
            if not client.connected:
                await self._connect_locked()
            return Answer(
                None, Quality.BAD_COMMUNICATION_ERROR, reason=f"no valid response ({exc})"
            )
        except _TRANSPORT_ERRORS as exc:
            raise self._lost(exc, f"reading {_describe(block)}") from exc
        self._silent = 0
        if response.isError():
            code = getattr(response, "exception_code", None)
            return Answer(
                None,
                Quality.BAD_DEVICE_FAILURE,
                code if isinstance(code, int) else None,
                _exception_text(response),
            )
        data = response.bits if block.is_bits else response.registers
        if data is None or len(data) < block.count:
            got = 0 if data is None else len(data)
            return Answer(
                None,
                Quality.BAD_COMMUNICATION_ERROR,
                reason=f"a malformed response ({got} of {block.count} values)",
            )
        return Answer(data)

    async def _read_planned(self, poll: _Poll, index: int) -> BlockSplit | None:
        """Read a planned block; a :class:`BlockSplit` when the device refused it."""
        plan = poll.plan
        block = plan.blocks[index]
        answer = await self._request(poll, block)
        if answer.data is not None:
            poll.store(block, plan.bases[index], answer.data)
            self._recovered(block)
            return None
        names = plan.block_points[index]
        why = _why(block, answer.reason)
        if not answer.refused:
            self._report_failure(block, names, answer.reason, "are Bad")
            poll.fail(index, block, plan.block_positions[index], answer.quality, why)
            return None
        halves = split_block(block, plan.spans)
        retry_at = poll.now + self.connection.retry_refused
        if halves is None:
            self._report_failure(block, names, answer.reason, self._refused_outcome)
            part = Part(block, plan.block_positions[index], why)
            return BlockSplit(block, why, [part], retry_at, announced=True)
        outcome = "are read in smaller requests to find the refused registers"
        self._report_failure(block, names, answer.reason, outcome)
        parts = [Part(h, plan.positions_of(h), why, settled=False) for h in halves]
        return BlockSplit(block, why, parts, retry_at)

    @property
    def _refused_outcome(self) -> str:
        return f"are Bad (tried again every {self.connection.retry_refused:g} s)"

    async def _read_split(self, poll: _Poll, index: int, split: BlockSplit) -> bool:
        """Read a refused block's parts, probing the unknown ones within the budget.

        True when the whole block answered again (at a retry): the split is over.
        """
        if (
            poll.now >= split.retry_at
            and self._budget > 0
            and await self._retry(poll, index, split)
        ):
            return True
        work = list(split.parts)
        done: list[Part] = []
        while work:
            part = work.pop(0)
            if part.refused and (part.settled or self._budget <= 0):
                poll.fail(
                    index, part.block, part.positions, Quality.BAD_DEVICE_FAILURE, part.reason
                )
                done.append(part)
                continue
            if not part.settled:
                self._budget -= 1
            answer = await self._request(poll, part.block)
            if answer.data is not None:
                poll.store(part.block, poll.base_of(index, part.block), answer.data)
                self._recovered(part.block)
                part.reason, part.settled = "", True
                done.append(part)
                continue
            names = tuple(poll.plan.point_ids[i] for i in part.positions.tolist())
            why = _why(part.block, answer.reason)
            halves = split_block(part.block, poll.plan.spans) if answer.refused else None
            if halves is not None:
                work[0:0] = [Part(h, poll.plan.positions_of(h), why, settled=False) for h in halves]
                continue
            if answer.refused:
                part.reason, part.settled = why, True
                self._report_failure(part.block, names, answer.reason, self._refused_outcome)
            else:  # busy, device failure, garbled: these points are Bad for this poll only
                self._report_failure(part.block, names, answer.reason, "are Bad")
            poll.fail(index, part.block, part.positions, answer.quality, why)
            done.append(part)
        if [p.block for p in done] != [p.block for p in split.parts]:
            split.compact = False
        split.parts = done
        if not split.compact:
            await self._coalesce(poll, index, split)
        if not split.announced and split.settled and split.compact:
            split.announced = True
            self._announce(split)
        return False

    async def _coalesce(self, poll: _Poll, index: int, split: BlockSplit) -> None:
        """Merge each run of readable parts into one request, if the device accepts it."""
        parts: list[Part] = []
        compact = True
        for run in split.runs():
            if len(run) == 1:
                parts += run
                continue
            members = [m for part in run for m in part.block.members]
            merged = sub_block(split.block, members, poll.plan.spans)
            if (merged.start, merged.count) in split.unmergeable:
                parts += run
                continue
            if self._budget <= 0:
                parts += run
                compact = False
                continue
            self._budget -= 1
            answer = await self._request(poll, merged)
            if answer.data is not None:
                poll.store(merged, poll.base_of(index, merged), answer.data)
                parts.append(Part(merged, poll.plan.positions_of(merged)))
                continue
            parts += run
            if answer.refused:
                split.unmergeable.add((merged.start, merged.count))
            else:  # busy or garbled: try again next poll
                compact = False
        split.parts = parts
        split.compact = compact and split.settled

    async def _retry(self, poll: _Poll, index: int, split: BlockSplit) -> bool:
        """Try a refused block whole again; True if it answered (and was stored)."""
        self._budget -= 1
        split.retry_at = poll.now + self.connection.retry_refused
        block = split.block
        answer = await self._request(poll, block)
        if answer.data is not None:
            poll.store(block, poll.plan.bases[index], answer.data)
            for part in split.parts:
                self._failing.discard(_failing_key(part.block))
            self._failing.discard(_failing_key(block))
            log.info("modbus device %s: %s readable again", self.device.id, _describe(block))
            return True
        if answer.refused:  # still refused as a whole: probe the refused points again
            split.unmergeable.clear()
            for part in split.parts:
                if part.refused and part.block != block:
                    part.settled = False
                    split.compact = False
        return False

    def _announce(self, split: BlockSplit) -> None:
        refused = split.refused_parts()
        log.info(
            "modbus device %s: %s is read in %d requests from now on%s",
            self.device.id,
            _describe(split.block),
            len(split.parts) - len(refused),
            (
                f"; refused: {', '.join(_describe(p.block) for p in refused)}"
                if refused
                else "; all its points answer (the block bridged registers the device lacks)"
            ),
        )

    def _recovered(self, block: Block) -> None:
        if self._failing:
            key = _failing_key(block)
            if key in self._failing:
                self._failing.discard(key)
                log.info("modbus device %s: %s readable again", self.device.id, _describe(block))

    def _report_failure(
        self, block: Block, names: Sequence[str], reason: str, outcome: str
    ) -> None:
        """One warning when a request starts failing, debug while it keeps failing."""
        key = _failing_key(block)
        level = logging.DEBUG if key in self._failing else logging.WARNING
        self._failing.add(key)
        log.log(
            level,
            "modbus device %s (%s) answered %s to reading %s; points %s %s",
            self.device.id,
            self._endpoint,
            reason,
            _describe(block),
            ", ".join(names),
            outcome,
        )

    def _note_faults(self, poll: _Poll, undecodable: IntArray, raw: FloatArray) -> None:
        """Rebuild :attr:`faults` for this plan's points (only when they changed)."""
        plan, state = poll.plan, poll.state
        ids = plan.point_ids
        faults: dict[str, str] = {}
        for position in np.flatnonzero(plan.point_block < 0).tolist():
            faults[ids[position]] = "no Modbus address"
        for failure in poll.failures:
            if failure.quality == Quality.BAD_DEVICE_FAILURE:
                for position in failure.positions.tolist():
                    faults[ids[position]] = failure.reason
        bad_values = {
            ids[position]: self._undecodable(plan, position, raw, poll.words)
            for position in undecodable.tolist()
        }
        for point_id, why in bad_values.items():
            if point_id not in state.undecodable:
                log.warning("modbus device %s: point %s is Bad: %s", self.device.id, point_id, why)
        for point_id in state.undecodable.keys() - bad_values.keys():
            log.info("modbus device %s: point %s decodes again", self.device.id, point_id)
        state.undecodable = bad_values
        faults.update(bad_values)
        state.faults = faults
        merged: dict[str, str] = {}
        for each in self._states.values():
            merged.update(each.faults)
        self.faults = merged

    def _undecodable(self, plan: ReadPlan, position: int, raw: FloatArray, words: WordArray) -> str:
        """Why a point's value is not a number: type, address, raw registers."""
        point_id = plan.point_ids[position]
        address = self.addresses[point_id]
        unit = self.connection.unit if address.unit is None else address.unit
        where = f"{address.type} at unit {unit} {address.function} register {address.register}"
        if address.is_register:
            first = int(plan.first[position])
            registers = " ".join(f"{int(w):04X}" for w in words[first : first + address.width])
            where += f" (registers {registers})"
        value = float(raw[position])
        if math.isnan(value):
            return f"{where} holds NaN, not a number"
        if math.isinf(value):
            return f"{where} holds {'+' if value > 0 else '-'}Inf, not a number"
        return f"{where} = {value:g} overflows after scale {plan.scale[position]:g}"

    def _plan_for(self, points: Sequence[Point]) -> ReadPlan:
        # The engine passes the same tuple every poll: recognise it by identity
        # before paying for a key of 10,000 ids (the entry keeps the tuple alive,
        # so its id cannot be reused by another object).
        seen = self._seen.get(id(points))
        if seen is not None and seen[0] is points:
            return seen[1]
        ids = tuple(p.id for p in points)
        plan = self._plans.get(ids)
        if plan is None:
            plan = build_plan(points, self.addresses, self.connection)
            self._plans[ids] = plan
            self._states[id(plan)] = _PlanState()  # plans are kept, so their ids stay theirs
        if len(self._seen) < _SEEN_LIMIT:
            self._seen[id(points)] = (points, plan)
        return plan

    # --- writes -----------------------------------------------------------------------

    async def write(self, point: Point, value: float) -> None:
        """Write ``value`` (engineering units) to ``point``.

        Coils use function 5 (15 with ``single_writes: false``); registers use 6 for
        one register and 16 for more; a bit field is a read-modify-write of its
        container under the driver's lock, so no poll interleaves.
        """
        address = self.addresses.get(point.id)
        where = f"{point.id!r} of {self.device.id!r}"
        if address is None:
            raise DriverError(f"point {where} has no Modbus address")
        at = f"{address.function} {address.register}"
        if point.access != "read_write":
            raise DriverError(f"point {where} is read-only (access: {point.access})")
        if not address.writable:
            raise DriverError(
                f"point {where} at {at} cannot be written: {address.function} objects are read-only"
            )
        if address.type == "string":
            raise DriverError(f"point {where} is a string at {at}: not writable as a number")
        if point.scale == 0:
            raise DriverError(f"point {where} has scale 0; its raw value is undefined")
        raw = (value - point.offset) / point.scale
        if address.function == "coil" and raw not in (0.0, 1.0):
            raise DriverError(f"cannot write {value} to coil {where} at {at}: 0 or 1 only")
        async with self._lock:
            await self._connect_locked()
            try:
                response = await self._write_locked(address, raw)
            except ValueError as exc:
                raise DriverError(f"cannot write {value} to {where} at {at}: {exc}") from exc
            except _TRANSPORT_ERRORS as exc:
                raise self._lost(exc, f"writing {point.id} at {at}") from exc
        if response.isError():
            raise DriverError(
                f"modbus device {self.device.id!r} refused the write of {point.id!r} at {at} "
                f"({_exception_text(response)})"
            )
        log.info("modbus device %s: wrote %g to %s (%s)", self.device.id, value, point.id, at)

    async def _write_locked(self, address: ModbusAddress, raw: float) -> Any:
        client = self._client
        c = self.connection
        unit = c.unit if address.unit is None else address.unit
        if address.function == "coil":
            if c.single_writes:
                return await client.write_coil(address.register, bool(raw), device_id=unit)
            return await client.write_coils(address.register, [bool(raw)], device_id=unit)
        orders = {"byte_order": c.byte_order, "word_order": c.word_order}
        if address.bit is not None:
            width = REGISTER_WIDTH[address.type]
            current = await client.read_holding_registers(
                address.register, count=width, device_id=unit
            )
            if current.isError():
                return current
            words = encode_bit_field(address, current.registers, raw, **orders)
        else:
            words = encode_value(address, raw, **orders)
        if len(words) == 1 and c.single_writes:
            return await client.write_register(address.register, words[0], device_id=unit)
        return await client.write_registers(address.register, words, device_id=unit)

    # --- identification ---------------------------------------------------------------

    async def identify(self) -> Mapping[str, str]:
        """Read Device Identification (43/14): vendor_name, product_code, revision …

        Returns the last known identity without asking again when the device has
        shown it does not implement the function.  Never raises: identification
        is information, not a reason to stop polling.
        """
        if not self._identify_supported:
            return dict(self.identity)
        async with self._lock:
            try:
                await self._connect_locked()
                found = await read_identity(self._client, self.connection.unit)
            except DriverError as exc:
                log.info("modbus device %s: identification skipped: %s", self.device.id, exc)
                return dict(self.identity)
            except _TRANSPORT_ERRORS as exc:
                if not self.connected:
                    self._drop_client()
                log.info(
                    "modbus device %s (%s): no answer to device identification (43/14): %s",
                    self.device.id,
                    self._endpoint,
                    exc,
                )
                return dict(self.identity)
        if found is None:
            self._identify_supported = False
            log.info(
                "modbus device %s does not implement device identification (43/14)",
                self.device.id,
            )
            return {}
        self.identity = found
        return dict(found)


IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
WordArray = npt.NDArray[np.uint16]


@dataclass(slots=True)
class _PlanState:
    """What the driver learnt while reading one plan: refused blocks, current faults."""

    splits: dict[int, BlockSplit] = field(default_factory=dict)  # by planned block index
    signature: object = None  # failures and undecodable points of the last poll
    faults: dict[str, str] = field(default_factory=dict)
    undecodable: dict[str, str] = field(default_factory=dict)


class _Poll:
    """One read of one plan: the response buffers and what failed."""

    __slots__ = ("bits", "failures", "log", "now", "plan", "state", "words")

    def __init__(self, plan: ReadPlan, state: _PlanState) -> None:
        self.plan = plan
        self.state = state
        self.words: WordArray = np.zeros(plan.words, dtype=np.uint16)
        self.bits: npt.NDArray[np.uint8] = np.zeros(plan.bits, dtype=np.uint8)
        self.failures: list[Failure] = []
        self.now = 0.0
        #: Every request and its answer, in order, when the poll is a probe's (else None).
        self.log: list[tuple[Block, Answer]] | None = None

    def base_of(self, index: int, block: Block) -> int:
        """Where ``block`` (planned block ``index`` or a part of it) lands in its buffer."""
        return self.plan.bases[index] + block.start - self.plan.blocks[index].start

    def store(self, block: Block, base: int, data: Sequence[int] | Sequence[bool]) -> None:
        count = block.count
        if block.is_bits:
            self.bits[base : base + count] = np.asarray(data[:count], dtype=np.uint8)
        else:
            self.words[base : base + count] = np.fromiter(data, np.uint16, count)

    def fail(self, index: int, block: Block, positions: IntArray, quality: int, why: str) -> None:
        """Points at ``positions`` are Bad (``quality``) this poll, because ``why``."""
        key = (index, block.start, block.count, quality, why)
        self.failures.append(Failure(positions, quality, why, key))


_FUNCTION_CODES = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}


def _failing_key(block: Block) -> tuple[int, str, int, int]:
    return (block.unit, block.function, block.start, block.count)


def _why(block: Block, answer: str) -> str:
    """A point's reason: the device's answer and the request (function, start, count)."""
    return f"{answer} to reading {_request_text(block)}"


def _request_text(block: Block) -> str:
    """``unit 1 holding registers 0–9 (function 3, start 0, count 10)``."""
    return (
        f"{_describe(block)} (function {_FUNCTION_CODES[block.function]}, "
        f"start {block.start}, count {block.count})"
    )


def _describe(block: Block) -> str:
    kind = {"coil": "coils", "discrete_input": "discrete inputs"}.get(
        block.function, f"{block.function} registers"
    )
    return f"unit {block.unit} {kind} {block.start}–{block.end}"


def _exception_text(response: Any) -> str:
    code = getattr(response, "exception_code", None)
    if not isinstance(code, int):
        return "an error"
    if code in ExcCodes.__members__.values():
        return f"exception {code} ({ExcCodes(code).name.lower()})"
    return f"exception {code}"
