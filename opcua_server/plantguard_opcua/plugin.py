"""Registers the ``opcua`` service type with PlantGuard."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from plantguard.plugin import RegisterService, Service, ServiceType, hookimpl

from .options import OpcUaOptions
from .server import OpcUaService

__all__ = ["OpcUaServiceType", "plantguard_register_services"]


class OpcUaServiceType(ServiceType):
    """``services: {opcua: {...}}`` in the site file."""

    options_model: ClassVar[type[BaseModel]] = OpcUaOptions
    #: After simulators (which must be listening before drivers poll), before other services.
    order: ClassVar[int] = 50

    def create(self, options: BaseModel) -> Service:
        if not isinstance(options, OpcUaOptions):
            options = OpcUaOptions.model_validate(options.model_dump())
        return OpcUaService(options)


@hookimpl
def plantguard_register_services(register: RegisterService) -> None:
    register("opcua", OpcUaServiceType())
