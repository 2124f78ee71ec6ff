"""Options of the ``opcua`` service, as written under ``services.opcua`` in the site file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plantguard.throttle import ThrottleSettings

from .limits import ResourceLimits

__all__ = ["SECURE_DEFAULT", "LoginThrottleOptions", "OpcUaOptions", "SecurityMode"]

SecurityMode = Literal["none", "sign", "sign_and_encrypt"]
SECURE_DEFAULT: tuple[SecurityMode, ...] = ("sign_and_encrypt",)


class LoginThrottleOptions(BaseModel):
    """When wrong passwords are slowed down and locked out (:mod:`plantguard.throttle`),
    counted per user name and per client address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delay_after: int = Field(
        5, ge=1, description="failures of a user or address before each attempt is delayed"
    )
    lock_after: int = Field(20, ge=1, description="failures of a user or address that lock it out")
    lock_seconds: float = Field(
        900.0, gt=0, description="how long a lock refuses every attempt, unchecked"
    )
    window: float = Field(
        900.0, gt=0, description="seconds without a failure after which failures are forgotten"
    )

    def settings(self) -> ThrottleSettings:
        """The throttle's settings (delays: 0.5 s doubling up to 4 s)."""
        return ThrottleSettings(
            delay_after=self.delay_after,
            lock_after=self.lock_after,
            lock_seconds=self.lock_seconds,
            window=self.window,
        )


class OpcUaOptions(BaseModel):
    """Where the server listens, how it names itself, and how it is secured
    (see :mod:`.security`).

    ``port: 0`` picks a free port when the service starts (for tests and for
    running several gateways on one machine); the chosen one is in the service's
    ``endpoint``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="address to bind and advertise")
    port: int = Field(4840, ge=0, le=65535)
    path: str = Field("/plantguard", pattern=r"^/[^\s]*$", description="endpoint path")
    application_name: str = Field("PlantGuard", min_length=1)
    security: list[SecurityMode] = Field(
        default_factory=lambda: list(SECURE_DEFAULT),
        description="message security modes offered (secure by default)",
    )
    anonymous: bool = Field(False, description="accept anonymous sessions (browse and read)")
    pki_dir: str = Field("pki", description="server certificate, trusted/ and rejected/ clients")
    trust_all_clients: bool = Field(
        False, description="accept any client certificate (demo only): no trust list"
    )
    login_throttle: LoginThrottleOptions = Field(
        default_factory=LoginThrottleOptions,
        description="delays and locks after failed logins, per user name and client address",
    )
    limits: ResourceLimits = Field(
        default_factory=ResourceLimits, description="what one client may hold (sessions, queues)"
    )
    announce: bool = Field(
        False, description="announce the endpoint over mDNS/DNS-SD as _opcua-tcp._tcp (Part 12)"
    )

    @field_validator("security")
    @classmethod
    def _some_security(cls, modes: list[str]) -> list[str]:
        if not modes:
            raise ValueError("offer at least one security mode")
        if len(set(modes)) != len(modes):
            raise ValueError("a security mode is listed twice")
        return modes

    def endpoint(self, port: int | None = None) -> str:
        """``opc.tcp://{host}:{port}{path}``, with ``port`` overriding the configured one."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"opc.tcp://{host}:{self.port if port is None else port}{self.path}"
