"""Metadata store: SQLAlchemy tables, one repository module per aggregate, alembic migrations."""

from shipyard.store.engine import Store, resolve_url
from shipyard.store.migrate import open_store

__all__ = ["Store", "open_store", "resolve_url"]
