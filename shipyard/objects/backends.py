"""Object backends: they move bytes and list keys, nothing else (hashing lives in store.py).

``LocalBackend`` writes atomically (temp file, fsync, rename). ``FsspecBackend`` covers any fsspec
URL (s3://, gcs://, az://, memory://); object stores make single PUTs atomic already.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from shipyard.errors import InputError, NotFound, StorageFull, StoreError


class Backend(Protocol):
    """Bytes under keys like ``xxh128/ab/cdef...``."""

    url: str

    def write(self, key: str, data: bytes) -> None: ...
    def write_file(self, key: str, source: Path) -> None: ...
    def read(self, key: str) -> bytes: ...
    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...


def _translate_os_error(exc: OSError, what: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"no space left while writing {what}; nothing was recorded",
                           hint="free some disk space (or run 'shipyard gc') and retry")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return StoreError(f"cannot write {what}: {exc.strerror}",
                          hint="check the permissions of the object folder (SHIPYARD_OBJECTS)")
    return exc


class LocalBackend:
    """A folder on the local disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def write(self, key: str, data: bytes) -> None:
        self._atomic(key, lambda handle: handle.write(data))

    def write_file(self, key: str, source: Path) -> None:
        def copy(handle) -> None:  # type: ignore[no-untyped-def]
            with open(source, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 22)

        self._atomic(key, copy)

    def _atomic(self, key: str, fill) -> None:  # type: ignore[no-untyped-def]
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        except OSError as exc:
            raise _translate_os_error(exc, f"object {key}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _translate_os_error(exc, f"object {key}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object {key} is missing from {self.root}",
                           hint="run 'shipyard pull' to fetch it from the remote") from None

    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]:
        return {k: self._path(k).exists() for k in keys}

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(".tmp-"):
                    yield Path(dirpath, name).relative_to(self.root).as_posix()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class FsspecBackend:
    """Any fsspec filesystem (s3://bucket/prefix, memory://, gcs://...)."""

    def __init__(self, url: str, **options: object) -> None:
        import fsspec

        try:
            self.fs, self.base = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            scheme = url.split("://", 1)[0]
            extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(scheme)
            hint = f'pip install "shipyard[{extra}]"' if extra else "use a local path or an s3:// URL"
            raise InputError(f"SHIPYARD_OBJECTS={url!r}: cannot open this location ({exc})", hint=hint) from exc
        self.url = url
        self.base = self.base.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def local_path(self, key: str) -> Path | None:
        return None

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def write_file(self, key: str, source: Path) -> None:
        self.fs.put_file(str(source), self._path(key))

    def read(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise NotFound(f"object {key} is missing from {self.url}") from None

    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]:
        keys = list(keys)
        prefixes = {k.rsplit("/", 1)[0] for k in keys}
        present: set[str] = set()
        for prefix in prefixes:  # one listing per shard, not one request per key
            try:
                present.update(p.removeprefix(self.base + "/") for p in self.fs.ls(self._path(prefix), detail=False))
            except FileNotFoundError:
                continue
        return {k: k in present for k in keys}

    def list(self, prefix: str = "") -> Iterator[str]:
        root = self._path(prefix) if prefix else self.base
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return
        for path in found:
            yield path.removeprefix(self.base + "/")

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass


def open_backend(url_or_path: str | os.PathLike[str]) -> Backend:
    """A backend for a local folder or an fsspec URL."""
    text = os.fspath(url_or_path)
    if "://" in text and not text.startswith("file://"):
        return FsspecBackend(text)
    return LocalBackend(text.removeprefix("file://"))
