"""Registers the ``opcua`` service type with PlantGuard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from plantguard.plugin import RegisterService, Service, ServiceType, SettingError, hookimpl

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
        if any(mode != "none" for mode in options.security):
            _check_pki_dir(options.pki_dir)
        return OpcUaService(options)


def _check_pki_dir(pki_dir: str) -> None:
    """The server keeps its certificate under ``pki_dir`` (created on first start):
    refuse, at build time, a directory that cannot be one or cannot be created.
    Looked at, not created: ``plantguard check`` calls this too."""
    path = Path(pki_dir).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise SettingError(f"{pki_dir} cannot be a directory{where}", field=("pki_dir",))
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise SettingError(
            f"{pki_dir} cannot be created: {existing} is not writable", field=("pki_dir",)
        )


@hookimpl
def plantguard_register_services(register: RegisterService) -> None:
    register("opcua", OpcUaServiceType())
