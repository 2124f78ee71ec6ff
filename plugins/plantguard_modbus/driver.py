"""The Modbus device driver: block reads, vectorised decoding, writes, identification.

Why it is shaped this way:

* Reads follow a plan (:mod:`.readplan`) computed once per set of points and
  cached, so a poll is a handful of block requests and no per-point Python work.
* Responses land in two buffers — all register blocks in one ``uint16`` array,
  all coil/input blocks in one ``uint8`` array — and :mod:`.codec` decodes each
  data type with one vector operation.
* Failures are scoped to what they cover.  A Modbus exception response is the
  device saying "not this block": only that block's points go Bad
  (``BAD_DEVICE_FAILURE``).  A malformed or missing answer on a connection that
  is still up (short response, wrong unit id, one timeout) makes that block's
  points ``BAD_COMMUNICATION_ERROR`` and the poll goes on.  A lost connection,
  or a second timeout in a row, is the device being unreachable: the read raises
  :class:`~plantguard.drivers.DriverError` and the connection is dropped, so the
  engine marks every point of the device Bad and reconnects with its backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException, ModbusIOException

from plantguard.drivers import DeviceDriver, DriverError, ReadResult
from plantguard.model import Device, Point, Quality

from .codec import encode_bit_field, encode_value
from .identity import read_identity
from .models import REGISTER_WIDTH, ModbusAddress, ModbusConnection
from .planner import Block
from .readplan import ReadPlan, build_plan
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
        self._plans: dict[tuple[str, ...], ReadPlan] = {}
        self._seen: dict[int, tuple[Sequence[Point], ReadPlan]] = {}
        self._failing: set[tuple[int, str, int, int]] = set()
        self._silent = 0
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
        """
        plan = self._plan_for(points)
        words = np.zeros(plan.words, dtype=np.uint16)
        bits = np.zeros(plan.bits, dtype=np.uint8)
        status = np.zeros(len(plan.blocks), dtype=np.uint8)
        async with self._lock:
            await self._connect_locked()
            for index, block in enumerate(plan.blocks):
                status[index] = await self._read_block(block, plan, index, words, bits)
        source_time = time.time()

        values = np.full(len(plan.point_ids), np.nan)
        for group in plan.types:
            group.decode(words, values)
        for field in plan.fields:
            field.decode(words, values)
        if plan.flags is not None:
            plan.flags.decode(bits, values)
        texts = plan.texts.decode(words, values) if plan.texts is not None else {}
        values = values * plan.scale + plan.offset

        quality = np.full(len(plan.point_ids), Quality.GOOD, dtype=np.uint8)
        quality[~np.isfinite(values)] = Quality.BAD
        has_block = plan.point_block >= 0
        quality[~has_block] = Quality.BAD_CONFIGURATION_ERROR
        block_status = np.zeros(len(plan.point_ids), dtype=np.uint8)
        block_status[has_block] = status[plan.point_block[has_block]]
        failed = block_status > 0
        quality[failed] = block_status[failed]
        values[quality >= Quality.BAD] = np.nan
        if texts:
            assert plan.texts is not None
            good = quality[plan.texts.positions] == Quality.GOOD
            self.texts.update(
                (pid, text) for (pid, text), ok in zip(texts.items(), good, strict=True) if ok
            )
        return ReadResult(values=values, quality=quality, source_time=source_time)

    async def _read_block(
        self,
        block: Block,
        plan: ReadPlan,
        index: int,
        words: np.ndarray[Any, np.dtype[np.uint16]],
        bits: np.ndarray[Any, np.dtype[np.uint8]],
    ) -> int:
        """Read one block into its buffer; 0, or the quality its points get."""
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
            self._report_block_failure(block, plan, index, f"no valid response ({exc})")
            return Quality.BAD_COMMUNICATION_ERROR
        except _TRANSPORT_ERRORS as exc:
            raise self._lost(exc, f"reading {_describe(block)}") from exc
        self._silent = 0
        if response.isError():
            self._report_block_failure(block, plan, index, _exception_text(response))
            return Quality.BAD_DEVICE_FAILURE
        data = response.bits if block.is_bits else response.registers
        if data is None or len(data) < block.count:
            got = 0 if data is None else len(data)
            self._report_block_failure(
                block, plan, index, f"a malformed response ({got} of {block.count} values)"
            )
            return Quality.BAD_COMMUNICATION_ERROR
        base, count = plan.bases[index], block.count
        if block.is_bits:
            bits[base : base + count] = np.asarray(data[:count], dtype=np.uint8)
        else:
            words[base : base + count] = np.fromiter(data, np.uint16, count)
        if self._failing:
            key = (block.unit, block.function, block.start, count)
            if key in self._failing:
                self._failing.discard(key)
                log.info("modbus device %s: %s readable again", self.device.id, _describe(block))
        return 0

    def _report_block_failure(self, block: Block, plan: ReadPlan, index: int, reason: str) -> None:
        """One warning when a block starts failing, debug while it keeps failing."""
        key = (block.unit, block.function, block.start, block.count)
        level = logging.DEBUG if key in self._failing else logging.WARNING
        self._failing.add(key)
        log.log(
            level,
            "modbus device %s (%s) answered %s to reading %s; points %s are Bad",
            self.device.id,
            self._endpoint,
            reason,
            _describe(block),
            ", ".join(plan.block_points[index]),
        )

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
