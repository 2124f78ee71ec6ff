"""The gateway lease: at most one running gateway per store, and offline tools know it.

A running gateway holds its alarm state in memory and journals every change;
a second writer behind its back (another gateway, or ``plantguard alarms ack``
on the same database) would be overwritten or would contradict it.  So the
gateway holds a lease for as long as it runs, and offline actions refuse to
change alarm state while someone holds it.

The lease dies with the process, whatever kills it, so a crash never leaves a
stale lock behind:

* SQLite — ``flock`` on ``<database>.gateway`` (the file also says who holds it);
* PostgreSQL — a session advisory lock keyed on the database and schema, held by
  a connection kept open for the purpose.

Exceptions::

    LeaseHeld    another process holds the lease (.holder says who, when known)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from ..errors import PlantGuardError

__all__ = ["GatewayLease", "LeaseHeld"]


class LeaseHeld(PlantGuardError):
    """Another process holds the gateway lease (exit status 1)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"a gateway is running on this store ({holder})")
        self.holder = holder


class GatewayLease:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._file: IO[str] | None = None
        self._conn: sa.Connection | None = None

    @property
    def _lock_path(self) -> Path | None:
        database = self._engine.url.database
        if self._engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database + ".gateway")

    def _pg_key(self, conn: sa.Connection) -> int:
        where = conn.execute(
            sa.text("SELECT current_database() || '.' || current_schema()")
        ).scalar_one()
        return zlib.crc32(f"plantguard.gateway:{where}".encode()) - 2**31

    def acquire(self, holder: str) -> None:
        """Take the lease for this process; raise :class:`LeaseHeld` if another has it."""
        if self._file is not None or self._conn is not None:
            return
        path = self._lock_path
        if path is not None:
            handle = path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                held_by = handle.read().strip() or "unknown process"
                handle.close()
                raise LeaseHeld(held_by) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}: {holder}\n")
            handle.flush()
            self._file = handle
        elif self._engine.dialect.name == "postgresql":
            conn = self._engine.connect()
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._pg_key(conn)}
            )
            if not got.scalar_one():
                conn.close()
                raise LeaseHeld("another gateway process")
            conn.commit()
            self._conn = conn

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.close()  # closing the session releases its advisory locks
            self._conn = None

    def check_free(self) -> None:
        """Raise :class:`LeaseHeld` if a gateway holds the lease now (for offline tools)."""
        if self._file is not None or self._conn is not None:
            return  # this process holds it
        self.acquire("checking")
        self.release()
