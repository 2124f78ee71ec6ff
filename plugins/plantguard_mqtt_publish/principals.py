"""Who an MQTT command acts as: the broker user, with the role the site file maps it to.

MQTT does not tell a subscriber who published a message, so the command names its
broker user (a Sparkplug DCMD carries the ``Command/User`` metric; Home Assistant's
commands act as the configured ``command_user``) and the broker's ACL is what makes
the name trustworthy (docs/sparkplug.md shows the ACL).  The role comes from the
site file's ``roles`` mapping only; a user it does not map acts as an anonymous
viewer, which the alarm manager refuses every action.
"""

from __future__ import annotations

from collections.abc import Mapping

from plantguard.plugin import Principal, Role

__all__ = ["principal_for"]


def principal_for(user: str, roles: Mapping[str, str]) -> Principal:
    role = roles.get(user)
    if not user or role is None:
        return Principal(user, Role.VIEWER, authenticated=False)
    return Principal(user, Role.parse(role))
