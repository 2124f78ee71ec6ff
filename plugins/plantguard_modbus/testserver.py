"""A minimal asyncio Modbus server for tests and benchmarks (not for production).

Why it exists next to pymodbus' server: a driver tested against a single
server implementation only proves it agrees with that implementation.  This one
is written from the protocol specification, answers pipelined requests, costs a
fraction of pymodbus' CPU per request (so benchmarks measure the client), and
can misbehave on purpose — exception responses, short or garbage frames, a unit
that never answers — which a well-behaved server cannot be asked to do.

It ships in the plugin package (like :mod:`plantguard.testing`) so the tests,
the benchmark and an integrator's own tests import it without path tricks.

Framings: MBAP (Modbus TCP, and Modbus/TCP Security when given an SSL context)
and RTU (over TCP, or over a file descriptor such as a pseudo-terminal's master
side).  Functions: 1, 2, 3, 4, 5, 6, 15, 16 and 43/14 (device identification).
Only bind it to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["MiniModbusServer", "TableName", "UnitImage", "crc16"]

Framing = Literal["mbap", "rtu"]
Malformation = Literal["short", "garbage"]
TableName = Literal["coils", "discrete", "holding", "input"]

_ILLEGAL_FUNCTION, _ILLEGAL_ADDRESS, _ILLEGAL_VALUE, _GATEWAY_NO_RESPONSE = 1, 2, 3, 11
_READ_LIMITS = {1: 2000, 2: 2000, 3: 125, 4: 125}
_BASIC_IDS, _REGULAR_IDS = range(3), range(7)
_TABLE_OF_FUNCTION: dict[int, str] = {
    1: "coils",
    5: "coils",
    15: "coils",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    4: "input",
}


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> bytes:
    """Modbus RTU CRC (polynomial 0xA001, initial 0xFFFF), low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc.to_bytes(2, "little")


@dataclass
class UnitImage:
    """The four object tables of one unit id, plus its identification objects.

    ``limit`` is one past the last valid address of every table; requests beyond
    it get exception 2, like a device with a small map.  :meth:`unmap` makes holes
    in a table (addresses the device does not have, also answered with exception
    2 by any request covering them); :meth:`remap` fills them again.
    """

    limit: int = 65536
    coils: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(65536, np.uint8))
    discrete: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(65536, np.uint8))
    holding: npt.NDArray[np.uint16] = field(default_factory=lambda: np.zeros(65536, np.uint16))
    input: npt.NDArray[np.uint16] = field(default_factory=lambda: np.zeros(65536, np.uint16))
    identity: dict[int, bytes] = field(default_factory=dict)
    #: Per table (``coils``, ``discrete``, ``holding``, ``input``): True where there is
    #: no such address.
    unmapped: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def unmap(self, table: TableName, start: int, count: int = 1) -> None:
        """Remove addresses ``start`` … ``start + count - 1`` of ``table`` from the map."""
        self._holes(table)[start : start + count] = True

    def remap(self, table: TableName, start: int = 0, count: int = 65536) -> None:
        """Put addresses of ``table`` back in the map (all of them by default)."""
        self._holes(table)[start : start + count] = False

    def _holes(self, table: TableName) -> npt.NDArray[np.bool_]:
        if table not in _TABLE_OF_FUNCTION.values():
            raise ValueError(f"no table {table!r}: coils, discrete, holding or input")
        return self.unmapped.setdefault(table, np.zeros(65536, dtype=bool))

    def refuses(self, function: int, start: int, count: int) -> bool:
        """A request of ``function`` covering these addresses misses the map."""
        holes = self.unmapped.get(_TABLE_OF_FUNCTION.get(function, ""))
        return holes is not None and bool(holes[start : start + count].any())


class MiniModbusServer:
    """Serve :attr:`units` over TCP (MBAP or RTU framing, optionally TLS) or a descriptor.

    :param units: unit ids to create (more can be added to :attr:`units` later).
    :param framing: ``mbap`` for Modbus TCP and TLS, ``rtu`` for RTU over TCP.
    :param ssl_context: serve Modbus/TCP Security (TLS) with this server context.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        units: Iterable[int] = (1,),
        framing: Framing = "mbap",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.framing: Framing = framing
        self.ssl_context = ssl_context
        self.units: dict[int, UnitImage] = {u: UnitImage() for u in units}
        #: (unit, function code, address) → exception code for requests covering it.
        self.faults: dict[tuple[int, int, int], int] = {}
        #: (unit, function code, address) → how to garble answers to requests covering it.
        self.malformed: dict[tuple[int, int, int], Malformation] = {}
        #: units that never answer (a dead device behind a gateway).
        self.silent: set[int] = set()
        #: RTU only: answers to these function codes go out with a wrong CRC (line noise).
        self.corrupt_crc: set[int] = set()
        #: requests served, by (unit, function code).
        self.requests: Counter[tuple[int, int]] = Counter()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._fds: list[int] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: a free one, then read :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.host,
            self.port,
            ssl=self.ssl_context,
            reuse_address=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def serve_fd(self, fd: int) -> None:
        """Answer RTU frames arriving on ``fd`` (e.g. a pty master) on the running loop."""
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        buffer = bytearray()

        def readable() -> None:
            try:
                chunk = os.read(fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the other side closed
                return
            buffer.extend(chunk)
            for answer in self._rtu_frames(buffer):
                os.write(fd, answer)

        loop.add_reader(fd, readable)
        self._fds.append(fd)

    async def stop(self) -> None:
        """Close the listener, every connection and every served descriptor."""
        server, self._server = self._server, None
        for transport in list(self._transports):
            transport.close()
        self._transports.clear()
        loop = asyncio.get_running_loop()
        for fd in self._fds:
            loop.remove_reader(fd)
        self._fds.clear()
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=2.0)

    async def __aenter__(self) -> MiniModbusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- framing ------------------------------------------------------------------------

    def _mbap_frames(self, buffer: bytearray) -> list[bytes]:
        """Answers to every complete MBAP frame in ``buffer`` (consumed)."""
        answers = []
        while len(buffer) >= 8:
            tid, _pid, length = struct.unpack_from(">HHH", buffer)
            if len(buffer) < 6 + length:
                break
            unit = buffer[6]
            pdu = bytes(buffer[7 : 6 + length])
            del buffer[: 6 + length]
            reply = self.handle(unit, pdu)
            if reply is not None:
                answers.append(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
        return answers

    def _rtu_frames(self, buffer: bytearray) -> list[bytes]:
        """Answers to every complete RTU frame in ``buffer`` (consumed)."""
        answers = []
        while len(buffer) >= 4:
            size = _rtu_request_size(buffer)
            if size is None:  # cannot frame an unknown function: resynchronise
                buffer.clear()
                break
            if len(buffer) < size:
                break
            frame = bytes(buffer[:size])
            del buffer[:size]
            if crc16(frame[:-2]) != frame[-2:]:
                continue  # a real device stays silent on a CRC error
            reply = self.handle(frame[0], frame[1:-2])
            if reply is not None:
                body = bytes([frame[0]]) + reply
                crc = crc16(body)
                if frame[1] in self.corrupt_crc:
                    crc = bytes([crc[0] ^ 0xFF, crc[1]])
                answers.append(body + crc)
        return answers

    # --- protocol -----------------------------------------------------------------------

    def handle(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU to a request PDU for ``unit``; None: no answer."""
        if not pdu:
            return None
        function = pdu[0]
        self.requests[(unit, function)] += 1
        if unit in self.silent:
            return None
        image = self.units.get(unit)
        if image is None:
            return bytes([function | 0x80, _GATEWAY_NO_RESPONSE])
        try:
            if function in _READ_LIMITS:
                return self._read(unit, image, function, pdu)
            if function in (5, 6, 15, 16):
                return self._write(unit, image, function, pdu)
            if function == 0x2B and len(pdu) >= 4 and pdu[1] == 0x0E:
                return self._identify(image, pdu)
        except _Refused as refused:
            return bytes([function | 0x80, refused.code])
        except (struct.error, IndexError):
            return bytes([function | 0x80, _ILLEGAL_VALUE])
        return bytes([function | 0x80, _ILLEGAL_FUNCTION])

    def _check(self, unit: int, image: UnitImage, function: int, start: int, count: int) -> None:
        if start + count > image.limit or image.refuses(function, start, count):
            raise _Refused(_ILLEGAL_ADDRESS)
        for (f_unit, f_function, address), code in self.faults.items():
            if f_unit == unit and f_function == function and start <= address < start + count:
                raise _Refused(code)

    def _garbling(self, unit: int, function: int, start: int, count: int) -> Malformation | None:
        for (m_unit, m_function, address), kind in self.malformed.items():
            if m_unit == unit and m_function == function and start <= address < start + count:
                return kind
        return None

    def _read(self, unit: int, image: UnitImage, function: int, pdu: bytes) -> bytes:
        start, count = struct.unpack_from(">HH", pdu, 1)
        if not 1 <= count <= _READ_LIMITS[function]:
            raise _Refused(_ILLEGAL_VALUE)
        self._check(unit, image, function, start, count)
        if function in (1, 2):
            table = image.coils if function == 1 else image.discrete
            data = np.packbits(table[start : start + count] != 0, bitorder="little").tobytes()
        else:
            words = image.holding if function == 3 else image.input
            data = words[start : start + count].astype(">u2").tobytes()
        garbling = self._garbling(unit, function, start, count)
        if garbling == "short":
            data = data[: max(len(data) - 2, 0)]
        elif garbling == "garbage":
            return bytes([0x63, 0xFF]) + data  # no such function, and a bogus length
        return bytes([function, len(data)]) + data

    def _write(self, unit: int, image: UnitImage, function: int, pdu: bytes) -> bytes:
        start, value = struct.unpack_from(">HH", pdu, 1)
        if function == 5:
            if value not in (0x0000, 0xFF00):
                raise _Refused(_ILLEGAL_VALUE)
            self._check(unit, image, function, start, 1)
            image.coils[start] = 1 if value else 0
            return pdu[:5]
        if function == 6:
            self._check(unit, image, function, start, 1)
            image.holding[start] = value
            return pdu[:5]
        count, size = value, pdu[5]
        payload = pdu[6 : 6 + size]
        if len(payload) != size:
            raise _Refused(_ILLEGAL_VALUE)
        self._check(unit, image, function, start, count)
        if function == 15:
            bits = np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")
            image.coils[start : start + count] = bits[:count]
        else:
            image.holding[start : start + count] = np.frombuffer(payload, ">u2")[:count]
        return struct.pack(">BHH", function, start, count)

    def _identify(self, image: UnitImage, pdu: bytes) -> bytes:
        read_code, object_id = pdu[2], pdu[3]
        if not image.identity:
            raise _Refused(_ILLEGAL_FUNCTION)
        if read_code == 4:
            ids: Iterable[int] = [object_id] if object_id in image.identity else []
            if not ids:
                raise _Refused(_ILLEGAL_ADDRESS)
        elif read_code in (1, 2, 3):
            wanted = _BASIC_IDS if read_code == 1 else _REGULAR_IDS
            ids = [i for i in sorted(image.identity) if i in wanted and i >= object_id]
        else:
            raise _Refused(_ILLEGAL_VALUE)
        objects = b"".join(bytes([i, len(image.identity[i])]) + image.identity[i] for i in ids)
        conformity = 0x82  # basic and regular, stream and individual access
        return bytes([0x2B, 0x0E, read_code, conformity, 0, 0, len(list(ids))]) + objects

    # --- helpers for tests ----------------------------------------------------------------

    def set_identity(self, unit: int, objects: Mapping[int, str]) -> None:
        """Identification objects of ``unit`` (0 vendor, 1 product code, 2 revision …)."""
        self.units[unit].identity = {k: v.encode() for k, v in objects.items()}


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _rtu_request_size(buffer: bytearray) -> int | None:
    function = buffer[1]
    if function in (1, 2, 3, 4, 5, 6):
        return 8
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else 9
    if function == 0x2B:
        return 7
    return None


class _Connection(asyncio.Protocol):
    def __init__(self, server: MiniModbusServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server._transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        server = self._server
        frames = (
            server._mbap_frames(self._buffer)
            if server.framing == "mbap"
            else server._rtu_frames(self._buffer)
        )
        if frames and self._transport is not None:
            self._transport.write(b"".join(frames))


def _main() -> None:
    """``python -m plantguard_modbus.testserver``: serve a counting pattern until killed.

    Prints the bound port on the first line of stdout (for benchmarks that start
    the server in its own process, on its own core).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--framing", choices=("mbap", "rtu"), default="mbap")
    args = parser.parse_args()

    async def serve() -> None:
        server = MiniModbusServer("127.0.0.1", args.port, framing=args.framing)
        image = server.units[1]
        image.holding[:] = np.arange(65536, dtype=np.uint32).astype(np.uint16)
        image.input[:] = image.holding
        await server.start()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    _main()
