"""Metadata store: SQLAlchemy tables, one repository module per aggregate, alembic migrations.

``Store``, ``open_store`` and ``resolve_url`` load on first use, so ``shipyard.store.lite`` (the
pipeline's restore records over sqlite3) imports without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.store.engine import Store, resolve_url
    from shipyard.store.migrate import open_store

__all__ = ["Store", "open_store", "resolve_url"]


def __getattr__(name: str) -> Any:
    if name in ("Store", "resolve_url"):
        from shipyard.store import engine

        return getattr(engine, name)
    if name == "open_store":
        from shipyard.store.migrate import open_store

        return open_store
    raise AttributeError(f"module 'shipyard.store' has no attribute {name!r}")
