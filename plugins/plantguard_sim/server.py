"""Serve the simulated plant over a real Modbus TCP server.

Why a real server: the gateway's Modbus driver, its block reads, exception
handling and reconnects are exercised end to end against the same protocol
stack a field device speaks, on loopback.

The server uses pymodbus' ``SimDevice``/``SimData`` simulator API: each device
is one shared register block of float32 values (see :mod:`plantguard_sim.plant`
for the maps) and an ``action`` callback that runs on every access:

* on a read it fills the block from the plant model at the current plant time;
* on a write (function 16, or function 6 for one register, which is merged with
  the other register of the float) it *overrides* the simulated value of each
  point touched, until a NaN float32 is written to that point, which releases
  the override.

Addresses outside a device's block answer with Modbus exception 2 (illegal data
address), as a real device does; unit ids no simulated device has answer with
exception 11 (gateway target device failed to respond).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantguard.plugin import ensure_port_free

from .plant import DEVICES, DeviceSpec, PlantModel

__all__ = ["SimServer", "decode_float32", "encode_float32"]

log = logging.getLogger(__name__)

_READ_CODES = frozenset({3, 4})
_WRITE_CODES = frozenset({6, 16, 23})

Action = Callable[
    [int, int, int, int, list[int], list[int] | list[bool] | None],
    Coroutine[Any, Any, ExcCodes | None],
]


def encode_float32(values: np.ndarray[Any, Any]) -> list[int]:
    """Registers of float32 values, high word first (big-endian words and bytes)."""
    words = np.asarray(values, dtype=">f4").view(">u2")
    return [int(w) for w in words]


def decode_float32(registers: list[int]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """float32 values of register pairs, high word first."""
    return np.array(registers, dtype=">u2").view(">f4").astype(np.float32)


async def _no_such_unit(  # noqa: PLR0917 - signature fixed by pymodbus SimAction
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _unknown_unit_device() -> SimDevice:
    """Catch-all device (id 0) for unit ids nothing answers to.

    It answers "gateway target device failed to respond" (exception 11), as a
    Modbus TCP gateway does for a unit id behind it that is silent.
    """
    block = SimData(address=0, count=65536, datatype=DataType.REGISTERS)
    return SimDevice(id=0, simdata=[block], action=_no_such_unit)


class SimServer:
    """A Modbus TCP server for the simulated plant.

    :param plant: the plant model to serve.
    :param host: address to bind; keep the default loopback unless the
        simulator must be reached from another machine.
    :param port: TCP port; 0 picks a free port (read :attr:`port` after start).
    :param clock: plant time in seconds; defaults to seconds since :meth:`start`.
    """

    def __init__(
        self,
        plant: PlantModel,
        host: str = "127.0.0.1",
        port: int = 5020,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.plant = plant
        self.host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._clock = clock
        self._started_at = 0.0
        self._server: ModbusTcpServer | None = None
        self._overrides: dict[str, float] = {}

    # --- lifecycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind and start serving; returns once the port is bound."""
        if self._server is not None:
            return
        self._started_at = time.monotonic()
        devices = [self._sim_device(spec) for spec in DEVICES]
        devices.append(_unknown_unit_device())
        ensure_port_free(
            self.host,
            self._requested_port,
            what="the plant simulator (Modbus TCP)",
            setting="services.sim.port; --modbus-port for the demo",
        )
        server = ModbusTcpServer(devices, address=(self.host, self._requested_port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"simulator cannot listen on {self.host}:{self._requested_port}") from exc
        listener = server.transport
        sockets = getattr(listener, "sockets", None) or ()
        self._bound_port = int(sockets[0].getsockname()[1]) if sockets else self._requested_port
        self._server = server
        log.info("plant simulator serving Modbus TCP on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the listener and every client connection; never raises."""
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        try:
            await server.shutdown()  # type: ignore[no-untyped-call]
            if isinstance(listener, asyncio.AbstractServer):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.wait_closed(), timeout=2.0)
        except Exception:  # stopping must not fail the caller's shutdown
            log.exception("error while stopping the plant simulator")
        # Let connection-lost callbacks and in-flight request handlers finish.
        await asyncio.sleep(0)
        log.info("plant simulator on %s:%d stopped", self.host, self.port)

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- plant time and overrides -------------------------------------------------------

    def plant_time(self) -> float:
        """Seconds of plant time now."""
        if self._clock is not None:
            return self._clock()
        return time.monotonic() - self._started_at

    @property
    def overrides(self) -> dict[str, float]:
        """Point ids whose simulated value is overridden by a write, and the written value."""
        return dict(self._overrides)

    def current_values(self, spec: DeviceSpec) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Values of ``spec``'s points now, overrides applied, in register order."""
        values = self.plant.device_values(spec, self.plant_time())
        for i, point in enumerate(spec.points):
            override = self._overrides.get(f"{spec.id}.{point.key}")
            if override is not None:
                values[i] = override
        return values

    # --- pymodbus simulator glue ------------------------------------------------------

    def _sim_device(self, spec: DeviceSpec) -> SimDevice:
        block = SimData(
            address=0,
            values=[0.0] * len(spec.points),
            datatype=DataType.FLOAT32,
        )
        return SimDevice(id=spec.unit, simdata=[block], action=self._action_for(spec))

    def _action_for(self, spec: DeviceSpec) -> Action:
        async def action(  # noqa: PLR0917 - signature fixed by pymodbus SimAction
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code not in _READ_CODES | _WRITE_CODES:
                return ExcCodes.ILLEGAL_FUNCTION
            size = spec.register_count
            current = encode_float32(self.current_values(spec))
            if set_values is not None:
                offset = address - start_address
                merged = list(current)
                merged[offset : offset + len(set_values)] = [int(v) for v in set_values]
                self._apply_write(spec, merged, offset, len(set_values))
                current = merged
            registers[:size] = current
            return None

        return action

    def _apply_write(self, spec: DeviceSpec, merged: list[int], offset: int, count: int) -> None:
        decoded = decode_float32(merged)
        first, last = offset // 2, (offset + count - 1) // 2
        for index in range(first, min(last, len(spec.points) - 1) + 1):
            point_id = f"{spec.id}.{spec.points[index].key}"
            value = float(decoded[index])
            if math.isnan(value):
                if self._overrides.pop(point_id, None) is not None:
                    log.info("simulator: override of %s released", point_id)
            else:
                self._overrides[point_id] = value
                log.info("simulator: %s overridden to %g", point_id, value)
