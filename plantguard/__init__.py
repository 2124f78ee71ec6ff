"""PlantGuard: IoT safety-production monitoring and early-warning gateway.

Plugins import what they use from :mod:`plantguard.plugin`, the plugin API::

    from plantguard.plugin import RegisterDriver, hookimpl

    @hookimpl
    def plantguard_register_drivers(register: RegisterDriver) -> None:
        register("mydevice", MyDriverType())

:data:`hookimpl` is also exported here, from the package root.
"""

from .hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"
