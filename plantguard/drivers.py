"""What a device-driver plugin provides: a driver type and, per device, a driver.

A :class:`DriverType` is registered once (``plantguard_register_drivers``); it
validates a device's ``connection`` settings and each point's ``address`` with its
own pydantic models, so a mistyped register is reported at start-up with the
file and line, not at the first poll.  The engine then asks it for one
:class:`DeviceDriver` per configured device.

``plantguard probe`` polls each device once and shows what came back.  A driver
that can also say what was on the wire — the raw registers or bits of each
point, and each request with the device's answer (exception codes) — offers
the optional :meth:`DeviceDriver.probe` returning a :class:`ProbeReading`; the
others are probed through :meth:`DeviceDriver.read` (values and quality only).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from .model import Device, Point

__all__ = [
    "DeviceDriver",
    "DriverError",
    "DriverType",
    "ProbeReading",
    "RawPoint",
    "RawRequest",
    "ReadResult",
]


class DriverError(Exception):
    """A device could not be reached or answered with an error; the engine marks its points Bad."""


@dataclass(slots=True)
class ReadResult:
    """One block read: a value and a quality byte per requested point, in request order."""

    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    #: One time for the whole block (a poll), or one per point (a driver whose
    #: messages carry their own times, such as MQTT).
    source_time: float | npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RawPoint:
    """What the device sent for one point, before scaling (:meth:`DeviceDriver.probe`).

    ``type`` names the encoding; ``plantguard probe`` knows ``int16`` … ``uint64``
    (a value at the type's extreme — all bits set, or a signed minimum or maximum —
    is suspicious), ``float32``/``float64`` (NaN and ±Inf are), and ``bool``,
    ``bits`` (a bit field) and ``string`` (never judged as numbers); other names
    are shown as they are.  ``words`` are 16-bit registers
    and ``bits`` single bits, as received; both empty when the point was not read.
    """

    address: str  # where the point is, as the protocol names it ("holding 40", "coil 3")
    type: str
    words: tuple[int, ...] = ()
    bits: tuple[int, ...] = ()
    raw: float = math.nan  # the decoded number before scale and offset (NaN: none)
    text: str | None = None  # the decoded text of a string point


@dataclass(frozen=True, slots=True)
class RawRequest:
    """One request of a probe and the device's answer to it."""

    request: str  # what was asked ("unit 1 holding registers 0–9 (function 3, start 0, count 10)")
    points: tuple[str, ...]  # point ids it read
    answer: str = "ok"  # "ok", or what came back instead ("exception 2 (illegal_address)")
    exception: int | None = None  # the exception code, when the device answered with one


@dataclass(frozen=True, slots=True)
class ProbeReading:
    """One read as :meth:`DeviceDriver.read` returns it, plus what was on the wire."""

    result: ReadResult
    points: Mapping[str, RawPoint] = field(default_factory=dict)  # by point id
    requests: Sequence[RawRequest] = ()  # in the order they were sent


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

    async def probe(self, points: Sequence[Point]) -> ProbeReading | None:
        """Read ``points`` once, like :meth:`read`, and say what was on the wire.

        Optional (``plantguard probe`` and nothing else calls it); the default
        returns None and the probe falls back to :meth:`read`.  A driver that
        implements it returns the :class:`ReadResult` with the raw data of each
        point (:class:`RawPoint`) and each request it sent with the answer
        (:class:`RawRequest`), raises :class:`DriverError` where :meth:`read`
        would, and never writes to the device.
        """
        return None

    def counters(self) -> Mapping[str, int]:
        """Counts since the driver started (messages, malformed payloads …), by name.

        Optional; the default has none.  Called on the event loop about once a
        minute and at stop: return a snapshot, cheaply, without I/O.
        """
        return {}

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
        (keyed by point id).  Must not do I/O: the engine calls :meth:`DeviceDriver.connect`
        (``plantguard check`` calls this too, and never connects).

        Raise :class:`~plantguard.build.SettingError` for settings the driver cannot
        work with, naming the point and field: the gateway does not start, and
        ``check`` shows the issue at its line in the site file."""

    def validate_device(self, connection: BaseModel, addresses: Mapping[str, BaseModel]) -> None:
        """Cross-field checks beyond the models (overlapping registers …); raise ValueError."""
        return None
