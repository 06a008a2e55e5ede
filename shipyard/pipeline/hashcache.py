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

Big folders use two CPUs: the walk (when the cache says the folder held ``PARALLEL_MIN_FILES`` files
or more) and the hashing of that many files are split in two halves, one done by a forked child
(threads do not help: the work is many short system calls, each retaking the GIL). The child only
walks or reads files and sends its half back through a pipe; if it fails in any way the parent does
that half itself, so errors surface exactly as without the split. Only on Linux, with two CPUs
available and no other thread running (forking a threaded process is unsafe).
"""

from __future__ import annotations

import json
import marshal
import os
import signal
import stat as stat_module
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import xxhash

from shipyard.errors import InputError
from shipyard.hashing import ALGORITHM, DIR_SUFFIX, MANIFEST_VERSION, FileEntry, Manifest

CACHE_VERSION = 1
RACY_NS = 1_000_000_000
_FIRST = 1 << 16
_CHUNK = 1 << 22
PARALLEL_MIN_FILES = 20_000
_T = TypeVar("_T")


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
        raw = self.nums.tobytes()
        width = 4 * self.nums.itemsize  # one file's four numbers, moved as one slice of bytes
        self.names = [names[i] for i in order]
        self.nums = array("q")
        self.nums.frombytes(b"".join([raw[width * i:width * (i + 1)] for i in order]))


def _scan(root: Path, rel: str, sub: str, names: list[str], nums: array) -> list[str]:
    """Add the files directly inside ``root/rel/sub`` to ``names``/``nums``; return its subfolders.

    The folder is opened once and its entries stat'ed relative to it (``fstatat``: no path lookup
    per file); file or folder comes from the directory entry itself, without a system call.
    """
    base = os.path.join(root, rel)
    folder = os.path.join(base, sub) if sub else base
    subs: list[str] = []
    add_name = names.append
    add_nums = nums.extend
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:  # entries stat relative to ``fd``: it stays open until the last one
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    add_name(sub + entry.name)
                    add_nums((st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
                elif entry.is_dir(follow_symlinks=False):
                    subs.append(f"{sub}{entry.name}/")
                elif entry.is_symlink():
                    _add_link(base, rel, sub, entry.name, names, nums, subs)
    finally:
        os.close(fd)
    return subs


def _add_link(base: str, rel: str, sub: str, name: str, names: list[str], nums: array, subs: list[str]) -> None:
    """A symlink counts as its target, which must lie inside the folder."""
    target = os.path.realpath(os.path.join(base, sub, name))
    if not target.startswith(os.path.realpath(base) + os.sep):
        raise InputError(f"{os.path.join(rel, sub, name)} is a symlink to {target}, outside {rel}",
                         hint="replace the link with the file itself")
    if os.path.isdir(target):
        subs.append(f"{sub}{name}/")
    else:
        tst = os.stat(target)
        names.append(sub + name)
        nums.extend((tst.st_size, tst.st_mtime_ns, tst.st_ino, tst.st_mode))


def _walk(root: Path, rel: str, starts: Sequence[str]) -> tuple[list[str], bytes]:
    """The files below each of ``starts`` in turn, depth first (last subfolder first), packed."""
    names: list[str] = []
    nums = array("q")
    for start in starts:
        stack = [start]
        while stack:
            stack.extend(_scan(root, rel, stack.pop(), names, nums))
    return names, nums.tobytes()


def list_folder(root: Path, rel: str, *, expected_files: int = 0) -> Listing:
    """Walk ``root/rel``: its own files, then each subfolder depth first, entries in directory order.

    The digest covers the walk as the file system returns it (stable while a folder is unchanged),
    so the common case, an unchanged folder, costs one ``stat`` per file and no sorting; callers that
    need manifest order call ``Listing.sort()``. ``expected_files`` (what the cache last counted; 0
    when unknown, and then the first subfolder's count times the number of subfolders) decides
    whether two processes share the walk; the listing is the same either way.
    """
    names: list[str] = []
    nums = array("q")
    subs = _scan(root, rel, "", names, nums)[::-1]
    parts: list[tuple[list[str], bytes]] = []
    if not expected_files and len(subs) > 2:  # a fresh clone: estimate from the first subfolder
        parts.append(_walk(root, rel, subs[:1]))
        expected_files = len(parts[0][0]) * len(subs)
        subs = subs[1:]
    if expected_files >= PARALLEL_MIN_FILES and len(subs) > 1:
        parts.extend(in_two_processes(lambda half: _walk(root, rel, half), subs))
    else:
        parts.append(_walk(root, rel, subs))
    for part_names, part_nums in parts:
        names.extend(part_names)
        nums.frombytes(part_nums)
    digest = xxhash.xxh3_128()
    digest.update("\0".join(names).encode("utf-8", "surrogateescape"))
    digest.update(nums.tobytes())
    return Listing(names, nums, digest.hexdigest())


def _can_fork() -> bool:
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    return len(os.sched_getaffinity(0)) >= 2


def in_two_processes(work: Callable[[Sequence[Any]], _T], items: Sequence[Any]) -> list[_T]:
    """``[work(first half), work(second half)]``, the second half done by a forked child when possible.

    ``work``'s result must be marshal-able. Whatever goes wrong in the child (an error, a signal, a
    result that does not load), the parent computes that half itself, so its errors are raised here.
    """
    half = (len(items) + 1) // 2
    first, second = items[:half], items[half:]
    if not second or not _can_fork():
        return [work(first), work(second)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, and leave without running any of the parent's cleanup
        code = 1
        try:
            # Keep none of the parent's files: a runner killed mid-walk must free its run lock at once.
            os.closerange(3, write_end)
            os.closerange(write_end + 1, os.sysconf("SC_OPEN_MAX"))
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            with os.fdopen(write_end, "wb") as out:
                out.write(marshal.dumps(work(second)))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            mine = work(first)
            sent = pipe.read()
        _pid, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:  # the parent failed or was interrupted first: do not leave the child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    try:
        if os.waitstatus_to_exitcode(status) == 0:
            return [mine, marshal.loads(sent)]
    except (ValueError, EOFError, TypeError):
        pass
    return [mine, work(second)]


def manifest_oid(rows: Sequence[Sequence[Any]]) -> str:
    """The id ``Manifest(...).oid`` gives for these (path, oid, size, executable) rows (same bytes).

    Tuples are fine: ``json`` writes them as arrays, as it writes the manifest's lists.
    """
    blob = json.dumps({"v": MANIFEST_VERSION, "entries": rows}, separators=(",", ":")).encode()
    return f"{ALGORITHM}:{xxhash.xxh3_128_hexdigest(blob)}{DIR_SUFFIX}"


def _hash_files(paths: list[str]) -> list[str]:
    """The ids of many files; split over two processes when there are many."""
    if len(paths) < PARALLEL_MIN_FILES:
        return [hash_one_file(path) for path in paths]
    halves = in_two_processes(lambda part: [hash_one_file(path) for path in part], paths)
    return [oid for half in halves for oid in half]


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
        cached = self._load(rel)
        known_files = (cached.get("nfiles") or 0) if cached is not None else 0
        listing = list_folder(self.root, rel, expected_files=known_files) if is_dir else list_file(self.root, rel)
        if (cached is not None and cached.get("digest") == listing.digest and cached.get("dir") == is_dir
                and not want_manifest):
            return PathHash(cached["oid"], cached["size"], cached.get("nfiles"))
        listing.sort()
        table = self._load(rel, ".files") if cached is not None and cached.get("dir") == is_dir else None
        known: dict[str, tuple] = table.get("files", {}) if table is not None else {}
        names, nums = listing.names, listing.nums
        sizes, mtimes, inodes, modes = nums[0::4], nums[1::4], nums[2::4], nums[3::4]
        oids: list[str] = [""] * len(names)
        todo: list[int] = []
        for i, (name, size, mtime, ino) in enumerate(zip(names, sizes, mtimes, inodes, strict=True)):
            hit = known.get(name)
            if hit is not None and hit[4] is not None and hit[0] == size and hit[1] == mtime and hit[2] == ino:
                oids[i] = hit[4]
            else:
                todo.append(i)
        # Taken before any file is read: a file modified after it is not trusted next time.
        horizon = time.time_ns() - RACY_NS
        paths = [f"{full}/{names[i]}" for i in todo] if is_dir else [full] * len(todo)
        for i, oid in zip(todo, _hash_files(paths), strict=True):
            oids[i] = oid
        racy = max(mtimes, default=0) >= horizon
        kept = [oid if mtime < horizon else None for oid, mtime in zip(oids, mtimes, strict=True)] if racy else oids
        files = dict(zip(names, zip(sizes, mtimes, inodes, modes, kept, strict=True), strict=True))
        total = sum(sizes)
        manifest = None
        executable = stat_module.S_IXUSR
        if is_dir and want_manifest:
            manifest = Manifest(tuple(FileEntry(name, oid, size, bool(mode & executable))
                                      for name, oid, size, mode in zip(names, oids, sizes, modes, strict=True)))
            result = PathHash(manifest.oid, total, len(oids), manifest)
        elif is_dir:
            flags = [1 if mode & executable else 0 for mode in modes]
            result = PathHash(manifest_oid(list(zip(names, oids, sizes, flags, strict=True))), total, len(oids))
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
