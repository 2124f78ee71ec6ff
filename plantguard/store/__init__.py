"""Persistence: SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core."""

from . import audit as _audit  # noqa: F401 - registers the tables
from . import records_schema as _records_schema  # noqa: F401 - registers the tables
from . import risk_schema as _risk_schema  # noqa: F401 - registers the tables
from .store import (
    NotAPlantGuardStore,
    Store,
    StoreBehind,
    StoreMissing,
    StoreUnavailable,
    StoreUnreachable,
    Trend,
    database_url,
    shown_target,
)

__all__ = [
    "NotAPlantGuardStore",
    "Store",
    "StoreBehind",
    "StoreMissing",
    "StoreUnavailable",
    "StoreUnreachable",
    "Trend",
    "database_url",
    "shown_target",
]
