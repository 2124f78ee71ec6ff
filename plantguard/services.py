"""Long-running parts that plugins add beside the engine: servers and simulators.

The OPC UA server and the plant simulator are services; so is anything an
integrator wants to run with the gateway (an MQTT bridge, a web view).  A
service is configured under ``services.<name>`` in the site file, validated by
its :attr:`ServiceType.options_model`, and started before the engine polls.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from .alarms import AlarmManager
from .auth import Principal
from .model import Site
from .store import Store
from .table import ValueTable

__all__ = ["EngineView", "Service", "ServiceType", "ValuesListener"]

#: Called with the table indices whose value, quality or timestamp changed.
ValuesListener = Callable[[npt.NDArray[np.intp]], Awaitable[None]]


class EngineView(Protocol):
    """What a service sees of the running engine."""

    @property
    def site(self) -> Site: ...

    @property
    def table(self) -> ValueTable: ...

    @property
    def alarms(self) -> AlarmManager: ...

    @property
    def store(self) -> Store | None:
        """The gateway's store (device records, history) for services that publish them;
        None only for test doubles that run a service without one."""
        ...

    async def write_point(self, point_id: str, value: float, principal: Principal) -> None:
        """Write a point through the engine's one write path (role check, trace)."""

    def on_values(self, listener: ValuesListener) -> Callable[[], None]:
        """Call ``listener`` after each block of samples is stored in the table;
        return the function that unsubscribes it (services call it when they stop)."""


class Service(abc.ABC):
    @abc.abstractmethod
    async def start(self, engine: EngineView) -> None:
        """Start serving; return once it is ready (ports bound)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop and release everything; must not raise."""


class ServiceType(abc.ABC):
    options_model: ClassVar[type[BaseModel]]
    #: Services with lower order start first and stop last (simulators before drivers poll).
    order: ClassVar[int] = 100

    @abc.abstractmethod
    def create(self, options: BaseModel) -> Service:
        """Make the service from its validated options; no I/O here (``plantguard check``
        calls it too, and never starts the service).

        Raise :class:`~plantguard.build.SettingError` for options the service cannot
        work with (``field`` inside its options): the gateway does not start, and
        ``check`` shows the issue at its line in the site file.  What only starting
        finds (a port in use) is reported by the engine at ``services.<name>``."""
