"""PlantGuard: IoT safety-production monitoring and early-warning gateway.

Plugins import :data:`hookimpl` from here::

    from plantguard import hookimpl

    @hookimpl
    def plantguard_register_drivers(register):
        register("mydevice", MyDriverType())
"""

from .hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"
