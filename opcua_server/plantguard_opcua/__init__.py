"""plantguard_opcua — the gateway's OPC UA server, as a PlantGuard service plugin.

Configured under ``services.opcua`` in the site file (see :class:`OpcUaOptions`);
the address space and NodeId scheme are described in :mod:`.nodeids` and
``docs/opcua.md``.
"""

from .nodeids import NAMESPACE_URI
from .options import OpcUaOptions
from .server import OpcUaService

__all__ = ["NAMESPACE_URI", "OpcUaOptions", "OpcUaService"]
