"""Running one stage's command and committing its outputs; the Executor protocol.

``execute_stage`` is the whole life of a stage process, the same on every executor (a thread of
this process, or a Dask worker on another machine that sees the same project folder and object
store): run each command line through the shell with the stage's environment, stream its output
line by line (prefixed with the stage name) and keep it as a log object, measure CPU seconds and
peak memory of the whole process tree, and on success hash the outs and put them in the object
store. The runner (``pipeline/runner.py``) decides what to run and records results; an executor only
submits jobs and hands back futures.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

LineSink = Callable[[str, str, str], None]  # (stage, "out" | "err", line)
TAIL_LINES = 20
_POLL_S = 0.05


@dataclass(frozen=True)
class StageJob:
    """Everything a worker needs to run a stage (plain values: it travels to Dask workers)."""

    name: str
    cmds: tuple[str, ...]
    root: str
    cwd: str
    env: dict[str, str]
    outs: tuple[str, ...]  # root-relative
    objects_url: str
    hash_dir: str | None = None
    # (python, pinned requirements): the stage runs in that environment, built here when missing
    environment: tuple[str, str] | None = None


@dataclass
class OutHash:
    path: str
    oid: str
    size: int
    nfiles: int | None


@dataclass
class StageResult:
    """How a stage process ended, what it used, and (on success) what it produced."""

    name: str
    exit_code: int
    seconds: float
    cpu_seconds: float
    peak_memory_bytes: int
    log_oid: str | None
    stderr_tail: list[str] = field(default_factory=list)
    outs: list[OutHash] = field(default_factory=list)
    missing_outs: list[str] = field(default_factory=list)
    log_text: str = ""  # kept only when nobody streamed the output live (remote executors)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.missing_outs and self.error is None


class Executor(Protocol):
    """Runs stage jobs; ``submit`` returns at once with a future of the StageResult."""

    name: str
    streams_live: bool

    def submit(self, job: StageJob, sink: LineSink | None) -> Future[StageResult]: ...
    def cancel_all(self) -> None: ...
    def close(self) -> None: ...


def shell() -> list[str]:
    """The shell that runs command lines: bash when present (like DVC), else sh."""
    found = shutil.which("bash")
    return [found, "-c"] if found else ["/bin/sh", "-c"]


class _Meter:
    """Polls the RSS of a process tree; remembers the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(_POLL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


class _Running:
    """Process groups of running stages, so an interrupt can end them all."""

    lock = threading.Lock()
    groups: set[int] = set()

    @classmethod
    def kill_all(cls) -> None:
        with cls.lock:
            for pgid in list(cls.groups):
                try:
                    os.killpg(pgid, signal.SIGTERM)
                except OSError:
                    pass


def _run_line(cmd: str, job: StageJob, env: dict[str, str], sink: LineSink | None, log: list[str],
              log_lock: threading.Lock, tail: deque[str]) -> tuple[int, float, int]:
    proc = subprocess.Popen([*shell(), cmd], cwd=job.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with _Running.lock:
        _Running.groups.add(proc.pid)
    meter = _Meter(proc.pid)

    def pump(stream, kind: str) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with log_lock:
                log.append(f"{kind}| {line}")
                if kind == "err":
                    tail.append(line)
            if sink is not None:
                sink(job.name, kind, line)
        stream.close()

    pumps = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in pumps:
        t.start()
    # wait4 gives the rusage of the child and every descendant it waited for: the tree's CPU time.
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with _Running.lock:
        _Running.groups.discard(proc.pid)
    for t in pumps:
        t.join()
    meter.stop()
    cpu = usage.ru_utime + usage.ru_stime
    peak = max(meter.peak, usage.ru_maxrss * 1024)
    return proc.returncode, cpu, peak


def commit_outs(root: Path, outs: tuple[str, ...], objects_url: str, hash_dir: str | None) -> tuple[list[OutHash], list[str]]:
    """Hash the outs and put them (files and folder manifests) in the object store."""
    from shipyard.objects import ObjectStore
    from shipyard.pipeline.hashcache import HashCache

    hashes = HashCache(root, Path(hash_dir) if hash_dir else None)
    store = ObjectStore.open(objects_url)
    found: list[OutHash] = []
    missing: list[str] = []
    files: list[tuple[Path, str]] = []
    manifests = []
    for rel in outs:
        try:
            result = hashes.hash_path(rel, want_manifest=True)
        except FileNotFoundError:
            missing.append(rel)
            continue
        if result.manifest is not None:
            files.extend((root / rel / e.path, e.oid) for e in result.manifest.entries)
            manifests.append(result.manifest)
        else:
            files.append((root / rel, result.oid))
        found.append(OutHash(rel, result.oid, result.size, result.nfiles))
    if files:
        store.put_files(files)
    for manifest in manifests:
        store.put_manifest(manifest)
    return found, missing


def _activate(job: StageJob, env: dict[str, str], log: list[str], sink: LineSink | None
              ) -> tuple[dict[str, str], str | None]:
    """The stage's own environment, built on this worker when missing: (env with it active, error)."""
    from shipyard.errors import ShipyardError
    from shipyard.pipeline import envs

    assert job.environment is not None
    try:
        folder = envs.ensure(envs.Resolved(*job.environment), echo=lambda line: _say(job, line, log, sink))
    except ShipyardError as exc:
        return env, f"environment: {exc.message}"
    log.append(f"env| {folder}")
    return envs.activate(folder, env), None


def _say(job: StageJob, line: str, log: list[str], sink: LineSink | None) -> None:
    """A line of the stage's own making (not its command's): into its log, and live when streaming."""
    log.append(f"env| {line}")
    if sink is not None:
        sink(job.name, "err", line)


def execute_stage(job: StageJob, sink: LineSink | None = None) -> StageResult:
    """Run a stage's command lines in order (stopping at the first failure), then commit its outs."""
    from shipyard.objects import ObjectStore

    started = time.perf_counter()
    env = {**os.environ, **job.env}
    log: list[str] = []
    log_lock = threading.Lock()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    code, cpu, peak = 0, 0.0, 0
    error = None
    if job.environment is not None:
        env, error = _activate(job, env, log, sink)
        code = 1 if error else 0
    for cmd in job.cmds if error is None else ():
        log.append(f"cmd| {cmd}")
        try:
            code, used, top = _run_line(cmd, job, env, sink, log, log_lock, tail)
        except OSError as exc:
            code, used, top, error = 127, 0.0, 0, f"cannot start {cmd!r}: {exc.strerror}"
        cpu += used
        peak = max(peak, top)
        if code != 0:
            break
    outs: list[OutHash] = []
    missing: list[str] = []
    if code == 0 and error is None:
        try:
            outs, missing = commit_outs(Path(job.root), job.outs, job.objects_url, job.hash_dir)
        except Exception as exc:  # a failed commit is a failed stage, never a half-recorded one
            error = f"could not store the outputs: {exc}"
    text = "\n".join(log) + "\n"
    log_oid = None
    try:
        log_oid = ObjectStore.open(job.objects_url).put_bytes(text.encode("utf-8"))
    except Exception as exc:
        error = error or f"could not store the log: {exc}"
    return StageResult(job.name, code, time.perf_counter() - started, cpu, peak, log_oid, list(tail), outs, missing,
                       log_text=text if sink is None else "", error=error)
