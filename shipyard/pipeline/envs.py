"""Per-stage Python environments, built with uv into a cache keyed by the resolved lock's hash.

A stage declares ``environment: {python: "3.11", requirements: src/requirements.txt}`` (resolved
with ``uv pip compile``) or ``environment: {python: "3.11", lock: src/requirements.lock}`` (a pinned
file, used as is). The resolved lock's hash is part of the stage's fingerprint, and names the
environment's folder in a cache shared by every project of the machine (``$SHIPYARD_ENV_CACHE``,
default ``~/.cache/shipyard/envs``): a second stage, run or project with the same lock builds
nothing. Resolutions are kept in the project's state folder per (python, requirements content), so
``shipyard status`` does not ask the package index again while the requirements file is unchanged.
``shipyard gc`` removes environments no run used for a while.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import xxhash

from shipyard.errors import ConfigError, UsageError

CACHE_ENV = "SHIPYARD_ENV_CACHE"
DONE = ".shipyard-env-complete"
USED = ".shipyard-env-used"


@dataclass(frozen=True)
class EnvUse:
    """A stage's declared environment: the Python version and a requirements or lock file (root-relative)."""

    python: str
    file: str
    locked: bool  # True: ``lock:`` (used as is); False: ``requirements:`` (resolved by uv)


@dataclass(frozen=True)
class Resolved:
    """A resolved environment: the pinned requirements text and its hash (the cache key)."""

    python: str
    lock: str

    @property
    def key(self) -> str:
        return xxhash.xxh3_128_hexdigest(f"python {self.python}\n{self.lock}".encode())


def default_python() -> str:
    """The Python version a stage environment gets when it names none: the one running Shipyard."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cache_root() -> Path:
    """Where environments are built (shared by every project of this user)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "shipyard" / "envs"


def uv_command() -> list[str]:
    """How to run uv here: on PATH, in ~/.local/bin (where ``make setup`` puts it), or as a module."""
    found = shutil.which("uv") or (str(Path.home() / ".local" / "bin" / "uv")
                                   if (Path.home() / ".local" / "bin" / "uv").exists() else None)
    if found:
        return [found]
    try:
        import uv  # noqa: F401

        return [sys.executable, "-m", "uv"]
    except ImportError:
        raise UsageError("stage environments are built with uv, which is not installed",
                         hint="pip install uv (or see https://docs.astral.sh/uv/)") from None


def resolve(root: Path, state_dir: Path, use: EnvUse, where: str) -> Resolved:
    """The stage's pinned requirements (resolving ``requirements:`` once per content and Python)."""
    path = root / use.file
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {use.file}: {exc.strerror}",
                          hint="environment.requirements / environment.lock name a file in the project") from None
    if use.locked:
        return Resolved(use.python, text)
    key = xxhash.xxh3_128_hexdigest(f"python {use.python}\n{text}".encode())
    saved = state_dir / "envs" / f"{key}.lock"
    if saved.exists():
        return Resolved(use.python, saved.read_text())
    done = subprocess.run([*uv_command(), "pip", "compile", str(path), "--python-version", use.python, "--quiet",
                           "--no-header", "--no-annotate"], capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise ConfigError(f"{where}: {use.file} does not resolve for Python {use.python}:\n"
                          + (done.stderr.strip() or done.stdout.strip()),
                          hint="fix the requirements (uv's message above says which); nothing ran")
    saved.parent.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(done.stdout)
    os.replace(tmp, saved)
    return Resolved(use.python, done.stdout)


def ensure(resolved: Resolved, echo: Callable[[str], None] = lambda _: None) -> Path:
    """The environment's folder, built first when missing (one builder at a time per environment)."""
    folder = cache_root() / resolved.key
    if (folder / DONE).exists():
        _touch(folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{resolved.key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / DONE).exists():  # another process built it while we waited
            _touch(folder)
            return folder
        _build(folder, resolved, echo)
    return folder


def _build(folder: Path, resolved: Resolved, echo: Callable[[str], None]) -> None:
    packages = sum(1 for line in resolved.lock.splitlines() if line.strip() and not line.lstrip().startswith(("#", "-")))
    echo(f"building the Python {resolved.python} environment {resolved.key[:12]} ({packages} package(s)) with uv")
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    uv = uv_command()
    made = subprocess.run([*uv, "venv", "--quiet", "--python", resolved.python, str(folder)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        raise ConfigError(f"cannot create a Python {resolved.python} environment:\n{made.stderr.strip()}",
                          hint="install that Python version, or change environment.python")
    lock = folder / "requirements.lock"
    lock.write_text(resolved.lock)
    done = subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"),
                           "-r", str(lock)], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ConfigError(f"installing the environment's packages failed:\n{done.stderr.strip()}",
                          hint="check the lock file's pins")
    (folder / DONE).write_text(f"{time.time()}\n")
    _touch(folder)
    echo(f"built environment {resolved.key[:12]} in {time.perf_counter() - started:.1f}s")


def _touch(folder: Path) -> None:
    try:
        (folder / USED).write_text(f"{time.time()}\n")
    except OSError:
        pass


def activate(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the environment's ``bin`` first on PATH, as ``source bin/activate`` would."""
    return {**env, "VIRTUAL_ENV": str(folder), "PATH": f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def collect(older_than_seconds: float, *, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Remove environments unused for ``older_than_seconds``; returns (folder, bytes) of each."""
    root = cache_root()
    removed: list[tuple[Path, int]] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        marker = folder / USED if (folder / USED).exists() else folder
        if now - marker.stat().st_mtime < older_than_seconds:
            continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
        removed.append((folder, size))
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
            (root / f"{folder.name}.lock").unlink(missing_ok=True)
    return removed
