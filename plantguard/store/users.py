"""The ``users`` table: the :class:`plantguard.auth.UserDirectory` of a store.

Only names, roles and scrypt hashes are stored; a password never is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .schema import users

if TYPE_CHECKING:
    from ..auth import UserRecord

__all__ = ["UserStore"]


class UserStore:
    """Users of one database; ``Store.users``."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def get_user(self, name: str) -> UserRecord | None:
        # plantguard.auth (hashlib, secrets) only where users are read: every command
        # opens a store, few of them look at users.
        from ..auth import Role, UserRecord

        with self._engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
        return (
            None if row is None else UserRecord(row.name, Role.parse(row.role), row.password_hash)
        )

    def put_user(self, record: UserRecord) -> None:
        """Create the user, or replace its role and password hash."""
        values = {"role": record.role.label, "password_hash": record.password_hash}
        with self._engine.begin() as conn:
            updated = conn.execute(
                users.update().where(users.c.name == record.name).values(**values)
            ).rowcount
            if not updated:
                conn.execute(users.insert().values(name=record.name, created=time.time(), **values))

    def delete_user(self, name: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(users.delete().where(users.c.name == name)).rowcount)

    def list_users(self) -> list[UserRecord]:
        from ..auth import Role, UserRecord

        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.name)).all()
        return [UserRecord(r.name, Role.parse(r.role), r.password_hash) for r in rows]
