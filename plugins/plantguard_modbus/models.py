"""Schemas of a Modbus device's ``connection`` and each point's ``address``.

Why separate models: the site file is validated against them at start-up, so a
mistyped register, an unknown data type or a TLS connection without a trust
anchor is reported with file, line and field before anything polls.

Everything a real plant varies per device lives in :class:`ModbusConnection`
(transport, serial settings, TLS files, byte and word order, request limits);
everything that varies per point lives in :class:`ModbusAddress` (object type,
address, data type, bit field, string length, and overrides of the device's
orders and unit id).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BIT_FUNCTIONS",
    "MAX_BITS",
    "MAX_REGISTERS",
    "REGISTER_WIDTH",
    "ByteOrder",
    "DataType",
    "Function",
    "ModbusAddress",
    "ModbusConnection",
    "RegisterType",
    "TlsSettings",
    "Transport",
]

#: Protocol limits of one read request (Modbus application protocol v1.1b3, 6.1–6.4).
MAX_REGISTERS = 125
MAX_BITS = 2000

Transport = Literal["tcp", "rtu_over_tcp", "tls", "rtu"]
Function = Literal["coil", "discrete_input", "holding", "input"]
ByteOrder = Literal["big", "little"]
RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
DataType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
]

#: Object types addressed bit by bit (function codes 1, 2, 5, 15).
BIT_FUNCTIONS: frozenset[str] = frozenset({"coil", "discrete_input"})

#: Registers (16-bit words) each fixed-size data type occupies.
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
_DEFAULT_PORT: dict[str, int] = {"tcp": 502, "rtu_over_tcp": 502, "tls": 802}


class TlsSettings(BaseModel):
    """``connection.tls``: Modbus/TCP Security (TLS with certificate verification).

    The device's certificate is always verified against ``cafile`` and must carry
    the connection's ``host`` (DNS name or IP address).  ``certfile`` and
    ``keyfile`` are the gateway's own certificate, which Modbus/TCP Security
    devices require for mutual authentication.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cafile: str = Field(min_length=1, description="PEM file of the CA(s) trusted for devices")
    certfile: str | None = Field(None, description="PEM certificate of the gateway")
    keyfile: str | None = Field(None, description="PEM private key of certfile")

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> TlsSettings:
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile is given without certfile")
        return self


class ModbusConnection(BaseModel):
    """``connection:`` of a device with ``driver: modbus``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: Transport = Field("tcp", description="tcp, rtu_over_tcp, tls or rtu (serial)")
    host: str | None = Field(None, min_length=1, description="device or gateway address")
    port: int | None = Field(None, ge=1, le=65535, description="TCP port (502; TLS 802)")
    serial_port: str | None = Field(None, min_length=1, description="e.g. /dev/ttyUSB0 (rtu)")
    baudrate: int = Field(19200, ge=50, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    tls: TlsSettings | None = None
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave/device) id")
    timeout: float = Field(1.0, gt=0, le=60, description="seconds to wait for a response")
    retries: int = Field(1, ge=0, le=10, description="retries of a request that timed out")
    max_registers_per_request: int = Field(
        MAX_REGISTERS, ge=1, le=MAX_REGISTERS, description="largest register read (protocol: 125)"
    )
    max_bits_per_request: int = Field(
        MAX_BITS, ge=1, le=MAX_BITS, description="largest coil/input read (protocol: 2000)"
    )
    max_gap: int = Field(
        8, ge=0, le=MAX_REGISTERS, description="unused registers a read may bridge"
    )
    max_bit_gap: int = Field(64, ge=0, le=MAX_BITS, description="unused bits a read may bridge")
    byte_order: ByteOrder = Field(
        "big", description="'little': the two bytes of each register swapped"
    )
    word_order: ByteOrder = Field("big", description="'little': low word first in 32/64-bit types")
    single_writes: bool = Field(
        True, description="write one coil/register with function 5/6 (false: always 15/16)"
    )
    identify: bool = Field(True, description="read device identification (43/14) on connect")
    retry_refused: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="seconds between re-reads of registers the device refused (exception 2/3)",
    )

    @model_validator(mode="after")
    def _transport_needs(self) -> ModbusConnection:
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport rtu needs serial_port (e.g. /dev/ttyUSB0)")
            if self.host or self.tls:
                raise ValueError("transport rtu takes serial_port, not host or tls")
            return self
        if not self.host:
            raise ValueError(f"transport {self.transport} needs host")
        if self.transport == "tls" and self.tls is None:
            raise ValueError("transport tls needs tls: {cafile: …} to verify the device")
        if self.transport != "tls" and self.tls is not None:
            raise ValueError(f"tls settings given but transport is {self.transport}, not tls")
        return self

    @property
    def tcp_port(self) -> int:
        """The configured port, or the transport's registered default."""
        return self.port if self.port is not None else _DEFAULT_PORT.get(self.transport, 502)

    @property
    def endpoint(self) -> str:
        """Where the device is, for log lines and errors."""
        if self.transport == "rtu":
            return f"rtu {self.serial_port} unit {self.unit}"
        return f"{self.transport} {self.host}:{self.tcp_port} unit {self.unit}"


# ``register`` is the natural key in the site file; it only shadows the metaclass's
# ABC ``register`` on the class, never on instances, so pydantic's warning is noise.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class ModbusAddress(BaseModel):
        """``address:`` of a point of a Modbus device.

        ``register`` is the 0-based protocol address: of the first register for
        ``holding``/``input``, of the coil or input for ``coil``/``discrete_input``.
        """

        model_config = ConfigDict(frozen=True, extra="forbid")

        register: int = Field(ge=0, le=65535, description="0-based protocol address")
        function: Function = "holding"
        type: DataType = Field(
            "float32", description="bool for coils/inputs; defaults to float32 for registers"
        )
        length: int | None = Field(None, ge=1, le=250, description="characters of a string")
        bit: int | None = Field(None, ge=0, le=63, description="lowest bit of a bit field")
        bits: int = Field(1, ge=1, le=64, description="width of the bit field")
        byte_order: ByteOrder | None = Field(None, description="overrides the device's")
        word_order: ByteOrder | None = Field(None, description="overrides the device's")
        unit: int | None = Field(None, ge=0, le=255, description="overrides the device's unit")

        @model_validator(mode="before")
        @classmethod
        def _bits_default_to_bool(cls, data: Any) -> Any:
            if (
                isinstance(data, dict)
                and data.get("function") in BIT_FUNCTIONS
                and "type" not in data
            ):
                return {**data, "type": "bool"}
            if isinstance(data, dict) and "bit" in data and "type" not in data:
                return {**data, "type": "uint16"}
            return data

        @model_validator(mode="after")
        def _consistent(self) -> ModbusAddress:
            if self.function in BIT_FUNCTIONS:
                if self.type != "bool":
                    raise ValueError(f"a {self.function} is a single bit: type must be bool")
                if self.bit is not None or self.length is not None:
                    raise ValueError(f"a {self.function} takes no bit or length")
                return self
            if self.type == "bool":
                raise ValueError(
                    "a register is not a bool: use a bit field, e.g. {type: uint16, bit: 3}"
                )
            if self.type == "string":
                if self.length is None:
                    raise ValueError("a string needs length (characters)")
            elif self.length is not None:
                raise ValueError("length applies to strings only")
            if self.bit is not None:
                if self.type not in _INTEGER_TYPES:
                    raise ValueError(f"a bit field needs an integer type, not {self.type}")
                size = 16 * REGISTER_WIDTH[self.type]
                if self.bit + self.bits > size:
                    raise ValueError(
                        f"bits {self.bit}…{self.bit + self.bits - 1} do not fit a {self.type}"
                    )
            elif self.bits != 1:
                raise ValueError("bits needs bit (the field's lowest bit)")
            return self

        @property
        def width(self) -> int:
            """Registers (or bits, for coils and inputs) this point occupies."""
            if self.function in BIT_FUNCTIONS:
                return 1
            if self.type == "string":
                assert self.length is not None
                return (self.length + 1) // 2
            return REGISTER_WIDTH[self.type]

        @property
        def is_register(self) -> bool:
            """Holding or input register (as opposed to a coil or discrete input)."""
            return self.function not in BIT_FUNCTIONS

        @property
        def writable(self) -> bool:
            """Coils and holding registers can be written; inputs cannot."""
            return self.function in ("coil", "holding")
