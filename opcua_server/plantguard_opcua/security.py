"""Transport security and user tokens of the endpoint.

Offered so far: security policy ``None``, with anonymous sessions (browse, read,
subscribe) and user name / password sessions checked against PlantGuard's users
(:mod:`plantguard.auth`; roles decide which alarm methods a session may call).
Kept apart from the service so that adding signed and encrypted policies and the
server certificate changes this module and the options, not how the server starts.
Over policy ``None`` a password travels in clear text: bind to 127.0.0.1 or a
trusted network until encrypted policies are offered.
"""

from __future__ import annotations

from asyncua import ua
from asyncua.server.server import Server

__all__ = ["configure_security", "security_policies"]


def security_policies() -> list[ua.SecurityPolicyType]:
    """The ``ua.SecurityPolicyType`` values the endpoint offers."""
    return [ua.SecurityPolicyType.NoSecurity]


def configure_security(server: Server, *, user_names: bool = False) -> None:
    """Apply policies and identity tokens to an ``asyncua.Server`` before it starts.

    asyncua offers every policy by default (and warns when it has no certificate
    for them); naming the list explicitly is what keeps the endpoint honest.
    ``user_names`` adds the user name token (when the gateway has a user directory).
    """
    server.set_security_policy(security_policies())
    tokens: list[type] = [ua.AnonymousIdentityToken]
    if user_names:
        tokens.append(ua.UserNameIdentityToken)
    server.set_identity_tokens(tokens)
