"""Content hashes of stage deps and outs, fast enough that ``status`` on 100k files is a walk.

Ids are the ones ``shipyard.hashing`` gives (``xxh128:<hex>`` for a file, the hash of the folder's
``Manifest`` plus ``.dir`` for a folder), so a dep hashed here and an out put in the object store
agree. Two levels of cache, kept in ``.shipyard/pipeline/hashes/`` (plain ``marshal`` files, no
database):

* per path, a digest of the whole stat listing (names, sizes, mtimes, inodes, modes) -> the id, so
  an unchanged folder costs one ``scandir`` + ``stat`` per file and nothing else;
* per file, (size, mtime_ns, inode, mode) -> id, so a folder with one changed file re-reads that file.

A file whose mtime lies within ``RACY_NS`` of the moment its hash was cached is not trusted next time
(the "racy git" rule): a write in the same clock tick as the hash cannot hide a change.
"""

from __future__ import annotations

import json
import marshal
import os
import stat as stat_module
import time
from array import array
from pathlib import Path

import xxhash

from shipyard.errors import InputError
from shipyard.hashing import ALGORITHM, DIR_SUFFIX, MANIFEST_VERSION, FileEntry, Manifest

CACHE_VERSION = 1
RACY_NS = 1_000_000_000
_FIRST = 1 << 16
_CHUNK = 1 << 22


def hash_one_file(path: str) -> str:
    """The object id of one file (same value as ``shipyard.hashing.hash_file``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _FIRST)
        if len(data) < _FIRST:
            return f"{ALGORITHM}:{xxhash.xxh3_128_hexdigest(data)}"
        hasher = xxhash.xxh3_128(data)
        while chunk := os.read(fd, _CHUNK):
            hasher.update(chunk)
        return f"{ALGORITHM}:{hasher.hexdigest()}"
    finally:
        os.close(fd)


class Listing:
    """The regular files below a folder (or one file): names, stat numbers, and their digest."""

    __slots__ = ("digest", "names", "nums")

    def __init__(self, names: list[str], nums: array, digest: str) -> None:
        self.names = names
        self.nums = nums  # size, mtime_ns, inode, mode for each name, flattened
        self.digest = digest

    def stats(self, i: int) -> tuple[int, int, int, int]:
        n = self.nums
        return n[4 * i], n[4 * i + 1], n[4 * i + 2], n[4 * i + 3]

    def sort(self) -> None:
        """Put the entries in manifest order (by full relative path); the digest is not changed."""
        names = self.names
        if all(names[i] <= names[i + 1] for i in range(len(names) - 1)):
            return
        order = sorted(range(len(names)), key=names.__getitem__)
        nums = self.nums
        self.names = [names[i] for i in order]
        self.nums = array("q", (nums[4 * i + k] for i in order for k in range(4)))


def list_folder(root: Path, rel: str) -> Listing:
    """Walk ``root/rel`` in directory order; symlinks must stay inside the folder.

    The digest covers the walk as the file system returns it (stable while a folder is unchanged),
    so the common case, an unchanged folder, costs one ``stat`` per file and no sorting; callers that
    need manifest order call ``Listing.sort()``.
    """
    base = os.path.join(root, rel)
    names: list[str] = []
    nums = array("q")
    add_name = names.append
    add_nums = nums.extend
    is_reg = stat_module.S_ISREG
    stack = [""]
    while stack:
        sub = stack.pop()
        with os.scandir(os.path.join(base, sub) if sub else base) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(f"{sub}{entry.name}/")
                    continue
                st = entry.stat(follow_symlinks=False)
                if is_reg(st.st_mode):
                    add_name(sub + entry.name)
                    add_nums((st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
                elif stat_module.S_ISLNK(st.st_mode):
                    target = os.path.realpath(entry.path)
                    real_base = os.path.realpath(base)
                    if not target.startswith(real_base + os.sep):
                        raise InputError(f"{os.path.join(rel, sub, entry.name)} is a symlink to {target}, outside {rel}",
                                         hint="replace the link with the file itself")
                    if os.path.isdir(target):
                        stack.append(f"{sub}{entry.name}/")
                    else:
                        tst = os.stat(target)
                        add_name(sub + entry.name)
                        add_nums((tst.st_size, tst.st_mtime_ns, tst.st_ino, tst.st_mode))
    digest = xxhash.xxh3_128()
    digest.update("\0".join(names).encode("utf-8", "surrogateescape"))
    digest.update(nums.tobytes())
    return Listing(names, nums, digest.hexdigest())


def manifest_oid(rows: list[list]) -> str:
    """The id ``Manifest(...).oid`` gives for these [path, oid, size, executable] rows (same bytes)."""
    blob = json.dumps({"v": MANIFEST_VERSION, "entries": rows}, separators=(",", ":")).encode()
    return f"{ALGORITHM}:{xxhash.xxh3_128_hexdigest(blob)}{DIR_SUFFIX}"


def list_file(root: Path, rel: str) -> Listing:
    st = os.stat(os.path.join(root, rel))
    nums = array("q", (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
    return Listing([""], nums, xxhash.xxh3_128(nums.tobytes()).hexdigest())


class PathHash:
    """What a path hashed to: its id, total size, number of files (folders), and its manifest."""

    __slots__ = ("manifest", "nfiles", "oid", "size")

    def __init__(self, oid: str, size: int, nfiles: int | None, manifest: Manifest | None = None) -> None:
        self.oid = oid
        self.size = size
        self.nfiles = nfiles
        self.manifest = manifest

    @property
    def is_dir(self) -> bool:
        return self.oid.endswith(DIR_SUFFIX)


class HashCache:
    """Hash repo-relative paths under ``root``, remembering results in ``folder``."""

    def __init__(self, root: Path, folder: Path | None) -> None:
        self.root = Path(root)
        self.folder = folder

    def _file_of(self, rel: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{xxhash.xxh64_hexdigest(rel.encode())}.bin"

    def _load(self, rel: str, suffix: str = "") -> dict | None:
        path = self._file_of(rel)
        if path is None:
            return None
        try:
            data = marshal.loads(path.with_name(path.name + suffix).read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return None
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION or data.get("path") != rel:
            return None
        return data

    def _save(self, rel: str, head: dict, files: dict) -> None:
        path = self._file_of(rel)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The per-file table first: a header never points at a table older than itself.
            for target, data in ((path.with_name(path.name + ".files"), {**head, "files": files}), (path, head)):
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                tmp.write_bytes(marshal.dumps(data))
                os.replace(tmp, target)
        except OSError:
            return  # a read-only state folder only costs speed

    def hash_path(self, rel: str, *, want_manifest: bool = False) -> PathHash:
        """The id of a file or folder (``rel`` relative to the root). Missing -> FileNotFoundError."""
        full = os.path.join(self.root, rel)
        is_dir = os.path.isdir(full)
        if not is_dir and not os.path.exists(full):
            raise FileNotFoundError(full)
        listing = list_folder(self.root, rel) if is_dir else list_file(self.root, rel)
        cached = self._load(rel)
        if (cached is not None and cached.get("digest") == listing.digest and cached.get("dir") == is_dir
                and not want_manifest):
            return PathHash(cached["oid"], cached["size"], cached.get("nfiles"))
        listing.sort()
        table = self._load(rel, ".files") if cached is not None and cached.get("dir") == is_dir else None
        known: dict[str, tuple] = table.get("files", {}) if table is not None else {}
        now = time.time_ns()
        files: dict[str, tuple] = {}
        oids: list[str] = []
        total = 0
        racy = False
        for i, name in enumerate(listing.names):
            size, mtime, ino, mode = listing.stats(i)
            hit = known.get(name)
            if hit is not None and hit[0] == size and hit[1] == mtime and hit[2] == ino and hit[4] is not None:
                oid = hit[4]
            else:
                oid = hash_one_file(os.path.join(full, name) if is_dir else full)
            total += size
            oids.append(oid)
            trusted = mtime < now - RACY_NS
            racy = racy or not trusted
            files[name] = (size, mtime, ino, mode, oid if trusted else None)
        manifest = None
        if is_dir and want_manifest:
            manifest = Manifest(tuple(
                FileEntry(name, oids[i], listing.nums[4 * i], bool(listing.nums[4 * i + 3] & stat_module.S_IXUSR))
                for i, name in enumerate(listing.names)))
            result = PathHash(manifest.oid, total, len(oids), manifest)
        elif is_dir:
            nums = listing.nums
            rows = [[name, oids[i], nums[4 * i], 1 if nums[4 * i + 3] & stat_module.S_IXUSR else 0]
                    for i, name in enumerate(listing.names)]
            result = PathHash(manifest_oid(rows), total, len(oids))
        else:
            result = PathHash(oids[0], total, None)
        head = {"v": CACHE_VERSION, "path": rel, "dir": is_dir, "digest": None if racy else listing.digest,
                "oid": result.oid, "size": result.size, "nfiles": result.nfiles}
        self._save(rel, head, files)
        return result

    def hash_many(self, rels: list[str]) -> dict[str, PathHash | None]:
        """Ids of many paths; a path that does not exist maps to None."""
        out: dict[str, PathHash | None] = {}
        for rel in rels:
            try:
                out[rel] = self.hash_path(rel)
            except FileNotFoundError:
                out[rel] = None
        return out
