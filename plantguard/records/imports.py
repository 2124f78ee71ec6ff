"""Importing a records file into the store: read, check everything, then write in one go.

What the CLI's ``devices import`` and ``maintenance import`` run.  The file is read
with its size limit, decoded (UTF-8 only), parsed and validated whole
(:func:`plantguard.records.exchange.loads`), its references checked against what
the store knows, and only then written, in one transaction.  Whatever the file
holds, the only exceptions are :class:`~plantguard.records.exchange.RecordImportError`
(rejected; nothing written) and :class:`OSError` (the file cannot be read).

References are checked against the store, the one thing an import has: devices
(imported, or written from the site file each time the gateway starts), plans,
and the points and alarms the gateway registered when it last ran the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..store import Store
from ..store.records import UnknownReference
from .exchange import (
    FileFormat,
    ImportIssue,
    RecordImportError,
    guess_format,
    loads,
    read_file,
)
from .models import RecordKind, single_line

__all__ = ["MAX_USER_LENGTH", "import_file", "import_items"]

#: Width of the change history's ``user`` column.
MAX_USER_LENGTH = 128


def import_file(
    store: Store, kind: RecordKind, path: Path, fmt: str | None = None, *, user: str = "import"
) -> list[Any]:
    """Import ``path`` (format from ``fmt`` or the file name) whole, or raise."""
    data = read_file(path)
    return import_items(store, kind, data, guess_format(path, fmt), str(path), user=user)


def import_items(
    store: Store,
    kind: RecordKind,
    data: str | bytes,
    fmt: FileFormat,
    source: str,
    *,
    user: str = "import",
) -> list[Any]:
    """Validate ``data`` (a file's content) against the limits and the store; write it.

    Returns the items written; raises :class:`RecordImportError` naming ``source``,
    the row or item and the field of every problem, with the store unchanged.
    """
    try:
        single_line(user)
        if not user.strip() or len(user) > MAX_USER_LENGTH:
            raise ValueError(f"must be 1 to {MAX_USER_LENGTH} characters")
    except ValueError as exc:
        raise RecordImportError(source, [ImportIssue("--user", "", str(exc))]) from None
    known = store.records.references()
    items = loads(
        kind,
        data,
        fmt,
        source,
        known_devices=None if kind == "devices" else known.devices,
        known_plans=known.plans if kind == "records" else None,
        known_points=known.points if kind == "plans" else None,
        known_alarms=known.alarms if kind == "plans" else None,
    )
    try:
        if kind == "devices":
            store.records.upsert_devices(items, user=user)
        elif kind == "plans":
            store.records.upsert_plans(items)
        else:
            store.records.add_records(items)
    except UnknownReference as exc:  # changed by someone else since the check
        raise RecordImportError(source, [ImportIssue("file", "", str(exc))]) from None
    except (sa.exc.DataError, sa.exc.IntegrityError) as exc:  # a limit the models missed
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise RecordImportError(
            source, [ImportIssue("file", "", f"the store refused it: {reason[:200]}")]
        ) from None
    return items
