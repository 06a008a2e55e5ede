"""Metadata store: SQLAlchemy tables, one repository module per aggregate, alembic migrations."""

from shipyard.store.engine import Store, open_store, resolve_url

__all__ = ["Store", "open_store", "resolve_url"]
