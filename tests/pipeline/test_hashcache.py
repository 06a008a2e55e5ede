"""Dep hashing: the same ids as the object store, and changes always seen."""

from __future__ import annotations

import os
import time

from shipyard.hashing import Hasher
from shipyard.pipeline.hashcache import HashCache


def _age(path, seconds=10):  # type: ignore[no-untyped-def]
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            old = time.time() - seconds
            os.utime(os.path.join(dirpath, name), (old, old))


def test_ids_match_the_foundation_hasher(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "a0").write_text("zero")
    (folder / "a").mkdir()
    (folder / "a" / "x").write_text("x")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    ours = HashCache(tmp_path, tmp_path / "cache").hash_path("data")
    assert ours.oid == Hasher(tmp_path).manifest("data").oid
    assert ours.nfiles == 5
    (tmp_path / "one.txt").write_text("1")
    assert HashCache(tmp_path, None).hash_path("one.txt").oid == Hasher(tmp_path).hash_paths(["one.txt"])["one.txt"][0]


def test_changes_are_seen_through_the_cache(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(50):
        (folder / f"f{i}.txt").write_text(str(i))
    _age(folder)
    cache = HashCache(tmp_path, tmp_path / "cache")
    first = cache.hash_path("data").oid
    assert cache.hash_path("data").oid == first  # served from the listing digest
    (folder / "f7.txt").write_text("changed")
    second = cache.hash_path("data").oid
    assert second != first
    (folder / "f7.txt").unlink()
    assert cache.hash_path("data").oid not in (first, second)
    (folder / "new.txt").write_text("7")
    assert cache.hash_path("data").oid == HashCache(tmp_path, None).hash_path("data").oid


def test_same_size_rewrite_within_the_same_tick_is_seen(tmp_path):
    (tmp_path / "x.txt").write_text("aaaa")
    cache = HashCache(tmp_path, tmp_path / "cache")
    first = cache.hash_path("x.txt").oid
    st = os.stat(tmp_path / "x.txt")
    (tmp_path / "x.txt").write_text("bbbb")
    os.utime(tmp_path / "x.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert cache.hash_path("x.txt").oid != first
