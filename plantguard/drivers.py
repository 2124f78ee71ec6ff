"""What a device-driver plugin provides: a driver type and, per device, a driver.

A :class:`DriverType` is registered once (``plantguard_register_drivers``); it
validates a device's ``connection`` settings and each point's ``address`` with its
own pydantic models, so a mistyped register is reported at start-up with the
file and line, not at the first poll.  The engine then asks it for one
:class:`DeviceDriver` per configured device.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from .model import Device, Point

__all__ = ["DeviceDriver", "DriverError", "DriverType", "ReadResult"]


class DriverError(Exception):
    """A device could not be reached or answered with an error; the engine marks its points Bad."""


@dataclass(slots=True)
class ReadResult:
    """One block read: a value and a quality byte per requested point, in request order."""

    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    source_time: float


class DeviceDriver(abc.ABC):
    """Talks to one field device.  Created by :meth:`DriverType.create`.

    The engine calls :meth:`read` from one task per poll group; a driver that
    cannot serve concurrent reads serialises them itself.
    """

    device: Device

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while the transport to the device is up."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the transport.  Raise :class:`DriverError` if the device is unreachable;
        the engine retries with backoff."""

    @abc.abstractmethod
    async def read(self, points: Sequence[Point]) -> ReadResult:
        """Read ``points`` (all of this device, one poll group) as few requests as possible.

        Points the device refused get a Bad quality in the result; a lost connection
        raises :class:`DriverError`.
        """

    async def write(self, point: Point, value: float) -> None:
        """Write one point.  Drivers of read-only devices keep this default."""
        raise DriverError(f"driver of device {self.device.id!r} does not support writes")

    async def identify(self) -> Mapping[str, str]:
        """Identity the device reports about itself (vendor, product, revision), if any."""
        return {}

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the transport; must not raise."""


class DriverType(abc.ABC):
    """A kind of device (a protocol) that devices in the site file name with ``driver:``."""

    #: Schema of the device's ``connection`` mapping.
    connection_model: ClassVar[type[BaseModel]]
    #: Schema of each point's ``address`` mapping.
    address_model: ClassVar[type[BaseModel]]

    @abc.abstractmethod
    def create(
        self,
        device: Device,
        connection: BaseModel,
        addresses: Mapping[str, BaseModel],
    ) -> DeviceDriver:
        """Make the driver of ``device`` from its validated connection and point addresses
        (keyed by point id).  Must not do I/O: the engine calls :meth:`DeviceDriver.connect`."""

    def validate_device(self, connection: BaseModel, addresses: Mapping[str, BaseModel]) -> None:
        """Cross-field checks beyond the models (overlapping registers …); raise ValueError."""
        return None
