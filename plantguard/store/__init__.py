"""Persistence: SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core."""

from .store import Store, Trend, database_url

__all__ = ["Store", "Trend", "database_url"]
