"""``shipyard push`` / ``shipyard pull``: share objects and run-cache entries through a remote.

The remote is any fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``memory://``) or a plain
folder. Objects keep the object store's layout (``xxh128/ab/cdef...``), so a project may also point
``SHIPYARD_OBJECTS`` straight at the remote; run-cache entries go under ``runcache/``.

What the other side already has is found by listing each side once (paginated listings: about one
request per thousand keys on S3), never by asking about each object (DVC #6310, STYLE.md H5).
Transfers run in a thread pool. Pulled objects land in a staging folder, are hashed, and only then
renamed into place; an object whose content does not match its name is refused (Invariant 3).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shipyard.errors import ObjectCorrupt, ShipyardError, UsageError
from shipyard.hashing import DIR_SUFFIX, hash_file
from shipyard.objects.backends import Backend, LocalBackend, open_backend
from shipyard.project import shared_objects

OBJECT_KEY = re.compile(r"^(?P<algo>[a-z0-9]+)/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{30})(?P<dir>\.dir)?$")
RUNCACHE_PREFIX = "runcache"
DEFAULT_JOBS = 16

Progress = Callable[[int, int], None]


@dataclass
class SyncResult:
    """What a push or pull did."""

    direction: str
    remote: str
    objects_transferred: int = 0
    objects_skipped: int = 0
    bytes_transferred: int = 0
    runcache_transferred: int = 0
    runcache_skipped: int = 0
    seconds: float = 0.0
    corrupt: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        verb = "pushed" if self.direction == "push" else "pulled"
        return (f"{verb} {self.objects_transferred} objects ({_size(self.bytes_transferred)}) and "
                f"{self.runcache_transferred} run-cache entries in {self.seconds:.2f}s; "
                f"{self.objects_skipped} objects and {self.runcache_skipped} entries were already there")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def resolve_remote(remote: str | None, local_objects: Path) -> str:
    """The remote URL: ``--remote``, else ``SHIPYARD_OBJECTS``; never the local folder itself."""
    url = remote or shared_objects()
    if not url:
        raise UsageError("no remote to sync with",
                         hint="set SHIPYARD_OBJECTS=s3://bucket/prefix (any fsspec URL or a folder), "
                              "or pass --remote URL")
    if "://" not in url or url.startswith("file://"):
        path = Path(url.removeprefix("file://")).expanduser().resolve()
        if path == local_objects.resolve():
            raise UsageError(f"the remote {url} is this project's own object folder",
                             hint="point --remote (or SHIPYARD_OBJECTS) at a shared folder or bucket")
        return str(path)
    return url


def _object_keys(keys: Iterable[str]) -> set[str]:
    return {k for k in keys if OBJECT_KEY.match(k)}


def _list(backend: Backend, prefix: str = "") -> list[str]:
    fs = getattr(backend, "fs", None)
    try:
        if fs is not None:
            fs.invalidate_cache()  # listings must see what other processes wrote
        return list(backend.list(prefix))
    except ShipyardError:
        raise
    except Exception as exc:  # the fsspec backend's own errors (credentials, network, permissions)
        raise ShipyardError(f"cannot list {backend.url}: {type(exc).__name__}: {exc}",
                            hint="check the remote's address and credentials (for S3: AWS_* variables "
                                 "or ~/.aws, and the bucket name)") from exc


def _entries(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    out = set()
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not name.startswith((".tmp-", ".")):
                out.add(Path(dirpath, name).relative_to(folder).as_posix())
    return out


def _run_pool(jobs: int, items: list[str], fn: Callable[[str], int], progress: Progress | None) -> int:
    """Run ``fn`` over ``items`` in threads; returns the summed sizes. The first error stops the rest."""
    total = 0
    done = 0
    if not items:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                total += future.result()
                done += 1
                if progress:
                    progress(done, len(items))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return total


def _transfer(what: str, keys: list[str], move: Callable[[str], int], jobs: int, progress: Progress | None,
              resume: str) -> int:
    """Move the objects ``keys`` (bytes moved): files before manifests, so that a store holding a .dir
    object holds every file it names. Whatever the fsspec backend raised becomes a ShipyardError."""
    files = [k for k in keys if not k.endswith(DIR_SUFFIX)]
    dirs = [k for k in keys if k.endswith(DIR_SUFFIX)]
    try:
        return _run_pool(jobs, files, move, progress) + _run_pool(jobs, dirs, move, None)
    except ShipyardError:
        raise
    except Exception as exc:  # OSError, botocore errors: whatever the fsspec backend raised
        raise ShipyardError(f"{what} failed: {type(exc).__name__}: {exc}",
                            hint=f"check the remote's address and credentials; {resume}") from exc


def push(local_objects: Path, runcache: Path, remote_url: str, *, jobs: int = DEFAULT_JOBS,
         progress: Progress | None = None) -> SyncResult:
    """Upload local objects and run-cache entries the remote does not have yet."""
    started = time.perf_counter()
    remote = open_backend(remote_url)
    local = LocalBackend(local_objects)
    result = SyncResult("push", remote.url)
    have_local = _object_keys(local.list())
    have_remote = _object_keys(_list(remote))
    todo = sorted(have_local - have_remote)
    result.objects_skipped = len(have_local) - len(todo)

    def upload(key: str) -> int:
        source = local_objects / key
        remote.write_file(key, source)
        return source.stat().st_size

    result.bytes_transferred = _transfer(f"push to {remote.url}", todo, upload, jobs, progress,
                                         "rerun to resume (done objects are skipped)")
    result.objects_transferred = len(todo)

    local_entries = _entries(runcache)
    remote_entries = {k.removeprefix(RUNCACHE_PREFIX + "/") for k in _list(remote, RUNCACHE_PREFIX)}
    new_entries = sorted(local_entries - remote_entries)
    _run_pool(jobs, new_entries, lambda name: _upload_entry(remote, runcache, name), None)
    result.runcache_transferred = len(new_entries)
    result.runcache_skipped = len(local_entries) - len(new_entries)
    result.seconds = time.perf_counter() - started
    return result


def _upload_entry(remote: Backend, runcache: Path, name: str) -> int:
    remote.write_file(f"{RUNCACHE_PREFIX}/{name}", runcache / name)
    return 0


def pull(local_objects: Path, runcache: Path, remote_url: str, *, jobs: int = DEFAULT_JOBS,
         progress: Progress | None = None) -> SyncResult:
    """Download remote objects and run-cache entries this machine does not have, verifying each."""
    started = time.perf_counter()
    remote = open_backend(remote_url)
    local = LocalBackend(local_objects)
    result = SyncResult("pull", remote.url)
    remote_keys = _list(remote)
    have_remote = _object_keys(remote_keys)
    have_local = _object_keys(local.list())
    todo = sorted(have_remote - have_local)
    result.objects_skipped = len(have_remote) - len(todo)
    local_objects.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-pull-", dir=local_objects))
    corrupt: list[str] = []

    def download(key: str) -> int:
        data = _read(remote, key)
        match = OBJECT_KEY.match(key)
        assert match is not None
        oid = f"{match['algo']}:{match['a']}{match['b']}"
        tmp = staging / key.replace("/", "_")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if hash_file(tmp) != oid:
            tmp.unlink()
            corrupt.append(key)
            return 0
        target = local_objects / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        return len(data)

    try:
        result.bytes_transferred = _transfer(f"pull from {remote.url}", todo, download, jobs, progress,
                                             "rerun to resume (done objects are kept)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.corrupt = sorted(corrupt)
    result.objects_transferred = len(todo) - len(corrupt)

    remote_entries = {k.removeprefix(RUNCACHE_PREFIX + "/") for k in remote_keys
                      if k.startswith(RUNCACHE_PREFIX + "/")}
    local_entries = _entries(runcache)
    new_entries = sorted(remote_entries - local_entries)
    _run_pool(jobs, new_entries, lambda name: _download_entry(remote, runcache, name), None)
    result.runcache_transferred = len(new_entries)
    result.runcache_skipped = len(remote_entries) - len(new_entries)
    result.seconds = time.perf_counter() - started
    if corrupt:
        raise ObjectCorrupt(
            f"{len(corrupt)} object(s) on {remote.url} do not match their names and were not pulled: "
            + ", ".join(corrupt[:5]) + (" ..." if len(corrupt) > 5 else ""),
            hint="delete them from the remote and push them again from a machine that has them",
        )
    return result


def _read(remote: Backend, key: str) -> bytes:
    """One GET per object: s3fs would otherwise HEAD every object first to size its download."""
    fs = getattr(remote, "fs", None)
    protocols = getattr(fs, "protocol", ())
    protocols = (protocols,) if isinstance(protocols, str) else protocols
    if fs is not None and "s3" in protocols:
        try:
            return fs.cat_file(f"{remote.url.rstrip('/').split('://', 1)[1]}/{key}", max_concurrency=1)
        except FileNotFoundError:
            raise ShipyardError(f"object {key} vanished from {remote.url} while pulling",
                                hint="rerun 'shipyard pull'") from None
    return remote.read(key)


def _download_entry(remote: Backend, runcache: Path, name: str) -> int:
    if ".." in Path(name).parts or name.startswith("/"):
        raise UsageError(f"remote run-cache entry {name!r} has an unsafe name; refusing it")
    data = _read(remote, f"{RUNCACHE_PREFIX}/{name}")
    target = runcache / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return len(data)
