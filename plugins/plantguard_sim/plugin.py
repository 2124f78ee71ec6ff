"""Registers the plant simulator as the ``sim`` service, and provides the demo.

Why a service: the demo and the plugin test kit start the simulated plant with
the gateway, from the same site file, before any driver polls it (``order``
10 makes it start first and stop last).  ``plantguard demo`` runs the site this
plugin gives through ``plantguard_demo_site`` (:mod:`.demo`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plantguard.plugin import (
    DemoOptions,
    DemoSite,
    EngineView,
    RegisterService,
    Service,
    ServiceType,
    hookimpl,
)

from . import demo
from .plant import PlantModel
from .server import SimServer

__all__ = [
    "SimOptions",
    "SimService",
    "SimServiceType",
    "plantguard_demo_site",
    "plantguard_register_services",
]


class SimOptions(BaseModel):
    """``services.sim`` in the site file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="address the Modbus server binds")
    port: int = Field(5020, ge=0, le=65535, description="TCP port; 0 picks a free one")
    scenario: Literal["cycle", "none"] = Field(
        "cycle", description="'cycle' repeats alarm events every 90 s; 'none' stays normal"
    )
    seed: int = Field(1, description="seed of the simulated noise")


class SimService(Service):
    """The simulated plant's Modbus TCP server, run as a gateway service."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.server = SimServer(
            PlantModel(seed=options.seed, scenario=options.scenario),
            host=options.host,
            port=options.port,
        )

    @property
    def port(self) -> int:
        """The bound port once started."""
        return self.server.port

    async def start(self, engine: EngineView) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()


class SimServiceType(ServiceType):
    options_model = SimOptions
    order = 10

    def create(self, options: BaseModel) -> SimService:
        if not isinstance(options, SimOptions):
            raise TypeError(f"expected SimOptions, got {type(options).__name__}")
        return SimService(options)


@hookimpl
def plantguard_register_services(register: RegisterService) -> None:
    register("sim", SimServiceType())


@hookimpl
def plantguard_demo_site(options: DemoOptions) -> DemoSite:
    return demo.demo_site(options)
