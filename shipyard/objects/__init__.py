"""Content-addressed object store over pluggable byte backends (local folder, fsspec URLs)."""

from shipyard.objects.backends import Backend, FsspecBackend, LocalBackend, open_backend
from shipyard.objects.store import ObjectStore, key_of

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "ObjectStore", "key_of", "open_backend"]
