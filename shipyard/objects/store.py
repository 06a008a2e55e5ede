"""The content-addressed object store: hash, shard, skip what exists, verify on every read.

Keys are ``<algorithm>/<first two hex>/<rest>`` (``.dir`` kept for manifests). Objects are stored
raw so a restore is a plain copy (or a hard link on the same disk); every read is hashed again and a
mismatch raises ObjectCorrupt naming the object and both hashes (Invariant 3).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shipyard.errors import ObjectCorrupt
from shipyard.hashing import (
    DIR_SUFFIX,
    Hasher,
    Manifest,
    hash_bytes,
    hash_file,
    is_dir_id,
    split_id,
)
from shipyard.objects.backends import Backend, open_backend

_WORKERS = 16


def key_of(oid: str) -> str:
    """The backend key of an object id (validates the id, so no key can escape the store)."""
    algorithm, digest = split_id(oid)
    suffix = DIR_SUFFIX if is_dir_id(oid) else ""
    return f"{algorithm}/{digest[:2]}/{digest[2:]}{suffix}"


class ObjectStore:
    """Content-addressed blobs, files and folders over a Backend. Batch calls are the primitive."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def open(cls, url_or_path: str | os.PathLike[str]) -> ObjectStore:
        return cls(open_backend(url_or_path))

    # -- writing -------------------------------------------------------------------------
    def put_bytes_many(self, blobs: Sequence[bytes]) -> list[str]:
        """Store many byte strings; returns their ids in order, skipping ones already present."""
        oids = [hash_bytes(b) for b in blobs]
        present = self.backend.exists_many(key_of(o) for o in oids)
        todo: dict[str, bytes] = {}
        for oid, blob in zip(oids, blobs, strict=True):
            key = key_of(oid)
            if not present[key]:
                todo.setdefault(key, blob)
        self.backend.write_many(list(todo.items()))
        return oids

    def put_bytes(self, data: bytes) -> str:
        return self.put_bytes_many([data])[0]

    def put_manifest(self, manifest: Manifest) -> str:
        """Store a folder's manifest under its ``.dir`` id (its files must be stored too)."""
        key = key_of(manifest.oid)
        if not self.backend.exists_many([key])[key]:
            self.backend.write(key, manifest.to_bytes())
        return manifest.oid

    def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        """Store files whose ids are already known (from the Hasher), skipping present ones."""
        present = self.backend.exists_many(key_of(oid) for _, oid in files)
        todo = {key_of(oid): Path(path) for path, oid in files if not present[key_of(oid)]}
        self.backend.write_many(list(todo.items()))

    def put_path(self, path: Path, hasher: Hasher | None = None) -> str:
        """Store a file or a folder (its manifest and every file in it); returns the id."""
        if path.is_dir():
            hasher = hasher or Hasher(path.parent)
            manifest = hasher.manifest(path.resolve().relative_to(hasher.root.resolve()).as_posix())
            self.put_files([(path / e.path, e.oid) for e in manifest.entries])
            return self.put_manifest(manifest)
        oid = hash_file(path)
        self.put_files([(path, oid)])
        return oid

    # -- reading -------------------------------------------------------------------------
    def get_many(self, oids: Iterable[str]) -> dict[str, bytes]:
        """Read and verify many objects; a mismatch raises ObjectCorrupt.

        One object is read on the calling thread: a pool costs more than the read itself.
        """
        oids = list(dict.fromkeys(oids))
        if len(oids) == 1:
            return {oids[0]: self.get_bytes(oids[0])}
        with ThreadPoolExecutor(max_workers=min(_WORKERS, len(oids) or 1)) as pool:
            blobs = pool.map(lambda oid: self.backend.read(key_of(oid)), oids)
            out = dict(zip(oids, blobs, strict=True))
        for oid, blob in out.items():
            self._verify(oid, hash_bytes(blob))
        return out

    def get_bytes(self, oid: str) -> bytes:
        """Read and verify one object (ObjectCorrupt on a mismatch)."""
        blob = self.backend.read(key_of(oid))
        self._verify(oid, hash_bytes(blob))
        return blob

    def has_many(self, oids: Iterable[str]) -> dict[str, bool]:
        oids = list(oids)
        present = self.backend.exists_many(key_of(o) for o in oids)
        return {o: present[key_of(o)] for o in oids}

    def manifest(self, oid: str) -> Manifest:
        return Manifest.from_bytes(self.get_bytes(oid))

    def checkout(self, oid: str, target: Path) -> None:
        """Materialise a file or folder at ``target`` atomically, verifying every file."""
        staging = target.with_name(f".{target.name}.shipyard-tmp")
        _remove(staging)
        try:
            if is_dir_id(oid):
                manifest = self.manifest(oid)  # its entry paths were checked to stay inside
                staging.mkdir(parents=True)
                with ThreadPoolExecutor(max_workers=min(_WORKERS, len(manifest.entries) or 1)) as pool:
                    list(pool.map(lambda e: self._checkout_file(e.oid, staging / e.path, e.executable),
                                  manifest.entries))
            else:
                self._checkout_file(oid, staging, False)
        except BaseException:
            _remove(staging)  # a failed checkout leaves the target as it was, and no debris
            raise
        _replace(staging, target)

    def _checkout_file(self, oid: str, dest: Path, executable: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = self.backend.local_path(key_of(oid))
        if local is not None and local.exists():
            shutil.copyfile(local, dest)
            self._verify(oid, hash_file(dest))
        else:
            dest.write_bytes(self.get_bytes(oid))
        if executable:
            dest.chmod(dest.stat().st_mode | 0o111)

    def verify_all(self) -> list[str]:
        """Ids of every object whose content no longer matches its name."""
        bad = []
        for key in self.backend.list():
            parts = key.split("/")
            if len(parts) != 3:
                continue
            oid = f"{parts[0]}:{parts[1]}{parts[2]}"
            local = self.backend.local_path(key)
            actual = hash_file(local) if local is not None else hash_bytes(self.backend.read(key))
            if actual != oid.removesuffix(DIR_SUFFIX):
                bad.append(oid)
        return bad

    def _verify(self, oid: str, actual: str) -> None:
        expected = oid.removesuffix(DIR_SUFFIX)
        if actual != expected:
            raise ObjectCorrupt(
                f"object {oid} is corrupt: its content hashes to {actual}",
                hint=f"delete {self.backend.url}/{key_of(oid)} and re-create it (re-run the stage that made "
                     "it, or copy it from a store that has a good copy); 'shipyard doctor --verify-objects' "
                     "lists every corrupt object",
            )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(staging: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    os.replace(staging, target)
