"""Object backends: they move bytes and list keys, nothing else (hashing lives in store.py).

``LocalBackend`` writes atomically (temp file, fsync, rename). ``FsspecBackend`` covers any fsspec
URL (s3://, gcs://, az://, memory://); object stores make single PUTs atomic already.
"""

from __future__ import annotations

import errno
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Protocol

from shipyard.errors import InputError, NotFound, StorageFull, StoreError

_HEAD_LIMIT = 4  # a shard with at most this many wanted keys is probed key by key, else listed
_FSSPEC_WORKERS = 16
_LOCAL_WORKERS = 8
_BATCH = 16  # from this many objects on, one syncfs replaces per-file fsyncs
_COUNTER = itertools.count()


class Backend(Protocol):
    """Bytes under keys like ``xxh128/ab/cdef...``."""

    url: str

    def write(self, key: str, data: bytes) -> None: ...
    def write_file(self, key: str, source: Path) -> None: ...
    def write_many(self, items: Sequence[tuple[str, bytes | Path]]) -> None: ...
    def read(self, key: str) -> bytes: ...
    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def total_bytes(self) -> int: ...
    def delete(self, key: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...


def _translate_os_error(exc: OSError, what: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"no space left on the device while writing {what}; nothing was recorded",
                           hint="free some disk space (or point SHIPYARD_OBJECTS at a bigger disk) and retry")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return StoreError(f"cannot write {what}: {exc.strerror} ({exc.filename or 'object folder'})",
                          hint="make the object folder writable (.shipyard/objects, or SHIPYARD_OBJECTS)")
    return exc


def _copy_into(fd: int, source: Path) -> None:
    """Copy a file's bytes to ``fd``: in the kernel (copy_file_range) when possible."""
    with open(source, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        if size and hasattr(os, "copy_file_range"):
            try:
                while os.copy_file_range(src.fileno(), fd, 1 << 30):
                    pass
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                src.seek(0)
        while chunk := src.read(1 << 22):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]


@cache
def _syncfs_call():  # type: ignore[no-untyped-def]
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    return call


def _syncfs() -> Callable[[Path], None] | None:
    """``syncfs(folder)``: flush every dirty page of the folder's filesystem, or None if unsupported."""
    call = _syncfs_call()
    if call is None:
        return None

    def run(folder: Path) -> None:
        import ctypes

        fd = os.open(folder, os.O_RDONLY)
        try:
            if call(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), str(folder))
        finally:
            os.close(fd)

    return run


class LocalBackend:
    """A folder on the local disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self._made: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.root / key

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def write(self, key: str, data: bytes) -> None:
        self.write_many([(key, data)])

    def write_file(self, key: str, source: Path) -> None:
        self.write_many([(key, source)])

    def write_many(self, items: Sequence[tuple[str, bytes | Path]]) -> None:
        """Store many objects; each appears under its key complete, or not at all.

        Each object is written to a temp file beside its key, made durable, then renamed into
        place. Durable means one fsync per file for a few files; for a batch, one ``syncfs`` of
        the filesystem before the renames (and one after, for the renames themselves) instead of
        thousands of fsyncs. If anything fails, every temp file of the batch is removed.
        """
        if not items:
            return
        syncfs = _syncfs() if len(items) >= _BATCH else None
        staged: list[tuple[str, Path]] = []
        try:
            if len(items) == 1:
                staged.append(self._stage(*items[0], fsync=True))
            else:
                with ThreadPoolExecutor(max_workers=_LOCAL_WORKERS) as pool:
                    futures = [pool.submit(self._stage, key, src, fsync=syncfs is None) for key, src in items]
                    errors = []
                    for future in futures:
                        try:
                            staged.append(future.result())
                        except BaseException as exc:
                            errors.append(exc)
                    if errors:
                        raise errors[0]
            if syncfs is not None:
                syncfs(self.root)
            for key, tmp in staged:
                os.replace(tmp, self._path(key))
            staged.clear()
            if syncfs is not None:
                syncfs(self.root)
        except OSError as exc:
            what = f"object {items[0][0]}" if len(items) == 1 else f"{len(items)} objects under {self.root}"
            raise _translate_os_error(exc, what) from exc
        finally:
            for _key, tmp in staged:
                tmp.unlink(missing_ok=True)

    def _stage(self, key: str, source: bytes | Path, fsync: bool) -> tuple[str, Path]:
        """Write one object's bytes to a fresh temp file next to its key; returns (key, temp path)."""
        target = self._path(key)
        parent = target.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        while True:  # a temp file left by a killed process may hold the name: take the next one
            tmp = parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_COUNTER)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                break
            except FileExistsError:
                continue
        try:
            if isinstance(source, bytes | bytearray | memoryview):
                view = memoryview(source)
                while view:
                    view = view[os.write(fd, view):]
            else:
                _copy_into(fd, source)
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return key, tmp

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object {key} is missing from {self.root}",
                           hint="re-run the stage that produced it ('shipyard run'), or point "
                                "SHIPYARD_OBJECTS at the store that holds it") from None

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

    def total_bytes(self) -> int:
        """Bytes held under the root (objects, run-cache entries; no half-written temporaries)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(".tmp-"):
                    try:
                        total += os.stat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:  # removed by gc meanwhile
                        pass
        return total


class FsspecBackend:
    """Any fsspec filesystem (s3://bucket/prefix, memory://, gcs://...)."""

    def __init__(self, url: str, **options: object) -> None:
        import fsspec

        try:
            self.fs, self.base = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            scheme = url.split("://", 1)[0]
            installs = {"s3": 'pip install "shipyard[s3]"', "s3a": 'pip install "shipyard[s3]"',
                        "gs": "pip install gcsfs", "gcs": "pip install gcsfs",
                        "az": "pip install adlfs", "abfs": "pip install adlfs"}
            hint = installs.get(scheme, "use a local path or an fsspec URL such as s3://bucket/prefix")
            raise InputError(f"SHIPYARD_OBJECTS={url!r}: cannot open this location ({exc})", hint=hint) from exc
        self.url = url
        self.base = self.base.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def local_path(self, key: str) -> Path | None:
        return None

    def write_many(self, items: Sequence[tuple[str, bytes | Path]]) -> None:
        """Upload many objects in parallel (each PUT is atomic on an object store)."""
        def one(item: tuple[str, bytes | Path]) -> None:
            key, source = item
            if isinstance(source, Path):
                self.write_file(key, source)
            else:
                self.write(key, source)

        if len(items) == 1:
            one(items[0])
            return
        with ThreadPoolExecutor(max_workers=_FSSPEC_WORKERS) as pool:
            list(pool.map(one, items))

    def write(self, key: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(key), data)
        except OSError as exc:
            raise self._write_error(exc, key) from exc

    def write_file(self, key: str, source: Path) -> None:
        try:
            self.fs.put_file(str(source), self._path(key))
        except OSError as exc:
            raise self._write_error(exc, key) from exc

    def _write_error(self, exc: OSError, key: str) -> Exception:
        if isinstance(exc, FileNotFoundError | PermissionError):
            return StoreError(f"cannot write object {key} to {self.url}: {exc}",
                              hint="check that the bucket (or folder) exists and that the credentials "
                                   "(e.g. AWS_ACCESS_KEY_ID, AWS_PROFILE) allow writing to it")
        return _translate_os_error(exc, f"object {key} to {self.url}")

    def read(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise NotFound(f"object {key} is missing from {self.url}",
                           hint="re-run the stage that produced it ('shipyard run'), or point "
                                "SHIPYARD_OBJECTS at the store that holds it") from None

    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]:
        """Which keys exist: one fresh listing per shard holding many of them, else one HEAD per key.

        Listings bypass fsspec's directory cache (``refresh=True``): another process may have written
        or deleted objects since, and a stale "present" would skip an upload that is needed.
        """
        keys = list(dict.fromkeys(keys))
        shards: dict[str, list[str]] = {}
        for key in keys:
            shards.setdefault(key.rsplit("/", 1)[0], []).append(key)
        present: set[str] = set()

        def probe(shard: str) -> set[str]:
            wanted = shards[shard]
            if len(wanted) <= _HEAD_LIMIT:
                return {k for k in wanted if self._exists(k)}
            try:
                listed = self.fs.ls(self._path(shard), detail=False, refresh=True)
            except FileNotFoundError:
                return set()
            names = {self._relative(p) for p in listed}
            return {k for k in wanted if k in names}

        with ThreadPoolExecutor(max_workers=_FSSPEC_WORKERS) as pool:
            for found in pool.map(probe, shards):
                present |= found
        return {k: k in present for k in keys}

    def _exists(self, key: str) -> bool:
        try:
            self.fs.info(self._path(key), refresh=True)
        except FileNotFoundError:
            return False
        return True

    def _relative(self, path: str) -> str:
        path = path.split("://", 1)[-1].lstrip("/")
        return path.removeprefix(self.base.lstrip("/") + "/")

    def list(self, prefix: str = "") -> Iterator[str]:
        root = self._path(prefix) if prefix else self.base
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return
        for path in found:
            yield self._relative(path)

    def total_bytes(self) -> int:
        """Bytes held under the prefix (one listing with sizes)."""
        try:
            found = self.fs.find(self.base, detail=True)
        except FileNotFoundError:
            return 0
        return sum(int(info.get("size") or 0) for info in found.values())

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass


def open_backend(url_or_path: str | os.PathLike[str]) -> Backend:
    """A backend for a local folder or an fsspec URL."""
    text = os.fspath(url_or_path)
    if "://" in text and not text.startswith("file://"):
        from shipyard.objects.encryption import storage_options

        return FsspecBackend(text, **storage_options(text))   # SHIPYARD_OBJECTS_SSE: encrypted at rest
    return LocalBackend(text.removeprefix("file://"))
