"""Users, roles and passwords: who may do what to an alarm.

Roles are ordered, each including the rights of the ones below it::

    viewer < operator < engineer < admin

* viewer — browse and read (what an anonymous session gets, too);
* operator — acknowledge, confirm, comment on and reset alarms;
* engineer — shelve and unshelve, remove from and return to service;
* admin — manage users.

Passwords are stored as salted ``hashlib.scrypt`` hashes in a self-describing
string (``scrypt$n$r$p$salt$hash``), so the cost parameters can be raised later
without invalidating stored hashes.  scrypt is in the standard library: no new
dependency for a first cut of authentication.

Exceptions::

    AuthError
    └── UnknownRole        a role name that is not one of the four
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ANONYMOUS",
    "DEMO_USERS",
    "SYSTEM",
    "AuthError",
    "Principal",
    "Role",
    "UnknownRole",
    "UserDirectory",
    "UserRecord",
    "authenticate",
    "ensure_users",
    "hash_password",
    "verify_password",
]

# scrypt cost: ~16 MiB and a few tens of milliseconds per check on the development machine.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


class AuthError(Exception):
    """Base of authentication and user-management errors."""


class UnknownRole(AuthError):
    """A role name outside viewer, operator, engineer, admin."""


class Role(enum.IntEnum):
    """Ordered roles; comparing them answers "may this user do that"."""

    VIEWER = 10
    OPERATOR = 20
    ENGINEER = 30
    ADMIN = 40

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(r.name.lower() for r in cls)
            raise UnknownRole(f"unknown role {name!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a name for the journal and a role for the checks.

    ``authenticated`` is false for anonymous sessions: they keep the viewer role
    but the journal shows that nobody identified themselves.
    """

    name: str
    role: Role
    authenticated: bool = True

    def may(self, required: Role) -> bool:
        return self.authenticated and self.role >= required


#: An anonymous OPC UA session: browse and read only.
ANONYMOUS = Principal("", Role.VIEWER, authenticated=False)
#: The gateway itself (shelving expiry, suppression by design, restored state).
SYSTEM = Principal("system", Role.ADMIN)


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: Role
    password_hash: str


class UserDirectory(Protocol):
    """Where users are kept (the store implements it)."""

    def get_user(self, name: str) -> UserRecord | None: ...

    def put_user(self, record: UserRecord) -> None: ...

    def list_users(self) -> list[UserRecord]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password`` in the ``scrypt$n$r$p$salt$hash`` format."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES, maxmem=64 << 20
    )
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        key = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=128 << 20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked when a user does not exist, so that a wrong name costs as long as a wrong
    password; made on first use, not at import (scrypt costs every command ~0.1 s)."""
    return hash_password("", salt=b"\0" * _SALT_BYTES)


def authenticate(directory: UserDirectory, name: str, password: str) -> Principal | None:
    """The principal for a correct name and password, else None (timing does not reveal which)."""
    record = directory.get_user(name)
    if record is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, record.password_hash):
        return None
    return Principal(record.name, record.role)


#: The demo's users: each one's password is its name.  ``plantguard run`` creates none.
DEMO_USERS: tuple[tuple[str, Role], ...] = (
    ("viewer", Role.VIEWER),
    ("operator", Role.OPERATOR),
    ("engineer", Role.ENGINEER),
)


def ensure_users(directory: UserDirectory, users: Sequence[tuple[str, Role]]) -> list[str]:
    """Create the users that do not exist yet, with their name as password; return who was added."""
    added = []
    for name, role in users:
        if directory.get_user(name) is None:
            directory.put_user(UserRecord(name, role, hash_password(name)))
            added.append(name)
    return added
