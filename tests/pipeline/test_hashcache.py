"""Dep hashing: the same ids as the object store, and changes always seen."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

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


def _tree(folder, folder_link=True):  # type: ignore[no-untyped-def]
    """Nested folders, an executable, and a symlink to a file (and one to a folder) inside the tree."""
    for i in range(12):
        sub = folder / f"d{i % 4}" / f"e{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (folder / "top.txt").write_text("top")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    (folder / "d1" / "link.txt").symlink_to(folder / "top.txt")
    if folder_link:  # the pipeline follows it; the foundation hasher refuses it
        (folder / "d2" / "linked").symlink_to(folder / "d0")
    _age(folder)


def test_the_split_walk_lists_what_the_single_walk_lists(tmp_path):
    from shipyard.pipeline.hashcache import list_folder

    _tree(tmp_path / "data")
    single = list_folder(tmp_path, "data")
    split = list_folder(tmp_path, "data", expected_files=10**9)
    assert (split.names, split.nums.tobytes(), split.digest) == (single.names, single.nums.tobytes(), single.digest)
    assert len(single.names) == 12 + 2 + 1 + 3  # files, top-level files, the file link, the folder link's 3


def test_split_hashing_gives_the_ids_of_the_foundation_hasher(tmp_path, monkeypatch):
    from shipyard.pipeline import hashcache

    _tree(tmp_path / "data", folder_link=False)
    expected = Hasher(tmp_path).manifest("data").oid
    monkeypatch.setattr(hashcache, "PARALLEL_MIN_FILES", 4)  # split even this small folder
    cache = HashCache(tmp_path, tmp_path / "cache")
    first = cache.hash_path("data")  # no cache yet: the files are hashed in two halves
    again = cache.hash_path("data")  # the cache counts 15 files: the walk is split too
    (tmp_path / "data" / "d3" / "e0" / "f3.txt").write_text("changed")
    changed = cache.hash_path("data")
    assert first.oid == again.oid == expected and first.nfiles == 15
    assert changed.oid == Hasher(tmp_path).manifest("data").oid != expected


SPLIT_PROBE = """
import os
from shipyard.pipeline.hashcache import _can_fork, in_two_processes

assert _can_fork(), "Linux, two CPUs, no other thread: the split must really happen here"
parent = os.getpid()
halves = in_two_processes(lambda part: [os.getpid(), list(part)], [1, 2, 3, 4, 5])
assert halves[0] == [parent, [1, 2, 3]] and halves[1][1] == [4, 5] and halves[1][0] != parent, halves
calls = []

def fails_in_the_child(part):
    calls.append((os.getpid(), list(part)))
    if os.getpid() != parent:
        raise RuntimeError("lost in the child")
    return sum(part)

assert in_two_processes(fails_in_the_child, [1, 2, 3, 4]) == [3, 7]  # the parent redid [3, 4]
assert calls == [(parent, [1, 2]), (parent, [3, 4])], calls

held = os.open(".", os.O_RDONLY)  # e.g. the run lock: the child must not keep it alive

def is_open(_part):
    try:
        os.fstat(held)
    except OSError:
        return False
    return True

assert in_two_processes(is_open, [1, 2]) == [True, False]
print("SPLIT OK")
"""


def test_work_in_two_processes_runs_the_second_half_in_a_child_and_redoes_a_failed_one():
    # In a fresh interpreter, as the CLI runs: this test process may hold other tests' threads,
    # and then the split (rightly) does not fork.
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the split needs two CPUs")
    out = subprocess.run([sys.executable, "-c", SPLIT_PROBE], capture_output=True, text=True, timeout=60)
    assert "SPLIT OK" in out.stdout, out.stdout + out.stderr


def test_a_symlink_out_of_the_folder_is_an_error_in_either_half(tmp_path):
    from shipyard.errors import InputError
    from shipyard.pipeline.hashcache import list_folder

    _tree(tmp_path / "data")
    (tmp_path / "outside.txt").write_text("x")
    for sub in ("d0", "d3"):
        link = tmp_path / "data" / sub / "escape.txt"
        link.symlink_to(tmp_path / "outside.txt")
        for expected_files in (0, 10**9):
            try:
                list_folder(tmp_path, "data", expected_files=expected_files)
            except InputError as exc:
                assert f"data/{sub}/escape.txt is a symlink" in exc.message
            else:
                raise AssertionError("the escaping link was not reported")
        link.unlink()
