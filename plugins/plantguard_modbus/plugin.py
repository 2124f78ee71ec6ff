"""Registers the Modbus TCP driver type as ``driver: modbus``.

Why a separate module: the entry point names this module, so loading the plugin
imports only what registration needs; the driver is created per device later.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from plantguard import hookimpl
from plantguard.drivers import DriverType
from plantguard.hookspecs import RegisterDriver
from plantguard.model import Device

from .driver import ModbusDriver
from .models import ModbusAddress, ModbusConnection

__all__ = ["ModbusDriverType", "plantguard_register_drivers"]


class ModbusDriverType(DriverType):
    """Modbus TCP devices: holding and input registers, 16- and 32-bit types."""

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
        """Reject points past the last register and points that share registers."""
        owner: dict[tuple[str, int], str] = {}
        for point_id, address in addresses.items():
            if not isinstance(address, ModbusAddress):
                continue
            end = address.register + address.width
            if end > 65536:
                raise ValueError(
                    f"point {point_id!r}: {address.type} at register {address.register} "
                    "runs past register 65535"
                )
            for register in range(address.register, end):
                other = owner.setdefault((address.function, register), point_id)
                if other != point_id:
                    raise ValueError(
                        f"points {other!r} and {point_id!r} both use {address.function} "
                        f"register {register}"
                    )


@hookimpl
def plantguard_register_drivers(register: RegisterDriver) -> None:
    register("modbus", ModbusDriverType())
