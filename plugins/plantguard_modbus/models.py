"""Schemas of a Modbus device's ``connection`` and each point's ``address``.

Why separate models: the site file is validated against them at start-up, so a
mistyped register or an unknown data type is reported with file and line
before anything polls.
"""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["REGISTER_WIDTH", "ModbusAddress", "ModbusConnection", "RegisterType"]

RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32"]

#: Registers (16-bit words) each data type occupies.
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
}


class ModbusConnection(BaseModel):
    """``connection:`` of a device with ``driver: modbus`` (Modbus TCP)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1, description="device or gateway address")
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave/device) id")
    timeout: float = Field(1.0, gt=0, le=60, description="seconds to wait for a response")
    retries: int = Field(1, ge=0, le=10, description="retries of a request that timed out")
    max_registers_per_request: int = Field(
        125, ge=1, le=125, description="largest block read (the protocol allows 125)"
    )
    max_gap: int = Field(
        8, ge=0, description="unused registers a block read may bridge between points"
    )


# ``register`` is the natural key in the site file; it only shadows the metaclass's
# ABC ``register`` on the class, never on instances, so pydantic's warning is noise.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class ModbusAddress(BaseModel):
        """``address:`` of a point of a Modbus device."""

        model_config = ConfigDict(frozen=True, extra="forbid")

        register: int = Field(ge=0, le=65535, description="first register, 0-based")
        function: Literal["holding", "input"] = "holding"
        type: RegisterType = "float32"
        word_order: Literal["big", "little"] = Field(
            "big", description="'big': high word first in 32-bit types"
        )

        @property
        def width(self) -> int:
            """Registers this point occupies."""
            return REGISTER_WIDTH[self.type]
