"""The Python tracking API: ``import shipyard; shipyard.log_metric("loss", 0.3, step=1)``.

Inside a pipeline stage (``SHIPYARD_RUN_ID`` set) every call attaches to the stage's run with no
code; elsewhere the first call starts a run (or use ``with shipyard.start_run():``). Metric points
go to an in-memory buffer that a background thread writes in batches of up to 1000; the buffer is
written at ``end_run``, at interpreter exit, on an uncaught exception and on SIGTERM/SIGINT.
Params and tags are written at once (a conflicting param is an error at the call that caused it).
"""

from __future__ import annotations

import atexit
import getpass
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.errors import InputError, UsageError
from shipyard.processes import this_host
from shipyard.store.runs import MetricValue, now_ms
from shipyard.tracking import validation as v
from shipyard.tracking.buffer import MetricBuffer

__all__ = [
    "ActiveRun", "active_run", "end_run", "flush", "log_artifact", "log_artifacts", "log_input",
    "log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags", "start_run",
]


class ActiveRun:
    """A run this process logs to. A context manager: leaving it ends the run (FAILED on error)."""

    def __init__(self, run_id: str, *, owned: bool, parent: ActiveRun | None = None) -> None:
        self.run_id = run_id
        self.owned = owned  # False when attached to a run someone else (the pipeline) ends
        self.parent = parent
        self.started = time.time()
        self._cpu0 = time.process_time()
        self.params: dict[str, str] = {}

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        _end(self, status)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id}{'' if self.owned else ' (attached)'}>"

    def system_metrics(self) -> list[MetricValue]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        peak_kb = usage.ru_maxrss
        return [
            MetricValue("system/cpu_seconds", round(time.process_time() - self._cpu0, 6)),
            MetricValue("system/peak_memory_mb", round(peak_kb / 1024, 3)),
            MetricValue("system/wall_seconds", round(time.time() - self.started, 6)),
        ]


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.backend: Any = None
        self.root: Path | None = None
        self.buffer: MetricBuffer | None = None
        self.stack: list[ActiveRun] = []
        self.exit_status = "FINISHED"
        self.hooks_installed = False
        self.pid = os.getpid()


_state = _State()


def _backend() -> Any:
    if _state.backend is None or _state.pid != os.getpid():
        with _state.lock:
            if _state.pid != os.getpid():  # forked: start over, the parent's buffer is not ours
                _state.__init__()  # type: ignore[misc]
            if _state.backend is None:
                from shipyard.tracking.backends import open_backend

                _state.backend, _state.root = open_backend()
                _state.buffer = MetricBuffer(lambda run_id, points, params: _state.backend.write(run_id, points, params, {}))
                _install_hooks()
    return _state.backend


def _buffer() -> MetricBuffer:
    _backend()
    assert _state.buffer is not None
    return _state.buffer


def _install_hooks() -> None:
    if _state.hooks_installed:
        return
    _state.hooks_installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        _state.exit_status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGINT: mark the runs KILLED and leave through SystemExit so atexit writes the buffer."""
    _state.exit_status = "KILLED"
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _at_exit() -> None:
    if _state.pid != os.getpid() or _state.buffer is None:
        return
    status = _state.exit_status
    while _state.stack:
        run = _state.stack[-1]
        try:
            _end(run, status)
        except Exception as exc:
            print(f"shipyard: could not end run {run.run_id}: {exc}", file=sys.stderr)
            _state.stack.pop()
    _state.buffer.close()


def _default_experiment() -> str:
    name = os.environ.get("SHIPYARD_EXPERIMENT")
    if name:
        return name
    return _state.root.name if _state.root is not None else Path.cwd().name


def start_run(name: str | None = None, *, experiment: str | None = None, run_id: str | None = None,
              parent_run_id: str | None = None, nested: bool = False,
              tags: Mapping[str, object] | None = None) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active one.

    Inside a pipeline stage, ``start_run()`` returns the stage's run; ``nested=True`` starts a child
    of the active run instead. Use it as a context manager to end it (FAILED on an exception).
    """
    backend = _backend()
    with _state.lock:
        env_run = os.environ.get("SHIPYARD_RUN_ID")
        if _state.stack and not nested:
            raise UsageError(f"run {_state.stack[-1].run_id} is already active",
                             hint="call shipyard.end_run() first, or pass nested=True for a child run")
        if run_id is None and env_run and not nested and not _state.stack:
            run_id = env_run
        if run_id is not None:
            backend.check_run(run_id)
            run = ActiveRun(run_id, owned=run_id != env_run)
            if tags:
                backend.write(run_id, [], {}, v.check_tags(tags))
        else:
            parent = parent_run_id or (_state.stack[-1].run_id if _state.stack else env_run if nested else None)
            from shipyard.tracking.gitinfo import git_info

            root = _state.root or Path.cwd()
            name = name or os.environ.get("SHIPYARD_STAGE") or Path(sys.argv[0] or "").stem or None
            new_id = backend.create_run(
                experiment=experiment or _default_experiment(), name=name, parent_run_id=parent,
                tags=dict(tags or {}), source="stage" if os.environ.get("SHIPYARD_STAGE") else "api",
                user=_user(), host=this_host(), git=git_info(root),
            )
            run = ActiveRun(new_id, owned=True)
        _state.stack.append(run)
        return run


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def active_run() -> ActiveRun | None:
    """The run calls log to now (attaching to the pipeline stage's run when there is one)."""
    if _state.stack:
        return _state.stack[-1]
    if os.environ.get("SHIPYARD_RUN_ID"):
        return _current()
    return None


def _current() -> ActiveRun:
    if _state.stack and _state.pid == os.getpid():
        return _state.stack[-1]
    return start_run()


def end_run(status: str = "FINISHED") -> None:
    """End the active run: write its buffered metrics, system metrics, status and end time."""
    if _state.stack:
        _end(_state.stack[-1], status)


def _end(run: ActiveRun, status: str) -> None:
    with _state.lock:
        if run not in _state.stack:
            return
        buffer = _buffer()
        backend = _backend()
        if run.owned:  # its last points, system metrics and status in one write
            points, params = buffer.take(run.run_id)
            try:
                while len(points) + len(params) > buffer.batch_size - 10 or len(params) > v.MAX_PARAMS_PER_BATCH:
                    # leave room for the system metrics in the last batch
                    some = dict(list(params.items())[:v.MAX_PARAMS_PER_BATCH])
                    room = buffer.batch_size - len(some)
                    backend.write(run.run_id, points[:room], some, {})
                    points = points[room:]
                    params = {k: val for k, val in params.items() if k not in some}
                backend.finish(run.run_id, points + run.system_metrics(), status, now_ms(), params)
            except BaseException:
                buffer.put_back(run.run_id, points, params)
                raise
        else:
            buffer.flush(run.run_id)
        _state.stack.remove(run)
        buffer.raise_deferred()


def flush() -> None:
    """Write every buffered metric now (normally done for you)."""
    if _state.buffer is not None:
        _state.buffer.flush()


def log_metric(key: str, value: float, step: int | None = None, *, timestamp: int | None = None) -> None:
    """Record one point of a metric; returns at once, the write happens in the background."""
    if not (isinstance(key, str) and 0 < len(key) <= v.MAX_KEY_LENGTH):
        v.check_key(key, "metric")
    number = v.check_metric_value(value, key)
    run = _current()
    _buffer().add(run.run_id, MetricValue(key, number, 0 if step is None else int(step),
                                          timestamp if timestamp is not None else int(time.time() * 1000)))


def log_metrics(metrics: Mapping[str, float], step: int | None = None, *, timestamp: int | None = None) -> None:
    """Record several metrics at one step."""
    stamp = timestamp if timestamp is not None else now_ms()
    points = [MetricValue(v.check_key(k, "metric"), v.check_metric_value(val, k), 0 if step is None else int(step), stamp)
              for k, val in metrics.items()]
    run = _current()
    _buffer().add_many(run.run_id, points)


def log_param(key: str, value: object) -> None:
    log_params({key: value})


def log_params(params: Mapping[str, object]) -> None:
    """Record params (immutable: the same value again is fine, a different one raises InputError)."""
    clean = v.check_params(params)
    run = _current()
    for key, value in clean.items():
        if run.params.get(key, value) != value:
            raise InputError(f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                             f"value='{run.params[key]}' for run ID='{run.run_id}'. Attempted logging new value '{value}'.",
                             hint="params cannot change: log a metric or a tag for values that change, or start a new run")
    todo = {k: val for k, val in clean.items() if run.params.get(k) != val}
    if run.owned:  # a run this process created: the check above saw every param; write with the metrics
        _buffer().add_params(run.run_id, todo)
    else:
        items = list(todo.items())
        for start in range(0, len(items), v.MAX_PARAMS_PER_BATCH):
            _backend().write(run.run_id, [], dict(items[start:start + v.MAX_PARAMS_PER_BATCH]), {})
    run.params.update(todo)


def set_tag(key: str, value: object) -> None:
    set_tags({key: value})


def set_tags(tags: Mapping[str, object]) -> None:
    """Set (or overwrite) tags of the active run."""
    clean = v.check_tags(tags)
    run = _current()
    items = list(clean.items())
    for start in range(0, len(items), v.MAX_TAGS_PER_BATCH):
        _backend().write(run.run_id, [], {}, dict(items[start:start + v.MAX_TAGS_PER_BATCH]))


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Store a file (or a folder, recursively) in the object store and record it on the run."""
    from shipyard.tracking.service import artifact_files

    run = _current()
    _backend().log_artifacts(run.run_id, artifact_files(Path(local_path), artifact_path))


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Store every file under a folder."""
    log_artifact(local_dir, artifact_path)


def log_input(name: str, *, digest: str | None = None, source: str | None = None,
              context: str = "training", path: str | os.PathLike[str] | None = None,
              source_type: str | None = None, schema: str | None = None, profile: str | None = None) -> None:
    """Record a dataset the run read: name, digest (hashed from ``path`` when not given), source, context."""
    if digest is None:
        if path is None:
            raise InputError(f"log_input({name!r}) needs a digest or a path to hash",
                             hint="pass path='data/train.parquet' (file or folder) or digest='...'")
        from shipyard.hashing import Hasher, hash_file

        target = Path(path)
        if target.is_dir():
            digest = Hasher(target.parent).manifest(target.name).oid
        elif target.is_file():
            digest = hash_file(target)
        else:
            raise InputError(f"log_input({name!r}): {target} does not exist")
        source = source or str(path)
        source_type = source_type or "local"
    run = _current()
    _backend().log_inputs(run.run_id, [{"name": name, "digest": digest, "context": context, "source": source,
                                        "source_type": source_type, "schema": schema, "profile": profile}])
