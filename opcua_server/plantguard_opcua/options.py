"""Options of the ``opcua`` service, as written under ``services.opcua`` in the site file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OpcUaOptions"]


class OpcUaOptions(BaseModel):
    """Where the server listens and how it names itself.

    ``port: 0`` picks a free port when the service starts (for tests and for
    running several gateways on one machine); the chosen one is in the service's
    ``endpoint``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="address to bind and advertise")
    port: int = Field(4840, ge=0, le=65535)
    path: str = Field("/plantguard", pattern=r"^/[^\s]*$", description="endpoint path")
    application_name: str = Field("PlantGuard", min_length=1)

    def endpoint(self, port: int | None = None) -> str:
        """``opc.tcp://{host}:{port}{path}``, with ``port`` overriding the configured one."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"opc.tcp://{host}:{self.port if port is None else port}{self.path}"
