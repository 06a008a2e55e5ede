"""Content hashes, directory manifests and the stat cache.

Objects are named ``<algorithm>:<hex>``; today the algorithm is xxh3-128 (15.8 GiB/s here against
blake3's 5.9, so hashing stays bound by reading), and the prefix lets it change later. A folder is
hashed as a manifest (sorted relative paths, object ids, sizes, executable bits) whose own hash,
suffixed ``.dir``, names the whole folder. The stat cache remembers the hash of a file under its
repo-relative path and (size, mtime_ns, inode) so unchanged files are never read again. It runs on
the standard library's sqlite3 so ``status`` and a no-op ``run`` never import SQLAlchemy.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import stat as stat_module
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import xxhash

from shipyard.errors import InputError, PathEscapeError, StorageFull
from shipyard.project import resolve_inside

ALGORITHM = "xxh128"
DIR_SUFFIX = ".dir"
MANIFEST_VERSION = 1
_MMAP_THRESHOLD = 1 << 20
_WINDOW = 64 << 20
_WORKERS = min(32, (os.cpu_count() or 2) * 4)


def hash_bytes(data: bytes | memoryview) -> str:
    """The object id of a byte string."""
    return f"{ALGORITHM}:{xxhash.xxh3_128_hexdigest(data)}"


def hash_file(path: str | os.PathLike[str]) -> str:
    """The object id of a file's content.

    Small files are read with one system call; large ones are mapped and hashed window by window,
    each window released after use (MADV_DONTNEED), so hashing a 1 GiB file neither copies it
    through a buffer nor keeps it all in our resident memory.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < _MMAP_THRESHOLD:
            chunks = []
            while chunk := os.read(fd, max(size + 1, 1 << 16)):  # +1: a file that grew is read whole
                chunks.append(chunk)
            return hash_bytes(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        return f"{ALGORITHM}:{_hash_mapped(fd, size)}"
    finally:
        os.close(fd)


def _hash_mapped(fd: int, size: int) -> str:
    hasher = xxhash.xxh3_128()
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
        if hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        view = memoryview(mapped)
        try:
            for offset in range(0, size, _WINDOW):
                length = min(_WINDOW, size - offset)
                hasher.update(view[offset:offset + length])
                if hasattr(mmap, "MADV_DONTNEED"):
                    mapped.madvise(mmap.MADV_DONTNEED, offset, length)
        finally:
            view.release()
    return hasher.hexdigest()


def is_dir_id(oid: str) -> bool:
    """True when ``oid`` names a directory manifest rather than a file."""
    return oid.endswith(DIR_SUFFIX)


def split_id(oid: str) -> tuple[str, str]:
    """``xxh128:abcd...`` -> ('xxh128', 'abcd...'); refuses anything that is not an object id."""
    algorithm, _, digest = oid.partition(":")
    digest = digest.removesuffix(DIR_SUFFIX)
    if algorithm != ALGORITHM or len(digest) != 32 or not all(c in "0123456789abcdef" for c in digest):
        raise InputError(f"{oid!r} is not a Shipyard object id (expected {ALGORITHM}:<32 hex digits>)")
    return algorithm, digest


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file in a manifest: path relative to the folder, object id, size, executable bit."""

    path: str
    oid: str
    size: int
    executable: bool = False


@dataclass(frozen=True)
class Manifest:
    """A folder's content: its entries sorted by path, and the id they hash to."""

    entries: tuple[FileEntry, ...]

    def to_bytes(self) -> bytes:
        rows = [[e.path, e.oid, e.size, int(e.executable)] for e in self.entries]
        return json.dumps({"v": MANIFEST_VERSION, "entries": rows}, separators=(",", ":")).encode()

    @property
    def oid(self) -> str:
        return hash_bytes(self.to_bytes()) + DIR_SUFFIX

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest, refusing entries that are malformed or whose path leaves the folder."""
        try:
            doc = json.loads(data)
            version = doc.get("v")
        except (ValueError, AttributeError) as exc:
            raise InputError("a directory manifest is not valid JSON") from exc
        if version != MANIFEST_VERSION:
            raise InputError(f"directory manifest has format version {version!r}; this Shipyard reads {MANIFEST_VERSION}",
                             hint="upgrade Shipyard to read objects written by a newer version")
        entries = []
        for row in doc.get("entries", []):
            if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str) and isinstance(row[2], int)):
                raise InputError(f"directory manifest entry {row!r} is malformed (expected [path, id, size, x])")
            path, oid, size, executable = row
            check_relative(path, "manifest entry")
            split_id(oid)
            if is_dir_id(oid):
                raise InputError(f"manifest entry {path!r} names a folder id {oid}; entries are files")
            entries.append(FileEntry(path, oid, size, bool(executable)))
        return cls(tuple(entries))


def check_relative(path: str, what: str) -> str:
    """Refuse a POSIX path that is absolute, empty, or climbs out with ``..`` (no filesystem access)."""
    if not path or "\x00" in path or path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise PathEscapeError(f"{what} {path!r} is empty or absolute; it must be a relative path")
    if any(part in ("..", ".", "") for part in path.split("/")) or "\\" in path:
        raise PathEscapeError(f"{what} {path!r} is not a plain relative path (no '..', '//' or '\\')",
                              hint="keep paths inside their folder")
    return path


@dataclass(frozen=True, slots=True)
class StatKey:
    """What must stay equal for a cached hash to be trusted."""

    size: int
    mtime_ns: int
    inode: int


class StatCache:
    """Hashes of files keyed by repo-relative path and (size, mtime_ns, inode).

    Batch-first: one query returns every cached row under a prefix, one transaction writes many.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._unusable = False

    def _connect(self) -> sqlite3.Connection | None:
        """The cache database, or None when it cannot be opened (read-only or full disk).

        It is only a cache: without it every file is hashed again, which is slower but correct.
        """
        if self._conn is None and not self._unusable:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, size INTEGER, "
                    "mtime_ns INTEGER, inode INTEGER, oid TEXT) WITHOUT ROWID"
                )
            except (OSError, sqlite3.Error):
                self._unusable = True
                return None
            self._conn = conn
        return self._conn

    def lookup_prefix(self, prefix: str) -> dict[str, tuple[StatKey, str]]:
        """Every cached row whose path is ``prefix`` or lies below ``prefix/``."""
        conn = self._connect()
        if conn is None:
            return {}
        if not prefix or prefix == ".":
            rows = conn.execute("SELECT path, size, mtime_ns, inode, oid FROM stat")
        else:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, inode, oid FROM stat WHERE path = ? OR (path >= ? AND path < ?)",
                (prefix, prefix + "/", prefix + "0"),
            )
        return {p: (StatKey(s, m, i), o) for p, s, m, i, o in rows}

    def update_many(self, rows: Iterable[tuple[str, StatKey, str]]) -> None:
        """Record fresh hashes in one transaction (best effort: a read-only cache is skipped)."""
        rows = [(p, k.size, k.mtime_ns, k.inode, o) for p, k, o in rows]
        if not rows:
            return
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "full" in str(exc):
                raise StorageFull(f"disk full while writing the stat cache {self.path}",
                                  hint="free some disk space and retry") from exc
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class NullStatCache(StatCache):
    """A stat cache that remembers nothing (used when there is no project state folder)."""

    def __init__(self) -> None:
        super().__init__(os.devnull)

    def lookup_prefix(self, prefix: str) -> dict[str, tuple[StatKey, str]]:
        return {}

    def update_many(self, rows: Iterable[tuple[str, StatKey, str]]) -> None:
        return None


def _stat_key(st: os.stat_result) -> StatKey:
    return StatKey(st.st_size, st.st_mtime_ns, st.st_ino)


def walk_files(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files below ``folder`` (relative POSIX paths, lstat results), sorted by path.

    Symlinks are followed only when they point inside ``folder``'s tree; others are refused.
    """
    stack = [(folder, "")]
    out: list[tuple[str, os.stat_result]] = []
    while stack:
        current, rel = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), name + "/"))
                elif entry.is_file(follow_symlinks=False):
                    out.append((name, entry.stat(follow_symlinks=False)))
                elif entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if folder.resolve() not in target.parents:
                        raise PathEscapeError(f"{entry.path} is a symlink to {target}, outside {folder}",
                                              hint="replace the link with the file itself")
                    if not target.exists():
                        raise InputError(f"{entry.path} is a broken symlink (to {target})",
                                         hint="remove the link or restore its target")
                    if target.is_dir():
                        raise InputError(f"{entry.path} is a symlink to the folder {target}; links to folders "
                                         "are not followed", hint="replace the link with the folder itself")
                    out.append((name, target.stat()))
    out.sort()
    return iter(out)


class Hasher:
    """Hashes files and folders under a project root, using and refreshing a stat cache."""

    def __init__(self, root: str | os.PathLike[str], cache: StatCache | None = None) -> None:
        self.root = Path(root)
        self.cache = cache or NullStatCache()

    def hash_paths(self, relpaths: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Hash many repo-relative paths (files or folders): {path: (oid, size)}."""
        results: dict[str, tuple[str, int]] = {}
        for rel in relpaths:
            full = self._inside(rel)
            if full.is_dir():
                manifest = self.manifest(rel)
                results[rel] = (manifest.oid, manifest.size)
            else:
                oid, size = self._hash_files([(rel, full.stat())], rel)[rel]
                results[rel] = (oid, size)
        return results

    def _inside(self, rel: str) -> Path:
        """``root / rel``, refused if it is absolute or resolves (through ``..`` or links) outside."""
        resolve_inside(self.root, rel, "path")  # the one escape check (DESIGN invariant 5)
        return self.root / rel

    def manifest(self, rel: str) -> Manifest:
        """The manifest of the folder ``rel`` (relative to the root)."""
        folder = self._inside(rel)
        listing = [(f"{rel}/{name}" if rel not in ("", ".") else name, st, name) for name, st in walk_files(folder)]
        hashed = self._hash_files([(full_rel, st) for full_rel, st, _ in listing], rel)
        entries = tuple(
            FileEntry(name, hashed[full_rel][0], st.st_size, bool(st.st_mode & stat_module.S_IXUSR))
            for full_rel, st, name in listing
        )
        return Manifest(entries)

    def _hash_files(self, files: list[tuple[str, os.stat_result]], prefix: str) -> dict[str, tuple[str, int]]:
        cached = self.cache.lookup_prefix(prefix)
        results: dict[str, tuple[str, int]] = {}
        misses: list[tuple[str, StatKey]] = []
        for rel, st in files:
            key = _stat_key(st)
            hit = cached.get(rel)
            if hit is not None and hit[0] == key:
                results[rel] = (hit[1], key.size)
            else:
                misses.append((rel, key))
        if misses:
            fresh = self._hash_parallel([rel for rel, _ in misses])
            self.cache.update_many((rel, key, fresh[rel]) for rel, key in misses)
            for rel, key in misses:
                results[rel] = (fresh[rel], key.size)
        return results

    def _hash_parallel(self, rels: list[str]) -> dict[str, str]:
        if len(rels) == 1:
            return {rels[0]: hash_file(self.root / rels[0])}
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            oids = pool.map(lambda r: hash_file(self.root / r), rels, chunksize=64)
            return dict(zip(rels, oids, strict=True))
