"""``plantguard users add|list|remove``: who may act on alarms, and with which role.

``plantguard run`` starts with no users (only anonymous, read-only sessions), so a
site's users are created here.  The new password is read from
``PLANTGUARD_NEW_PASSWORD`` or prompted for twice, and only its scrypt hash is
stored.  Adding and removing users takes an administrator (``--as NAME``, see
:mod:`.acting`), except the first administrator of a store that has none; each
change is in the store's audit with who made it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from .acting import ROLE_LABELS, acting_principal, add_actor_argument, password_for
from .common import SubParsers, add_db_argument, open_store

if TYPE_CHECKING:
    from ..host import PluginHost
    from ..store import Store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    users = sub.add_parser("users", help="users and roles (viewer < operator < engineer < admin)")
    cmds = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = cmds.add_parser("add", help="create a user or change its role and password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLE_LABELS)
    add_db_argument(add, site=True)
    add_actor_argument(add, "admin")
    add.set_defaults(func=_add)
    lst = cmds.add_parser("list", help="users and their roles")
    add_db_argument(lst, site=True)
    lst.set_defaults(func=_list)
    rm = cmds.add_parser("remove", help="delete a user")
    rm.add_argument("name")
    add_db_argument(rm, site=True)
    add_actor_argument(rm, "admin")
    rm.set_defaults(func=_remove)


def _new_password(name: str) -> str | None:
    if "PLANTGUARD_NEW_PASSWORD" in os.environ:
        return os.environ["PLANTGUARD_NEW_PASSWORD"]
    password = password_for(name, variable="PLANTGUARD_NEW_PASSWORD", what="new password")
    if getpass.getpass(f"new password for {name} (again): ") != password:
        print("plantguard: the two passwords differ", file=sys.stderr)
        return None
    return password


def _actor(store: Store, args: argparse.Namespace, what: str) -> str:
    """The acting administrator's name; the first administrator needs none.

    A refusal is an :class:`.acting.ActorRefused`, printed by ``cli.main``."""
    from ..auth import Role

    first_admin = (
        args.users_command == "add"
        and args.role == Role.ADMIN.label
        and not any(u.role >= Role.ADMIN for u in store.users.list_users())
    )
    if first_admin and not args.actor:
        return "(first administrator)"
    return acting_principal(store, args, what).name


def _add(args: argparse.Namespace, host: PluginHost) -> int:
    from ..auth import AuthError, Role, UserRecord, hash_password
    from ..store.audit import AuditLog

    try:
        role = Role.parse(args.role)
    except AuthError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2
    with open_store(args) as store:
        actor = _actor(store, args, "add users")
        password = _new_password(args.name)
        if password is None:
            return 2
        if not password:
            print("plantguard: an empty password is not allowed", file=sys.stderr)
            return 2
        store.users.put_user(UserRecord(args.name, role, hash_password(password)))
        AuditLog(store.engine).record(actor, "users.add", args.name, f"role {role.label}")
    print(f"user {args.name}: {role.label}")
    return 0


def _list(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args) as store:
        for user in store.users.list_users():
            print(f"{user.name:<24} {user.role.label}")
    return 0


def _remove(args: argparse.Namespace, host: PluginHost) -> int:
    from ..store.audit import AuditLog

    with open_store(args) as store:
        actor = _actor(store, args, "remove users")
        if not store.users.delete_user(args.name):
            print(f"plantguard: no user {args.name!r}", file=sys.stderr)
            return 1
        AuditLog(store.engine).record(actor, "users.remove", args.name)
    print(f"user {args.name} removed")
    return 0
