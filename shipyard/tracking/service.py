"""Tracking services over a Store and an ObjectStore: runs, batches, inputs, artifacts, reads.

The Python API (local backend), the REST API and the CLI all call these; they take plain values
and return plain records. Every write validates the whole request first and then runs in one
transaction, so a bad batch changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.errors import InputError, NotFound
from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue, now_ms
from shipyard.tracking import validation as v

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shipyard.objects import ObjectStore
    from shipyard.store import Store

ACTIVE = "active"
DELETED = "deleted"


@dataclass
class RunRecord:
    """A run with everything logged to it, as the CLI, the REST API and diffs show it."""

    run_id: str
    experiment_id: int
    experiment: str
    name: str | None
    status: str
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    source: str
    user: str | None
    host: str | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    lifecycle_stage: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_steps: dict[str, tuple[int, int]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("metric_steps")
        return out


def records(session: Session, rows: Sequence[repo.Run], *, with_files: bool = True) -> list[RunRecord]:
    """RunRecords for ORM runs, loading their data in bulk."""
    data = repo.run_data(session, [r.id for r in rows], with_files=with_files)
    names = dict(session.execute(select(repo.Experiment.id, repo.Experiment.name)
                                 .where(repo.Experiment.id.in_({r.experiment_id for r in rows}))).all())
    out = []
    for r in rows:
        d = data[r.id]
        out.append(RunRecord(
            run_id=r.id, experiment_id=r.experiment_id, experiment=names.get(r.experiment_id, ""), name=r.name,
            status=r.status, start_time=r.start_time, end_time=r.end_time, parent_run_id=r.parent_run_id,
            source=r.source, user=r.user, host=r.host, git_commit=r.git_commit, git_branch=r.git_branch,
            git_dirty=r.git_dirty, lifecycle_stage=r.lifecycle_stage, params=d.params,
            metrics={k: m[0] for k, m in d.metrics.items()},
            metric_steps={k: (m[1], m[2]) for k, m in d.metrics.items()}, tags=d.tags, inputs=d.inputs,
            artifacts=[{"path": p, "oid": o, "size": s} for p, o, s in d.artifacts],
        ))
    return out


# -- runs ---------------------------------------------------------------------------------------
def create_run(session: Session, *, experiment: str | None = None, experiment_id: int | None = None,
               name: str | None = None, parent_run_id: str | None = None, tags: Mapping[str, object] | None = None,
               source: str = "api", user: str | None = None, host: str | None = None,
               git: Mapping[str, Any] | None = None, start_time: int | None = None,
               run_id: str | None = None) -> str:
    """Create a RUNNING run in an experiment given by id or by name (created on first use); its id."""
    clean_tags = v.check_tags(tags or {})
    if name is not None and len(name) > v.MAX_RUN_NAME_LENGTH:
        raise InputError(f"run name is {len(name)} characters long; the limit is {v.MAX_RUN_NAME_LENGTH}")
    if experiment_id is not None:
        stage = session.execute(select(repo.Experiment.lifecycle_stage)
                                .where(repo.Experiment.id == experiment_id)).scalar()
        if stage is None:
            raise NotFound(f"No Experiment with id={experiment_id} exists")
        if stage != ACTIVE:
            raise InputError(f"The experiment {experiment_id} must be in the 'active' state. Current state is {stage}.",
                             hint="restore it or use another experiment")
    else:
        exp_name = experiment or repo.DEFAULT_EXPERIMENT
        if len(exp_name) > v.MAX_EXPERIMENT_NAME_LENGTH:
            raise InputError(f"experiment name is {len(exp_name)} characters; the limit is {v.MAX_EXPERIMENT_NAME_LENGTH}")
        experiment_id = session.execute(select(repo.Experiment.id).where(repo.Experiment.name == exp_name)).scalar()
        if experiment_id is None:
            experiment_id = repo.experiment_by_name(session, exp_name).id
    if parent_run_id is not None:
        repo.run_lifecycle(session, parent_run_id)
    git = git or {}
    return repo.insert_run(
        session, experiment_id=experiment_id, run_id=run_id, name=name, parent_run_id=parent_run_id, source=source,
        user=user, host=host, git_commit=git.get("commit"), git_branch=git.get("branch"),
        git_dirty=git.get("dirty"), start_time=start_time, tags=clean_tags,
    )


def active_run(session: Session, run_id: str) -> None:
    """Refuse an unknown or deleted run (MLflow: the run must be in the 'active' state)."""
    if repo.run_lifecycle(session, run_id) != ACTIVE:
        raise InputError(f"The run {run_id} must be in the 'active' state. Current state is deleted.",
                         hint="restore it (mlflow.MlflowClient().restore_run) before logging to it")


def parse_metrics(items: Iterable[Mapping[str, Any] | MetricValue | Sequence[Any]], *,
                  single: bool = False) -> list[MetricValue]:
    """Validate metric points given as MetricValue, dicts {key, value, step, timestamp} or tuples.

    Errors name MLflow's paths (``metrics[3].value``; ``value`` alone when ``single``).
    """
    out = []
    for i, item in enumerate(items):
        extra: dict[str, str] = {}
        if isinstance(item, MetricValue):
            key, value, step, ts = item.key, item.value, item.step, item.timestamp
            extra = {name: getattr(item, name) for name in ("model_id", "dataset_name", "dataset_digest")
                     if getattr(item, name)}
        elif isinstance(item, Mapping):
            key, value = item.get("key"), item.get("value")
            step, ts = item.get("step", 0), item.get("timestamp")
            extra = {name: item[name] for name in ("model_id", "dataset_name", "dataset_digest")
                     if isinstance(item.get(name), str) and item[name]}
        elif isinstance(item, (list, tuple)) and 2 <= len(item) <= 4:
            key, value = item[0], item[1]
            step = item[2] if len(item) > 2 else 0
            ts = item[3] if len(item) > 3 else None
        else:
            raise InputError(v.invalid_value(f"metrics[{i}]", item, "expected an object with key, value, step, timestamp"))
        path = "" if single else f"metrics[{i}]."
        key = v.check_key(key, "metric", f"{path}name")
        number = v.check_metric_value(value, key, timestamp=ts, path=f"{path}value")
        ts = None if ts is None else v.check_int(
            ts, f"{path}timestamp", minimum=0,
            message=f"metric '{key}' (value={value}). Timestamp must be a nonnegative long (64-bit integer) ")
        step = v.check_int(0 if step is None else step, f"{path}step",
                           message=f"metric '{key}' (value={value}). Step must be a valid long (64-bit integer).")
        out.append(MetricValue(key, number, step, ts, **extra))
    return out


def log_batch(session: Session, run_id: str, *, metrics: Sequence[MetricValue] = (),
              params: Mapping[str, object] | None = None, tags: Mapping[str, object] | None = None,
              batch_id: str | None = None, limits: bool = True) -> bool:
    """Write metrics, params and tags of a run in the caller's transaction, all or nothing.

    ``metrics`` must come from ``parse_metrics``. With ``batch_id`` a repeated batch (a client
    retrying after a dropped connection) is skipped; returns False then.
    """
    params = v.check_params(params or {})
    tags = v.check_tags(tags or {})
    if limits:
        v.check_batch(metrics, params, tags)
    active_run(session, run_id)
    if batch_id is not None and not repo.claim_batch(session, batch_id, run_id):
        return False
    repo.log_params(session, run_id, params)
    repo.set_tags(session, run_id, tags)
    repo.log_metrics(session, run_id, metrics)
    if any(m.model_id for m in metrics):
        from shipyard.store import logged_models

        logged_models.log_metrics(session, run_id, metrics)
    return True


def end_run(session: Session, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
    repo.end_run_fast(session, run_id, status, end_time or now_ms())


def check_inputs(inputs: Iterable[Mapping[str, Any]]) -> list[dict[str, str | None]]:
    out = []
    for i, item in enumerate(inputs):
        if not isinstance(item, Mapping):
            raise InputError(f"inputs[{i}] must be an object with name and digest, got {item!r}")
        name, digest = item.get("name"), item.get("digest")
        if not isinstance(name, str) or not name or len(name) > 500:
            raise InputError(f"inputs[{i}].name must be a non-empty string of at most 500 characters")
        if not isinstance(digest, str) or not digest or len(digest) > 100:
            raise InputError(f"inputs[{i}].digest must be a non-empty string of at most 100 characters")
        context = item.get("context") or ""
        if not isinstance(context, str) or len(context) > 50:
            raise InputError(f"inputs[{i}].context must be a string of at most 50 characters (training, eval, ...)")
        row: dict[str, str | None] = {"name": name, "digest": digest, "context": context,
                                      "tags": _input_tags(item.get("tags"), i)}
        for key, limit in (("source", 65536), ("source_type", 50), ("schema", 1 << 20), ("profile", 16 << 20)):
            value = item.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise InputError(f"inputs[{i}].{key} must be a string of at most {limit} characters")
            row[key] = value
        out.append(row)
    return out


def _input_tags(tags: Any, i: int) -> str | None:
    """MLflow's input tags ([{key, value}], keys up to 255, values up to 500 characters) as JSON text."""
    if not tags:
        return None
    import json

    if isinstance(tags, str):  # already checked and encoded (check_inputs ran before)
        try:
            tags = json.loads(tags)
        except ValueError as exc:
            raise InputError(f"inputs[{i}].tags is not a JSON list of {{key, value}} objects") from exc
    if not isinstance(tags, list) or not all(isinstance(t, Mapping) for t in tags):
        raise InputError(f"inputs[{i}].tags must be a list of {{key, value}} objects")
    for t in tags:
        key, value = t.get("key"), t.get("value")
        if not isinstance(key, str) or not key or len(key) > 255:
            raise InputError("InputTag key cannot be None" if key is None else
                             f"InputTag key exceeds the maximum length of 255 characters (inputs[{i}])")
        if not isinstance(value, str) or len(value) > 500:
            raise InputError("InputTag value cannot be None" if value is None else
                             f"InputTag value exceeds the maximum length of 500 characters (inputs[{i}])")
    return json.dumps([{"key": t["key"], "value": t["value"]} for t in tags])


def log_inputs(session: Session, run_id: str, inputs: Iterable[Mapping[str, Any]]) -> None:
    rows = check_inputs(inputs)
    active_run(session, run_id)
    repo.log_inputs(session, run_id, rows)


# -- artifacts ------------------------------------------------------------------------------------
def artifact_files(local: Path, artifact_path: str | None) -> list[tuple[Path, str]]:
    """(file, artifact path) pairs for a file or every file under a folder."""
    from shipyard.tracking.paths import safe_relative

    prefix = safe_relative(artifact_path) if artifact_path else ""
    if local.is_dir():
        pairs = []
        for root, _dirs, files in os.walk(local):
            for name in sorted(files):
                full = Path(root) / name
                rel = full.relative_to(local).as_posix()
                pairs.append((full, f"{prefix}/{rel}" if prefix else rel))
        return pairs
    if not local.is_file():
        raise NotFound(f"artifact {local} does not exist", hint="pass the path of a file or a folder")
    return [(local, f"{prefix}/{local.name}" if prefix else local.name)]


def store_artifacts(store: Store, objects: ObjectStore, run_id: str, files: Sequence[tuple[Path, str]]) -> list[str]:
    """Put files in the object store and record them on the run; returns their object ids."""
    from shipyard.hashing import hash_file

    pairs = [(path, hash_file(path)) for path, _ in files]
    objects.put_files(pairs)
    rows = [(name, oid, path.stat().st_size) for (path, name), (_, oid) in zip(files, pairs, strict=True)]
    with store.write() as session:
        active_run(session, run_id)
        repo.log_artifacts(session, run_id, rows)
    return [oid for _, oid in pairs]


def store_artifact_bytes(store: Store, objects: ObjectStore, run_id: str, path: str, data: bytes) -> str:
    from shipyard.tracking.paths import safe_relative

    path = safe_relative(path)
    oid = objects.put_bytes(data)
    with store.write() as session:
        active_run(session, run_id)
        repo.log_artifacts(session, run_id, [(path, oid, len(data))])
    return oid


def read_artifact(store: Store, objects: ObjectStore, run_id: str, path: str) -> bytes:
    from shipyard.tracking.paths import safe_relative

    path = safe_relative(path)
    with store.read() as session:
        repo.get_run(session, run_id)
        row = session.get(repo.Artifact, (run_id, path))
        if row is None:
            raise NotFound(f"run {run_id} has no artifact {path!r}")
        oid = row.oid
    return objects.get_bytes(oid)


def list_artifacts(session: Session, run_id: str, prefix: str = "") -> list[dict[str, Any]]:
    """Direct children of ``prefix``: files with sizes and folders (MLflow's list-artifacts)."""
    from shipyard.tracking.paths import safe_relative

    prefix = safe_relative(prefix) if prefix else ""
    repo.get_run(session, run_id)
    rows = session.execute(select(repo.Artifact.path, repo.Artifact.size).where(repo.Artifact.run_id == run_id))
    return children([(path, size) for path, size in rows], prefix)


def children(files: Sequence[tuple[str, int]], prefix: str) -> list[dict[str, Any]]:
    """The direct children of ``prefix`` among (path, size) files: files with sizes, folders once."""
    seen: dict[str, dict[str, Any]] = {}
    for path, size in files:
        if prefix and not path.startswith(prefix + "/"):
            continue
        rest = path[len(prefix) + 1:] if prefix else path
        head, sep, _ = rest.partition("/")
        child = f"{prefix}/{head}" if prefix else head
        seen[child] = {"path": child, "is_dir": True} if sep else {"path": child, "is_dir": False, "file_size": size}
    return [seen[k] for k in sorted(seen)]


# -- reads ----------------------------------------------------------------------------------------
def resolve_run_id(session: Session, ref: str) -> str:
    """A full run id from a full id or a unique prefix of at least 4 characters."""
    ref = ref.strip()
    if session.get(repo.Run, ref) is not None:
        return ref
    if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref):
        found = list(session.scalars(select(repo.Run.id).where(repo.Run.id.like(ref + "%")).limit(3)))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(f"run id prefix {ref!r} is ambiguous ({', '.join(found)}, ...)",
                             hint="give more characters of the run id")
    raise NotFound(f"run {ref!r} does not exist", hint="list runs with 'shipyard runs list'")


def get_run(session: Session, run_id: str) -> RunRecord:
    return records(session, [repo.get_run(session, resolve_run_id(session, run_id))])[0]


def metric_history(session: Session, run_id: str, key: str) -> list[tuple[float, int, int]]:
    repo.get_run(session, run_id)
    return repo.metric_history(session, run_id, key)


def sampled_history(session: Session, run_id: str, key: str, max_results: int,
                    steps: tuple[int, int] | None = None) -> list[tuple[float, int, int]]:
    """At most ``max_results`` points of a metric, evenly sampled in (step, timestamp, value) order.

    MLflow's sampling: the points are cut into ``max_results`` NTILE buckets, the first point of
    each is kept, and the very last point always is (replacing the last sample when full).
    """
    points = sorted(metric_history(session, run_id, key), key=lambda p: (p[1], p[2], p[0]))
    if steps is not None:
        points = [p for p in points if steps[0] <= p[1] <= steps[1]]
    total = len(points)
    if total <= max_results:
        return points
    base, extra = divmod(total, max_results)
    picked, index = [], 0
    for bucket in range(max_results):
        picked.append(points[index])
        index += base + (1 if bucket < extra else 0)
    if picked[-1] != points[-1]:
        picked[-1] = points[-1]
    return picked
