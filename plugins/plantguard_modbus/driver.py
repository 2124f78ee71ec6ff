"""The Modbus TCP device driver: block reads, vectorised decoding, writes.

Why it is shaped this way:

* Reads follow a plan (:mod:`.planner`) computed once per set of points and
  cached, so a poll is a handful of block requests and no per-point Python work.
* Responses are decoded with numpy index arrays: the registers of all blocks go
  into one ``uint16`` array and each data type is assembled from its high and
  low words in one vector operation (word order is just which index is "high").
* A Modbus exception response is the device saying "not this block": only that
  block's points go Bad (``BAD_DEVICE_FAILURE``) and the rest of the poll is
  kept.  A lost connection or a timeout is the device being unreachable: the
  whole read raises :class:`~plantguard.drivers.DriverError` and the connection
  is dropped, so the next :meth:`ModbusDriver.connect` (or read) starts clean.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from plantguard.drivers import DeviceDriver, DriverError, ReadResult
from plantguard.model import Device, Point, Quality

from .models import ModbusAddress, ModbusConnection
from .planner import Block, Span, plan_blocks

__all__ = ["ModbusDriver", "encode_value"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.intp]
WordArray = npt.NDArray[np.uint16]

_INT_LIMITS: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_BIG_ENDIAN_DTYPE = {
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "float32": ">f4",
}
_WIDE_VIEW: dict[str, type[np.generic]] = {
    "int32": np.int32,
    "uint32": np.uint32,
    "float32": np.float32,
}


@dataclass(frozen=True, slots=True)
class _TypeGroup:
    """Points of one data type: where they go in the result and which words hold them."""

    type: str
    positions: IntArray
    high: IntArray
    low: IntArray | None


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    blocks: tuple[Block, ...]
    bases: tuple[int, ...]  # word offset of each block in the concatenated buffer
    words: int
    point_block: IntArray  # block index per requested point (-1: no address)
    groups: tuple[_TypeGroup, ...]
    scale: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]
    point_ids: tuple[str, ...]
    block_points: tuple[tuple[str, ...], ...]  # point ids read by each block


def _decode_words(
    words: WordArray, groups: Sequence[_TypeGroup], size: int
) -> npt.NDArray[np.float64]:
    """Raw (unscaled) values of ``size`` points from concatenated register words."""
    values = np.full(size, np.nan)
    for group in groups:
        high = words[group.high]
        if group.low is None:
            values[group.positions] = high.view(np.int16) if group.type == "int16" else high
        else:
            joined = (high.astype(np.uint32) << 16) | words[group.low]
            values[group.positions] = joined.view(_WIDE_VIEW[group.type])
    return values


def encode_value(address: ModbusAddress, raw: float) -> list[int]:
    """Registers holding ``raw`` (already unscaled) as ``address`` says.

    :raises ValueError: the value does not fit the register type.
    """
    if address.type != "float32":
        if not math.isfinite(raw):
            raise ValueError(f"{raw} cannot be written as {address.type}")
        low, high = _INT_LIMITS[address.type]
        integer = round(raw)
        if not low <= integer <= high:
            raise ValueError(f"{raw} is outside the {address.type} range {low} … {high}")
        data: Any = np.array([integer], dtype=_BIG_ENDIAN_DTYPE[address.type])
    else:
        data = np.array([raw], dtype=">f4")
    words = [int(w) for w in data.view(">u2")]
    if address.word_order == "little":
        words.reverse()
    return words


class ModbusDriver(DeviceDriver):
    """Driver of one Modbus TCP device (or one unit id behind a gateway).

    :param device: the configured device.
    :param connection: its validated ``connection`` settings.
    :param addresses: each point's validated ``address``, keyed by global point id.
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
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._plans: dict[tuple[str, ...], _ReadPlan] = {}
        self._failing: set[tuple[str, int, int]] = set()

    def __repr__(self) -> str:
        return f"ModbusDriver({self.device.id!r}, {self._endpoint})"

    @property
    def _endpoint(self) -> str:
        c = self.connection
        return f"{c.host}:{c.port} unit {c.unit}"

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
        c = self.connection
        client = AsyncModbusTcpClient(
            c.host,
            port=c.port,
            timeout=c.timeout,
            retries=c.retries,
            reconnect_delay=0,  # the engine owns reconnecting, with its backoff
            name=f"plantguard-{self.device.id}",
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise DriverError(
                f"modbus device {self.device.id!r} ({self._endpoint}): {exc}"
            ) from exc
        if not ok:
            client.close()
            raise DriverError(
                f"modbus device {self.device.id!r} is unreachable at {self._endpoint}"
            )
        self._client = client
        log.info("modbus device %s connected (%s)", self.device.id, self._endpoint)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must not raise
                log.debug("error closing modbus client of %s", self.device.id, exc_info=True)

    async def close(self) -> None:
        self._drop_client()

    # --- reads ------------------------------------------------------------------------

    async def read(self, points: Sequence[Point]) -> ReadResult:
        """Read ``points`` with the planned block requests.

        A connection that was lost is reopened first; if that fails, or a request
        times out or the connection drops, :class:`DriverError` is raised.
        """
        plan = self._plan_for(points)
        words = np.zeros(plan.words, dtype=np.uint16)
        failed = np.zeros(len(plan.blocks), dtype=bool)
        async with self._lock:
            await self._connect_locked()
            for index, block in enumerate(plan.blocks):
                registers = await self._read_block(block, plan)
                if registers is None:
                    failed[index] = True
                else:
                    base = plan.bases[index]
                    words[base : base + block.count] = registers
        source_time = time.time()
        values = _decode_words(words, plan.groups, len(plan.point_ids))
        values = values * plan.scale + plan.offset
        quality = np.full(len(plan.point_ids), Quality.GOOD, dtype=np.uint8)
        quality[~np.isfinite(values)] = Quality.BAD
        quality[plan.point_block < 0] = Quality.BAD_CONFIGURATION_ERROR
        in_failed_block = np.zeros(len(plan.point_ids), dtype=bool)
        has_block = plan.point_block >= 0
        in_failed_block[has_block] = failed[plan.point_block[has_block]]
        quality[in_failed_block] = Quality.BAD_DEVICE_FAILURE
        values[quality >= Quality.BAD] = np.nan
        return ReadResult(values=values, quality=quality, source_time=source_time)

    async def _read_block(self, block: Block, plan: _ReadPlan) -> WordArray | None:
        """Registers of ``block``, or None if the device answered with an exception."""
        client = self._client
        assert client is not None  # _connect_locked succeeded
        unit = self.connection.unit
        request = (
            client.read_holding_registers
            if block.function == "holding"
            else client.read_input_registers
        )
        try:
            response = await request(block.start, count=block.count, device_id=unit)
        except (ModbusException, OSError, TimeoutError) as exc:
            self._drop_client()
            raise DriverError(
                f"modbus device {self.device.id!r} ({self._endpoint}) lost: {exc}"
            ) from exc
        key = (block.function, block.start, block.count)
        registers = getattr(response, "registers", None) or []
        if response.isError() or len(registers) < block.count:
            self._report_block_failure(key, block, plan, response)
            return None
        if key in self._failing:
            self._failing.discard(key)
            log.info(
                "modbus device %s: %s registers %d–%d readable again",
                self.device.id,
                block.function,
                block.start,
                block.start + block.count - 1,
            )
        return np.array(registers[: block.count], dtype=np.uint16)

    def _report_block_failure(
        self, key: tuple[str, int, int], block: Block, plan: _ReadPlan, response: Any
    ) -> None:
        code = getattr(response, "exception_code", None)
        if not isinstance(code, int):
            reason = "a short response"
        elif code in ExcCodes.__members__.values():
            reason = f"exception {code} ({ExcCodes(code).name.lower()})"
        else:
            reason = f"exception {code}"
        members = plan.block_points[plan.blocks.index(block)]
        level = logging.DEBUG if key in self._failing else logging.WARNING
        self._failing.add(key)
        log.log(
            level,
            "modbus device %s (%s) answered %s to reading %s registers %d–%d; "
            "points %s are Bad (device failure)",
            self.device.id,
            self._endpoint,
            reason,
            block.function,
            block.start,
            block.start + block.count - 1,
            ", ".join(members),
        )

    def _plan_for(self, points: Sequence[Point]) -> _ReadPlan:
        ids = tuple(p.id for p in points)
        plan = self._plans.get(ids)
        if plan is None:
            plan = self._build_plan(points)
            self._plans[ids] = plan
        return plan

    def _build_plan(self, points: Sequence[Point]) -> _ReadPlan:
        known = [i for i, p in enumerate(points) if p.id in self.addresses]
        addresses = [self.addresses[points[i].id] for i in known]
        spans = [Span(a.function, a.register, a.width) for a in addresses]
        c = self.connection
        blocks = plan_blocks(spans, c.max_registers_per_request, c.max_gap)

        bases: list[int] = []
        total = 0
        point_block = np.full(len(points), -1, dtype=np.intp)
        word_of = np.zeros(len(points), dtype=np.intp)  # first word of each point
        for b_index, block in enumerate(blocks):
            bases.append(total)
            for member, offset in zip(block.members, block.offsets, strict=True):
                position = known[member]
                point_block[position] = b_index
                word_of[position] = total + offset
            total += block.count

        groups: list[_TypeGroup] = []
        for type_name in ("int16", "uint16", "int32", "uint32", "float32"):
            chosen = [(known[k], a) for k, a in enumerate(addresses) if a.type == type_name]
            if not chosen:
                continue
            positions = np.array([pos for pos, _ in chosen], dtype=np.intp)
            first = word_of[positions]
            if chosen[0][1].width == 1:
                groups.append(_TypeGroup(type_name, positions, first, None))
                continue
            little = np.array([a.word_order == "little" for _, a in chosen], dtype=bool)
            high = np.where(little, first + 1, first)
            low = np.where(little, first, first + 1)
            groups.append(_TypeGroup(type_name, positions, high, low))

        return _ReadPlan(
            blocks=tuple(blocks),
            bases=tuple(bases),
            words=total,
            point_block=point_block,
            groups=tuple(groups),
            scale=np.array([p.scale for p in points], dtype=np.float64),
            offset=np.array([p.offset for p in points], dtype=np.float64),
            point_ids=tuple(p.id for p in points),
            block_points=tuple(
                tuple(points[known[m]].id for m in block.members) for block in blocks
            ),
        )

    # --- writes -----------------------------------------------------------------------

    async def write(self, point: Point, value: float) -> None:
        """Write ``value`` (engineering units) to ``point`` with function 16."""
        address = self.addresses.get(point.id)
        if address is None:
            raise DriverError(f"point {point.id!r} has no Modbus address on {self.device.id!r}")
        if point.access != "read_write":
            raise DriverError(f"point {point.id!r} is read-only (access: {point.access})")
        if address.function != "holding":
            raise DriverError(f"point {point.id!r} is an input register, which cannot be written")
        if point.scale == 0:
            raise DriverError(f"point {point.id!r} has scale 0; its raw value is undefined")
        try:
            registers = encode_value(address, (value - point.offset) / point.scale)
        except ValueError as exc:
            raise DriverError(f"cannot write {value} to {point.id!r}: {exc}") from exc
        async with self._lock:
            await self._connect_locked()
            client = self._client
            assert client is not None
            try:
                response = await client.write_registers(
                    address.register, registers, device_id=self.connection.unit
                )
            except (ModbusException, OSError, TimeoutError) as exc:
                self._drop_client()
                raise DriverError(
                    f"modbus device {self.device.id!r} ({self._endpoint}) lost: {exc}"
                ) from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise DriverError(
                f"modbus device {self.device.id!r} refused the write of {point.id!r} "
                f"(exception {code})"
            )
        log.info("modbus device %s: wrote %g to %s", self.device.id, value, point.id)
