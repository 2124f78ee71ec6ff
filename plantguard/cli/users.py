"""``plantguard users add|list|remove``: who may act on alarms, and with which role.

``plantguard run`` starts with no users (only anonymous, read-only sessions), so a
site's users are created here.  The password is read from ``PLANTGUARD_PASSWORD``
or prompted for, and only its scrypt hash is stored.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ..auth import AuthError, Role, UserRecord, hash_password
from ..host import PluginHost
from .common import SubParsers, add_db_argument, open_store

__all__ = ["add_commands"]


def add_commands(sub: SubParsers) -> None:
    users = sub.add_parser("users", help="users and roles (viewer < operator < engineer < admin)")
    cmds = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = cmds.add_parser("add", help="create a user or change its role and password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.label for r in Role])
    add_db_argument(add)
    add.set_defaults(func=_add)
    lst = cmds.add_parser("list", help="users and their roles")
    add_db_argument(lst)
    lst.set_defaults(func=_list)
    rm = cmds.add_parser("remove", help="delete a user")
    rm.add_argument("name")
    add_db_argument(rm)
    rm.set_defaults(func=_remove)


def _add(args: argparse.Namespace, host: PluginHost) -> int:
    password = os.environ.get("PLANTGUARD_PASSWORD")
    if password is None:
        password = getpass.getpass(f"new password for {args.name}: ")
    if not password:
        print("plantguard: an empty password is not allowed", file=sys.stderr)
        return 2
    try:
        role = Role.parse(args.role)
    except AuthError as exc:
        print(f"plantguard: {exc}", file=sys.stderr)
        return 2
    with open_store(args.db) as store:
        store.users.put_user(UserRecord(args.name, role, hash_password(password)))
    print(f"user {args.name}: {role.label}")
    return 0


def _list(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args.db) as store:
        for user in store.users.list_users():
            print(f"{user.name:<24} {user.role.label}")
    return 0


def _remove(args: argparse.Namespace, host: PluginHost) -> int:
    with open_store(args.db) as store:
        if not store.users.delete_user(args.name):
            print(f"plantguard: no user {args.name!r}", file=sys.stderr)
            return 1
    print(f"user {args.name} removed")
    return 0
