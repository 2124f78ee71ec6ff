"""Registers the Modbus driver type as ``driver: modbus``.

Why a separate module: the entry point names this module, so loading the plugin
imports only what registration needs; the driver is created per device later.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from plantguard.plugin import Device, DriverType, RegisterDriver, hookimpl

from .driver import ModbusDriver
from .models import ModbusAddress, ModbusConnection

__all__ = ["ModbusDriverType", "plantguard_register_drivers"]


class ModbusDriverType(DriverType):
    """Modbus devices over TCP, RTU over TCP, TLS or RTU serial: coils, discrete
    inputs, holding and input registers, 16- to 64-bit types, strings, bit fields."""

    connection_model = ModbusConnection
    address_model = ModbusAddress

    def create(
        self,
        device: Device,
        connection: BaseModel,
        addresses: Mapping[str, BaseModel],
    ) -> ModbusDriver:
        if not isinstance(connection, ModbusConnection):
            raise TypeError(f"expected ModbusConnection, got {type(connection).__name__}")
        typed: dict[str, ModbusAddress] = {}
        for point_id, address in addresses.items():
            if not isinstance(address, ModbusAddress):
                raise TypeError(f"address of {point_id!r} is not a ModbusAddress")
            typed[point_id] = address
        return ModbusDriver(device, connection, typed)

    def validate_device(self, connection: BaseModel, addresses: Mapping[str, BaseModel]) -> None:
        """Reject points past the last address and points that share an address.

        Bit fields may share their container register(s) with other bit fields,
        as long as their bits do not overlap; nothing else may share an address.
        """
        unit = connection.unit if isinstance(connection, ModbusConnection) else 0
        owner: dict[tuple[int, str, int], str] = {}  # address -> point id, or "" for bit fields
        bit_owner: dict[tuple[int, str, int, int], str] = {}
        for point_id, address in addresses.items():
            if not isinstance(address, ModbusAddress):
                continue
            end = address.register + address.width
            if end > 65536:
                raise ValueError(
                    f"point {point_id!r}: a {address.type} at {_object(address)} "
                    f"{address.register} needs {address.width} registers and runs past "
                    "register 65535"
                )
            point_unit = unit if address.unit is None else address.unit
            if address.bit is not None:
                for bit in range(address.bit, address.bit + address.bits):
                    key = (point_unit, address.function, address.register, bit)
                    other = bit_owner.setdefault(key, point_id)
                    if other != point_id:
                        raise ValueError(
                            f"points {other!r} and {point_id!r} both use bit {bit} of "
                            f"{_object(address)} {address.register}"
                        )
            claim = "" if address.bit is not None else point_id
            for register in range(address.register, end):
                other = owner.setdefault((point_unit, address.function, register), claim)
                if other != claim:
                    first, second = (other or "a bit field"), (claim or "a bit field")
                    raise ValueError(
                        f"points {first!r} and {second!r} both use {_object(address)} "
                        f"{register} (unit {point_unit})"
                    )


def _object(address: ModbusAddress) -> str:
    """``holding register``, ``coil`` … as the Modbus specification names them."""
    if address.is_register:
        return f"{address.function} register"
    return address.function.replace("_", " ")


@hookimpl
def plantguard_register_drivers(register: RegisterDriver) -> None:
    register("modbus", ModbusDriverType())
