"""The pipeline's records of a run-cache restore, written with the standard library's sqlite3.

Importing SQLAlchemy and the store's tables costs more than a whole restore (DESIGN.md, "Import
costs"). A restore writes a handful of rows (the pipeline run, the restored stage's child run with
its params, tags and metrics, the stage execution), so the runner writes them here when it can, in
the same tables and transactions the repositories (``store.runs``, ``store.pipeline``) use. It can
when the store is the embedded SQLite file, it exists, its schema is at the migration files' heads
and the rows need nothing more (no experiment to create, no dataset version to link); otherwise
``open_lite`` or the caller says so and the runner opens the full store.

``file_heads`` (the heads read from the migration files) lives here, without SQLAlchemy, so this
check and ``store.migrate`` use the same reader.
"""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipyard.processes import dead_owner

MIGRATIONS = Path(__file__).with_name("migrations")
# defined here, without SQLAlchemy; store.runs takes them from this module
DEFAULT_EXPERIMENT = "Default"
MAX_DOUBLE = 1.7976931348623157e308
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class StageOutcome:
    """How one stage execution ended, as the runner reports it."""

    status: str
    exit_code: int | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    log_oid: str | None = None
    reason: str | None = None


def file_heads(folder: Path = MIGRATIONS / "versions") -> frozenset[str] | None:
    """The heads read from the migration files without alembic; None when a file is not understood.

    Each file must assign ``revision`` and ``down_revision`` literals (alembic's template does);
    a head is a revision that no other file names as its ``down_revision``.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith(("_", "."))]
        for name in names:
            found = dict(m.groups() for m in _REVISION_LINE.finditer((folder / name).read_text(encoding="utf-8")))
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found["down_revision"])
            if not isinstance(revision, str):
                return None
            revisions.add(revision)
            parents.update([down] if isinstance(down, str) else (down or ()))
    except (OSError, KeyError, ValueError, SyntaxError, TypeError):
        return None
    return frozenset(revisions - parents) if revisions else None


def now_ms() -> int:
    return int(time.time() * 1000)


def finite(value: float) -> float:
    """Infinities are kept as +/- the largest double (as MLflow stores them; SQL has no infinity)."""
    return max(-MAX_DOUBLE, min(MAX_DOUBLE, float(value)))


def open_lite(state_dir: Path) -> LiteStore | None:
    """The embedded store over sqlite3 when the restore records can go through it, else None
    (SHIPYARD_STORE set, no store yet, a schema that is not at the heads, or any sqlite3 error)."""
    if os.environ.get("SHIPYARD_STORE"):
        return None
    path = state_dir / "shipyard.db"
    wanted = file_heads()
    if wanted is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        # the same connection settings as store.engine's SQLite engine
        for pragma in ("busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        found = frozenset(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
        experiment = conn.execute("SELECT id FROM experiments WHERE name = ?", (DEFAULT_EXPERIMENT,)).fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if found != wanted or experiment is None:
        conn.close()
        return None
    return LiteStore(conn, experiment[0])


class LiteStore:
    """Write transactions on the embedded store for the runner's restore records."""

    def __init__(self, conn: sqlite3.Connection, default_experiment_id: int) -> None:
        self.conn = conn
        self.default_experiment_id = default_experiment_id

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE, as the store's writers take it): commits or rolls back."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def links_datasets(self, oids: Sequence[str]) -> bool:
        """True when a dataset version has one of these content ids (linking it needs the full store)."""
        if not oids:
            return False
        marks = ",".join("?" * len(oids))
        return self.conn.execute(f"SELECT 1 FROM dataset_versions WHERE oid IN ({marks}) LIMIT 1",
                                 list(oids)).fetchone() is not None


# -- the rows, as store.runs and store.pipeline write them -------------------------------------------
def mark_interrupted(conn: sqlite3.Connection) -> list[str]:
    """``store.pipeline.mark_interrupted``: close runs a killed runner left RUNNING; their ids."""
    running = conn.execute("SELECT p.id, r.host, p.pid, p.started_at FROM pipeline_runs p JOIN runs r ON r.id = p.id "
                           "WHERE p.status = 'RUNNING'").fetchall()
    stale = [rid for rid, host, pid, started in running if dead_owner(host, pid, started)]
    if not stale:
        return []
    stamp, marks = now_ms(), ",".join("?" * len(stale))
    conn.execute(f"UPDATE pipeline_runs SET status = 'KILLED', ended_at = ? WHERE id IN ({marks})", [stamp, *stale])
    children = [r[0] for r in conn.execute(
        f"SELECT run_id FROM stage_executions WHERE pipeline_run_id IN ({marks}) AND status = 'RUNNING' "
        "AND run_id IS NOT NULL", stale)]
    conn.execute(f"UPDATE stage_executions SET status = 'KILLED', ended_at = ?, reason = 'the runner was killed' "
                 f"WHERE pipeline_run_id IN ({marks}) AND status = 'RUNNING'", [stamp, *stale])
    ids = [*stale, *children]
    conn.execute(f"UPDATE runs SET status = 'KILLED', end_time = ? WHERE id IN ({','.join('?' * len(ids))}) "
                 "AND status = 'RUNNING'", [stamp, *ids])
    return stale


def create_run(conn: sqlite3.Connection, *, run_id: str, experiment_id: int, name: str, parent_run_id: str | None,
               source: str, tags: Mapping[str, str], git: Mapping[str, object], host: str | None = None) -> None:
    """``store.runs.create_run`` of a new run (its id is fresh, so its tags are plain inserts)."""
    dirty = git.get("git_dirty")
    conn.execute(
        "INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, parent_run_id, source, user, host, "
        "git_commit, git_branch, git_dirty, lifecycle_stage) VALUES (?, ?, ?, 'RUNNING', ?, NULL, ?, ?, NULL, ?, "
        "?, ?, ?, 'active')",
        (run_id, experiment_id, name, now_ms(), parent_run_id, source, host, git.get("git_commit"),
         git.get("git_branch"), None if dirty is None else int(bool(dirty))))
    conn.executemany("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)",
                     [(run_id, k, str(v)) for k, v in tags.items()])


def log_params(conn: sqlite3.Connection, run_id: str, params: Mapping[str, object]) -> None:
    """The params of a new run (no earlier value can conflict)."""
    conn.executemany("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)",
                     [(run_id, k, str(v)) for k, v in params.items()])


def start_pipeline_run(conn: sqlite3.Connection, run_id: str, *, targets: Sequence[str], executor: str, jobs: int,
                       pid: int | None) -> None:
    conn.execute("INSERT INTO pipeline_runs (id, status, started_at, ended_at, targets, executor, jobs, pid) "
                 "VALUES (?, 'RUNNING', ?, NULL, ?, ?, ?, ?)", (run_id, now_ms(), " ".join(targets), executor, jobs, pid))


def start_stage(conn: sqlite3.Connection, pipeline_run_id: str, stage: str, run_id: str, fingerprint: str) -> int:
    """A RUNNING stage execution; its id."""
    cursor = conn.execute("INSERT INTO stage_executions (pipeline_run_id, run_id, stage, status, started_at, "
                          "fingerprint, cache_hit) VALUES (?, ?, ?, 'RUNNING', ?, ?, 0)",
                          (pipeline_run_id, run_id, stage, now_ms(), fingerprint))
    return int(cursor.lastrowid or 0)


def finish_stage(conn: sqlite3.Connection, execution_id: int, outcome: StageOutcome, *, cache_hit: bool) -> None:
    conn.execute("UPDATE stage_executions SET status = ?, ended_at = ?, exit_code = ?, cpu_seconds = ?, "
                 "peak_memory_bytes = ?, log_oid = ?, reason = ?, cache_hit = ? WHERE id = ?",
                 (outcome.status, now_ms(), outcome.exit_code, outcome.cpu_seconds, outcome.peak_memory_bytes,
                  outcome.log_oid, outcome.reason, int(cache_hit), execution_id))


def log_new_metrics(conn: sqlite3.Connection, run_id: str, points: Sequence[tuple[str, float, int]]) -> None:
    """``store.runs.log_metrics`` for a run that has no metrics yet: (key, value, step) points,
    exact repeats stored once, the newest (step, then order) of each key as its latest."""
    stamp = now_ms()
    rows = list(dict.fromkeys((run_id, k, 0.0 if v != v else finite(v), int(s),
                               stamp, int(v != v)) for k, v, s in points))
    conn.executemany("INSERT INTO metrics (run_id, key, value, step, timestamp, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                     rows)
    newest: dict[str, tuple[str, str, float, int, int, int]] = {}
    for row in rows:
        if row[1] not in newest or row[3] >= newest[row[1]][3]:
            newest[row[1]] = row
    conn.executemany("INSERT INTO latest_metrics (run_id, key, value, step, timestamp, is_nan) VALUES "
                     "(?, ?, ?, ?, ?, ?)", list(newest.values()))


def finish_run(conn: sqlite3.Connection, run_id: str, status: str) -> None:
    conn.execute("UPDATE runs SET status = ?, end_time = ? WHERE id = ?", (status, now_ms(), run_id))


def finish_pipeline_run(conn: sqlite3.Connection, run_id: str, status: str) -> None:
    conn.execute("UPDATE pipeline_runs SET status = ?, ended_at = ? WHERE id = ?", (status, now_ms(), run_id))
