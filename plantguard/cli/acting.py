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
import sys
from typing import TYPE_CHECKING

from ..errors import PermissionDenied

if TYPE_CHECKING:
    from ..auth import Principal, Role
    from ..store import Store

__all__ = [
    "ROLE_LABELS",
    "ActorRefused",
    "acting_principal",
    "add_actor_argument",
    "password_for",
]

#: The labels of :class:`plantguard.auth.Role`, lowest first.  Parsers name roles by
#: label: importing :mod:`plantguard.auth` (which derives a password hash when
#: loaded) is left to the commands that check a password.
#: tests/test_cli_startup.py keeps this equal to the enum.
ROLE_LABELS = ("viewer", "operator", "engineer", "admin")


class ActorRefused(PermissionDenied):
    """No acting user, a wrong password, or a role too low for the command."""


def password_for(
    name: str, *, variable: str = "PLANTGUARD_PASSWORD", what: str = "password"
) -> str:
    """``$variable`` if set, else asked at the terminal; without a terminal (a script, a
    pipe, cron) a refusal that says which variable to set, not an EOFError."""
    password = os.environ.get(variable)
    if password is not None:
        return password
    refusal = ActorRefused(
        f"no {what} for {name}: set {variable} or run the command from a terminal"
    )
    if not _have_terminal():
        raise refusal  # getpass would warn that it echoes, then fail on end of input
    try:
        return getpass.getpass(f"{what} for {name}: ")
    except EOFError:
        raise refusal from None


def _have_terminal() -> bool:
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return sys.stdin is not None and sys.stdin.isatty()


def add_actor_argument(parser: argparse.ArgumentParser, role: Role | str) -> None:
    """``--as NAME``, required by the command for a user of ``role`` (a Role or one of
    :data:`ROLE_LABELS`) or above."""
    label = role if isinstance(role, str) else role.label
    if label not in ROLE_LABELS:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLE_LABELS)})")
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help=f"who does this: a user with the {label} role or above "
        "(password from PLANTGUARD_PASSWORD or a prompt); journalled with the change",
    )
    parser.set_defaults(actor_role=role)


def acting_principal(store: Store, args: argparse.Namespace, what: str) -> Principal:
    """The authenticated user behind ``args.actor``, allowed to do ``what``."""
    from ..auth import Role, authenticate

    given: Role | str = args.actor_role
    role = Role.parse(given) if isinstance(given, str) else given
    name = args.actor
    if not name:
        raise ActorRefused(f"say who you are: {what} needs --as NAME (a {role.label} or above)")
    principal = authenticate(store.users, name, password_for(name))
    if principal is None:
        raise ActorRefused("wrong user name or password")
    if not principal.may(role):
        raise ActorRefused(
            f"{name} ({principal.role.label}) may not {what}: it needs the {role.label} role"
        )
    return principal
