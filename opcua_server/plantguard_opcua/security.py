"""Transport security and user tokens of the endpoint.

Only ``None`` security with anonymous users is offered so far.  Kept apart from
the service so that adding policies (Basic256Sha256, Aes256Sha256RsaPss), the
server certificate and user authentication changes this module and the options,
not how the server is started.
"""

from __future__ import annotations

from asyncua import ua
from asyncua.server.server import Server

__all__ = ["configure_security", "security_policies"]


def security_policies() -> list[ua.SecurityPolicyType]:
    """The ``ua.SecurityPolicyType`` values the endpoint offers."""
    return [ua.SecurityPolicyType.NoSecurity]


def configure_security(server: Server) -> None:
    """Apply policies and identity tokens to an ``asyncua.Server`` before it starts.

    asyncua offers every policy by default (and warns when it has no certificate
    for them); naming the list explicitly is what keeps the endpoint honest.
    """
    server.set_security_policy(security_policies())
    server.set_identity_tokens([ua.AnonymousIdentityToken])
