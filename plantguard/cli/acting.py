"""Who is acting: offline commands that change users, records or alarms name a user.

The gateway's OPC UA server checks every operator action against a user and a
role; the CLI works on the store directly, so without this anyone with a shell
on the machine could add an administrator or a maintenance record under any
name.  Commands that change things take ``--as NAME``: the user must exist in
the store with the role the command needs, and proves it with a password read
from ``PLANTGUARD_PASSWORD`` (for scripts) or a prompt.  The acting user is what
the change is journalled with.

The one exception is the very first administrator of a store that has none:
somebody has to create it, and only someone who can write the store can.
"""

from __future__ import annotations

import argparse
import getpass
import os

from ..auth import Principal, Role, authenticate
from ..errors import PermissionDenied
from ..store import Store

__all__ = ["ActorRefused", "acting_principal", "add_actor_argument"]


class ActorRefused(PermissionDenied):
    """No acting user, a wrong password, or a role too low for the command."""


def add_actor_argument(parser: argparse.ArgumentParser, role: Role) -> None:
    """``--as NAME``, required by the command for a user of ``role`` or above."""
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help=f"who does this: a user with the {role.label} role or above "
        "(password from PLANTGUARD_PASSWORD or a prompt); journalled with the change",
    )
    parser.set_defaults(actor_role=role)


def acting_principal(store: Store, args: argparse.Namespace, what: str) -> Principal:
    """The authenticated user behind ``args.actor``, allowed to do ``what``."""
    role: Role = args.actor_role
    name = args.actor
    if not name:
        raise ActorRefused(f"say who you are: {what} needs --as NAME (a {role.label} or above)")
    password = os.environ.get("PLANTGUARD_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {name}: ")
    principal = authenticate(store.users, name, password)
    if principal is None:
        raise ActorRefused("wrong user name or password")
    if not principal.may(role):
        raise ActorRefused(
            f"{name} ({principal.role.label}) may not {what}: it needs the {role.label} role"
        )
    return principal
