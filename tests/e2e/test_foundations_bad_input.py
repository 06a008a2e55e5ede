"""Every bad input of the foundations, through the real ``shipyard`` binary: a clear ``error:`` line,
a ``hint:`` line, the right exit code, and nothing changed.

A read-only ``.shipyard/`` and a full disk are made for real where the machine allows it (a
read-only bind mount and a tiny tmpfs inside a private mount namespace: we run as root, so chmod
alone would not stop a write); otherwise the read-only case runs the command as ``nobody`` and the
full disk is simulated by injecting ENOSPC. Each test says which way it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import run_cli, shipyard_bin
from tests.server.live import free_port


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (outside the WAL side files) and a hash of its bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_clear_error(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("hint: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)


@pytest.fixture
def inited(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "proj"
    root.mkdir()
    assert run_cli("init", cwd=root).returncode == 0
    with open(root / "shipyard.yaml", "a") as handle:
        handle.write("# my edits\n")
    yield root


def test_malformed_yaml_names_the_line(inited: Path) -> None:
    (inited / "shipyard.yaml").write_text("pipeline:\n  stages: [a\n  b: c\n")
    before = snapshot(inited)
    result = run_cli("doctor", cwd=inited)
    assert_clear_error(result, 1, "doctor found problems: config")
    assert "shipyard.yaml:3:" in result.stdout and "malformed YAML" in result.stdout
    assert snapshot(inited) == before


def test_unknown_key_suggests_the_closest(inited: Path) -> None:
    (inited / "shipyard.yaml").write_text("pipeline:\n  stages:\n    train:\n      cmd: python t.py\n      dpes: [t.py]\n")
    result = run_cli("doctor", "--json", cwd=inited)
    assert result.returncode == 1
    config = {c["check"]: c for c in json.loads(result.stdout)}["config"]
    assert config["status"] == "fail"
    assert config["detail"].startswith("shipyard.yaml:5:7: pipeline.stages.train.dpes: unknown key (did you mean 'deps'")


def test_unset_environment_variable(inited: Path) -> None:
    (inited / "shipyard.yaml").write_text('notify:\n  - webhook: "${SHIPYARD_TEST_UNSET_HOOK}"\n')
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_TEST_UNSET_HOOK"}
    result = subprocess.run([shipyard_bin(), "doctor", "--json"], cwd=inited, env={**env, "CI": "true"},
                            capture_output=True, text=True, timeout=120)
    config = {c["check"]: c for c in json.loads(result.stdout)}["config"]
    assert "shipyard.yaml:2:14: notify.0.webhook: environment variable SHIPYARD_TEST_UNSET_HOOK is not set" in config["detail"]


@pytest.mark.parametrize("url, phrase", [
    ("mysql://root@127.0.0.1/db", "unknown scheme 'mysql'"),
    ("not a url", "is not a database URL"),
])
def test_store_url_with_unknown_scheme(tmp_path: Path, url: str, phrase: str) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    result = run_cli("audit", "verify", cwd=tmp_path, env={"SHIPYARD_STORE": url})
    assert_clear_error(result, 2, phrase, "postgresql+psycopg://")
    assert sorted(os.listdir(tmp_path)) == ["shipyard.yaml"]  # no .shipyard/ appeared
    doctor = run_cli("doctor", "--json", cwd=tmp_path, env={"SHIPYARD_STORE": url})
    store = {c["check"]: c for c in json.loads(doctor.stdout)}["store"]
    assert doctor.returncode == 1 and store["status"] == "fail" and phrase in store["detail"]


def test_postgres_on_a_closed_port(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    url = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test"
    result = run_cli("audit", "verify", cwd=tmp_path, env={"SHIPYARD_STORE": url}, timeout=60)
    assert_clear_error(result, 3, "cannot connect to PostgreSQL at", "Connection refused")


@pytest.mark.slow
def test_postgres_that_never_answers_times_out(tmp_path: Path) -> None:
    """A server that accepts TCP but never speaks: the 5 s connect timeout ends it (no hang)."""
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody ever answers
        url = f"postgresql+psycopg://root@127.0.0.1:{silent.getsockname()[1]}/test"
        started = time.monotonic()
        result = run_cli("audit", "verify", cwd=tmp_path, env={"SHIPYARD_STORE": url}, timeout=60)
        elapsed = time.monotonic() - started
    assert_clear_error(result, 3, "cannot connect to PostgreSQL", "connect timeout 5 s")
    print(f"silent PostgreSQL: error after {elapsed:.1f} s (process start included)")


def test_corrupted_object_is_named(inited: Path) -> None:
    from shipyard.objects import ObjectStore, key_of

    objects = ObjectStore.open(inited / ".shipyard" / "objects")
    good, bad = objects.put_bytes_many([b"fine", b"model weights"])
    path = inited / ".shipyard" / "objects" / key_of(bad)
    path.chmod(0o644)
    path.write_bytes(b"model weightz")
    result = run_cli("doctor", "--json", "--verify-objects", cwd=inited)
    assert result.returncode == 1
    check = {c["check"]: c for c in json.loads(result.stdout)}["objects"]
    assert check["status"] == "fail" and bad in check["detail"] and good not in check["detail"]
    assert "1 of 2 objects are corrupt" in check["detail"]
    plain = run_cli("doctor", "--verify-objects", cwd=inited)
    assert_clear_error(plain, 1, "doctor found problems: objects")


# -- read-only .shipyard/ and a full disk ----------------------------------------------------------

@cache
def private_mounts() -> str | None:
    """Why mounts in a private namespace are impossible here, or None when they work."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is not installed"
    probe = tempfile.mkdtemp()
    try:
        result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                 f"mount -t tmpfs -o size=64k tmpfs {probe} && umount {probe}"],
                                capture_output=True, text=True, timeout=30)
    finally:
        os.rmdir(probe)
    return None if result.returncode == 0 else f"cannot mount in a private namespace: {result.stderr.strip()}"


def run_read_only(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``shipyard ARGS`` in ``root`` with ``root/.shipyard`` mounted read-only (private namespace)."""
    state = str(root / ".shipyard")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", state,
                           shipyard_bin(), *args], cwd=root, env={**os.environ, "CI": "true"},
                          capture_output=True, text=True, timeout=120)


def run_as_nobody(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``shipyard ARGS`` as the unprivileged user nobody, who may not write ``.shipyard/``."""
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", shipyard_bin(), *args],
                          cwd=root, env={**os.environ, "CI": "true", "HOME": str(root)},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def read_only_runner(tmp_path: Path):  # type: ignore[no-untyped-def]
    """(project root, runner): a project whose .shipyard/ the runner's commands cannot write."""
    if private_mounts() is None:
        root = tmp_path / "proj"
        root.mkdir()
        yield root, run_read_only
        return
    if os.geteuid() == 0 and shutil.which("setpriv"):
        # nobody must reach the project: use a world-readable folder, the project root writable by
        # nobody (as a user's checkout would be) and .shipyard/ owned by root.
        root = Path(tempfile.mkdtemp(prefix="shipyard-ro-"))
        root.chmod(0o777)
        try:
            yield root, run_as_nobody
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    pytest.skip(f"no way to make .shipyard/ read-only for a root process here ({private_mounts()}; no setpriv)")


@pytest.mark.slow
def test_read_only_state_folder(read_only_runner) -> None:  # type: ignore[no-untyped-def]
    root, runner = read_only_runner
    assert run_cli("init", cwd=root).returncode == 0
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n# my edits\n")
    before = {**snapshot(root), "listing": sorted(p.name for p in (root / ".shipyard").iterdir())}
    print(f"read-only .shipyard/ via {runner.__name__}")

    init = runner(root, "init", "--force")
    assert_clear_error(init, 3, "cannot be opened for writing", "make .shipyard/ writable")
    verify = runner(root, "audit", "verify")
    assert_clear_error(verify, 3, "cannot be opened for writing")
    doctor = runner(root, "doctor", "--json")
    assert doctor.returncode == 1
    checks = {c["check"]: c for c in json.loads(doctor.stdout)}
    assert checks["store"]["status"] == "fail" and checks["objects"]["status"] == "fail"
    assert "cannot write object xxh128/" in checks["objects"]["detail"]

    after = {**snapshot(root), "listing": sorted(p.name for p in (root / ".shipyard").iterdir())}
    assert after == before
    assert "# my edits" in (root / "shipyard.yaml").read_text()
    ok = run_cli("audit", "verify", cwd=root)
    assert ok.returncode == 0 and "1 events" in ok.stdout


FULL_DISK_DRIVER = r"""
import json, os, subprocess, sys
root, shipyard = sys.argv[1], sys.argv[2]
env = {**os.environ, "CI": "true"}
out = {}
def cli(name, *args):
    r = subprocess.run([shipyard, *args], cwd=root, env=env, capture_output=True, text=True)
    out[name] = [r.returncode, r.stdout, r.stderr]
state = os.path.join(root, ".shipyard")
os.makedirs(state)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", state], check=True)
cli("init", "init")
with open(os.path.join(root, "shipyard.yaml"), "a") as f:
    f.write("# my edits\n")
fd = os.open(os.path.join(state, "filler"), os.O_WRONLY | os.O_CREAT)
try:  # fill the disk to the last byte
    while True:
        os.write(fd, b"\0" * 4096)
except OSError:
    pass
try:
    while True:
        os.write(fd, b"\0")
except OSError:
    pass
os.close(fd)
out["yaml_before"] = open(os.path.join(root, "shipyard.yaml")).read()
cli("init_full", "init", "--force")
out["yaml_after"] = open(os.path.join(root, "shipyard.yaml")).read()
put = subprocess.run([sys.executable, "-c",
    "import os, sys\nfrom shipyard.objects import ObjectStore\nfrom shipyard.errors import StorageFull\n"
    "o = ObjectStore.open(sys.argv[1])\n"
    "try:\n    o.put_bytes(os.urandom(300000))\nexcept StorageFull as e:\n    print('StorageFull:', e.message, '|', e.hint)\n"
    "print('objects:', list(o.backend.list()))\n", os.path.join(state, "objects")], capture_output=True, text=True)
out["put"] = [put.returncode, put.stdout, put.stderr]
out["temp_files"] = [n for d, _, fs in os.walk(state) for n in fs if n.startswith(".tmp-")]
cli("doctor_full", "doctor", "--json")
os.remove(os.path.join(state, "filler"))
cli("verify_after", "audit", "verify")
cli("doctor_after", "doctor", "--json")
subprocess.run(["umount", state])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_full_disk_on_a_tiny_tmpfs(tmp_path: Path) -> None:
    reason = private_mounts()
    if reason:
        pytest.skip(f"{reason}; the full disk is covered by ENOSPC injection (test_full_disk_injected)")
    root = tmp_path / "proj"
    root.mkdir()
    driver = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", FULL_DISK_DRIVER,
                             str(root), shipyard_bin()], capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    out = json.loads(driver.stdout)
    assert out["init"][0] == 0, out["init"]
    code, _, stderr = out["init_full"]
    assert_clear_error(subprocess.CompletedProcess([], code, "", stderr), 3, "out of space", "hint: free some disk space")
    assert out["yaml_after"] == out["yaml_before"] and "# my edits" in out["yaml_after"]
    assert "StorageFull: no space left on the device" in out["put"][1], out["put"]
    assert "objects: []" in out["put"][1] and out["temp_files"] == []
    assert out["doctor_full"][0] == 1
    checks = {c["check"]: c for c in json.loads(out["doctor_full"][1])}
    assert checks["objects"]["status"] == "fail" and "no space left" in checks["objects"]["detail"]
    assert out["verify_after"][0] == 0 and "1 events" in out["verify_after"][1], out["verify_after"]
    after = {c["check"]: c["status"] for c in json.loads(out["doctor_after"][1])}
    assert after.pop("disk") == "fail"  # a 2 MiB disk is rightly reported as nearly full
    assert set(after.values()) == {"ok"}, out["doctor_after"]


INJECT = r"""
import errno, os, sys
real_fsync = os.fsync
def full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")
os.fsync = full
from shipyard.cli.main import run
run(sys.argv[1:])
"""


@pytest.mark.slow
def test_full_disk_injected(inited: Path) -> None:
    """Where no tmpfs can be mounted, ENOSPC is injected at fsync: same error, nothing changed."""
    before = snapshot(inited)
    result = subprocess.run([sys.executable, "-c", INJECT, "init", "--force"], cwd=inited,
                            env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=120)
    assert_clear_error(result, 3, "no space left on the device", "hint: free some disk space")
    assert snapshot(inited) == before
    assert not list(inited.glob(".*shipyard-tmp"))
    ok = run_cli("audit", "verify", cwd=inited)
    assert ok.returncode == 0 and "1 events" in ok.stdout
