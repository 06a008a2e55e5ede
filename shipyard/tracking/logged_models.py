"""MLflow 3 logged models as a service: create, read, finalize, search, tag, and their artifact files.

``mlflow.<flavor>.log_model(m, name=...)`` creates a logged model (``m-<32 hex>``) in an
experiment, uploads its files through the artifact proxy under
``<experiment artifact location>/models/<model id>/artifacts`` and finalizes it READY. Files are
kept in the object store by content id (like run artifacts), so a logged model can be read back
here, by ``models:/m-...`` resolution in the registry, without the client.

``locate``, ``logged_model_files`` and ``run_artifact_files`` are what other services (the
registry) use to resolve ``models:/m-<id>`` and ``runs:/<run>/<path>`` sources and read their
files from the object store (``download_*`` copy them to a folder instead).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.errors import InputError, NotFound
from shipyard.store import logged_models as lm
from shipyard.store import runs as repo
from shipyard.store.runs import now_ms
from shipyard.tracking import filter as flt
from shipyard.tracking import service
from shipyard.tracking import validation as v
from shipyard.tracking.paths import safe_relative

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shipyard.objects import ObjectStore
    from shipyard.store import Store
    from shipyard.workspace import Workspace

PROXY_SCHEME = "mlflow-artifacts:"
MAX_SEARCH_RESULTS = 1000
_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_NAME_FORBIDDEN = ("/", ":", ".", "%", '"', "'")
_ATTRIBUTES = {
    "name": lm.LoggedModel.name, "model_id": lm.LoggedModel.id, "source_run_id": lm.LoggedModel.source_run_id,
    "status": lm.LoggedModel.status, "model_type": lm.LoggedModel.model_type,
    "experiment_id": lm.LoggedModel.experiment_id, "creation_timestamp": lm.LoggedModel.created_at,
    "creation_time": lm.LoggedModel.created_at, "last_updated_timestamp": lm.LoggedModel.updated_at,
}


@dataclass(frozen=True)
class LoggedModel:
    """A logged model as the REST API and the registry see it (times in epoch ms)."""

    model_id: str
    experiment_id: int
    name: str
    source_run_id: str | None
    status: str
    status_message: str | None
    artifact_location: str
    model_type: str | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    creation_timestamp: int
    last_updated_timestamp: int
    lifecycle_stage: str = "active"
    metrics: tuple[repo.MetricValue, ...] = ()


def experiment_artifact_location(exp: repo.Experiment) -> str:
    """Where an experiment's artifacts live: its own location, else the server's artifact proxy."""
    return exp.artifact_location or f"{PROXY_SCHEME}/{exp.id}"


def _record(r: lm.LoggedModel, tags: Mapping[str, str], params: Mapping[str, str],
            metrics: Sequence[repo.MetricValue]) -> LoggedModel:
    return LoggedModel(
        model_id=r.id, experiment_id=r.experiment_id, name=r.name, source_run_id=r.source_run_id, status=r.status,
        status_message=r.status_message, artifact_location=r.artifact_location, model_type=r.model_type,
        tags=tags, params=params, creation_timestamp=r.created_at, last_updated_timestamp=r.updated_at,
        lifecycle_stage=r.lifecycle_stage, metrics=tuple(metrics),
    )


def _records(session: Session, rows: Sequence[lm.LoggedModel]) -> list[LoggedModel]:
    ids = [r.id for r in rows]
    tags, params, metrics = lm.model_data(session, ids)
    return [_record(r, tags[r.id], params[r.id], metrics[r.id]) for r in rows]


def check_name(name: str | None) -> None:
    """MLflow's rule for a logged model name (it becomes part of ``runs:/<run>/<name>`` URIs)."""
    if name is None:
        return
    if not name or any(c in name for c in _NAME_FORBIDDEN) or len(name) > 500:
        raise InputError(f"Invalid model name ('{name[:100]}') provided. Model name must be a non-empty string "
                         "and cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")")


# -- writes ------------------------------------------------------------------------------------------
def create(store: Store, experiment_id: int, *, name: str | None = None, source_run_id: str | None = None,
           tags: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
           model_type: str | None = None) -> LoggedModel:
    """A new PENDING logged model in an active experiment (its artifacts come next, then finalize)."""
    check_name(name)
    clean_tags, clean_params = v.check_tags(tags or {}), v.check_params(params or {})
    model_id = f"m-{uuid.uuid4().hex}"
    with store.write() as session:
        exp = repo.get_experiment(session, repo.resolve_experiment_id(session, experiment_id))
        if exp.lifecycle_stage != "active":
            raise InputError(f"The experiment {experiment_id} must be in the 'active' state. "
                             f"Current state is {exp.lifecycle_stage}.")
        stamp = now_ms()
        row = lm.LoggedModel(
            id=model_id, experiment_id=exp.id, name=name or f"model-{model_id[2:10]}",
            source_run_id=source_run_id or None, status="PENDING", model_type=model_type or None,
            artifact_location=f"{experiment_artifact_location(exp).rstrip('/')}/models/{model_id}/artifacts",
            lifecycle_stage="active", created_at=stamp, updated_at=stamp,
        )
        # a new model has no tags or params yet: plain inserts, and the answer needs no read back
        session.add(row)
        session.add_all([lm.LoggedModelTag(model_id=model_id, key=k, value=val) for k, val in clean_tags.items()])
        session.add_all([lm.LoggedModelParam(model_id=model_id, key=k, value=val) for k, val in clean_params.items()])
        session.flush()
        return _record(row, dict(sorted(clean_tags.items())), dict(sorted(clean_params.items())), ())


def finalize(store: Store, model_id: str, status: str) -> LoggedModel:
    """Set the final status (READY or FAILED) of a logged model."""
    if status not in lm.STATUSES:
        raise InputError(f"Invalid value {status!r} for parameter 'status' supplied; "
                         f"expected one of LOGGED_MODEL_{', LOGGED_MODEL_'.join(lm.STATUSES)}")
    with store.write() as session:
        row = lm.get(session, model_id)
        row.status = status
        row.updated_at = now_ms()
        return _records(session, [row])[0]


def delete(store: Store, model_id: str) -> None:
    """Soft-delete (MLflow: lifecycle stage 'deleted'); ``get`` then answers not found."""
    with store.write() as session:
        row = lm.get(session, model_id)
        row.lifecycle_stage = "deleted"
        row.updated_at = now_ms()


def set_tags(store: Store, model_id: str, tags: Mapping[str, str]) -> None:
    clean = v.check_tags(tags)
    with store.write() as session:
        lm.get_row(session, model_id)
        lm.set_tags(session, model_id, clean)


def delete_tag(store: Store, model_id: str, key: str) -> None:
    with store.write() as session:
        lm.get_row(session, model_id)
        lm.delete_tag(session, model_id, key)


def log_params(store: Store, model_id: str, params: Mapping[str, str]) -> None:
    clean = v.check_params(params)
    with store.write() as session:
        lm.get_row(session, model_id)
        lm.log_params(session, model_id, clean)


# -- reads -------------------------------------------------------------------------------------------
def get(store: Store, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
    with store.read() as session:
        return _records(session, [lm.get_row(session, model_id, allow_deleted=allow_deleted)])[0]


def get_logged_model(workspace: Workspace, model_id: str) -> LoggedModel:
    """The logged model ``model_id`` (``m-<hex>``, without ``models:/``); NotFound when unknown."""
    return get(workspace.store, model_id)


def locate(workspace: Workspace, model_id: str) -> tuple[str, str | None]:
    """(artifact location, source run id) of an active logged model, in one query: what the
    registry needs to resolve a ``models:/m-...`` source (NotFound when unknown)."""
    with workspace.store.read() as session:
        row = lm.get_row(session, model_id)
        return row.artifact_location, row.source_run_id


def _condition(cond: flt.Comparison) -> Any:
    from shipyard.tracking.search import _compare

    if cond.entity in ("tags", "params"):
        table = lm.LoggedModelTag if cond.entity == "tags" else lm.LoggedModelParam
        inner = select(table.model_id).where(table.key == cond.key, _compare(table.value, cond.op, cond.value))
        return lm.LoggedModel.id.in_(inner)
    column = _ATTRIBUTES.get(cond.key)
    if cond.entity != "attributes" or column is None:
        raise InputError(f"Invalid attribute key '{cond.key}' specified. Valid keys are "
                         f"{sorted(_ATTRIBUTES)}, params.<key> and tags.<key>")
    value = cond.value
    if cond.key == "status" and isinstance(value, str):
        value = value.removeprefix("LOGGED_MODEL_").replace("UPLOAD_FAILED", "FAILED")
    if cond.key == "experiment_id" and isinstance(value, str):
        value = int(value) if value.isdigit() else -1
    return _compare(column, cond.op, value)


def parse_filter(text: str | None) -> list[Any]:
    """SQL conditions for MLflow's logged-model filter: clauses joined by AND, as MLflow allows."""
    return [_condition(c) for c in flt.and_comparisons(text)]


def search(store: Store, experiment_ids: Sequence[int], *, filter_string: str | None = None,
           order_by: Sequence[Mapping[str, Any]] = (), max_results: int | None = None,
           page_token: str | None = None) -> tuple[list[LoggedModel], str | None]:
    """Active logged models of the experiments matching the filter, and the next page token."""
    from shipyard.tracking.search import decode_token, encode_token

    limit = max_results or 100
    if not 1 <= limit <= MAX_SEARCH_RESULTS:
        raise InputError(f"Invalid value {limit} for parameter 'max_results' supplied. "
                         f"It must be at most {MAX_SEARCH_RESULTS}")
    offset = decode_token(page_token)
    query = select(lm.LoggedModel).where(lm.LoggedModel.lifecycle_stage == "active",
                                         lm.LoggedModel.experiment_id.in_(list(experiment_ids)))
    for condition in parse_filter(filter_string):
        query = query.where(condition)
    ordering = []
    for item in order_by:
        column = _ATTRIBUTES.get(str(item.get("field_name", "")).removeprefix("attributes."))
        if column is None:
            raise InputError(f"Invalid order by field name: {item.get('field_name')!r}")
        ordering.append(column.asc() if item.get("ascending", True) else column.desc())
    query = query.order_by(*ordering, lm.LoggedModel.created_at.desc(), lm.LoggedModel.id)
    with store.read() as session:
        rows = list(session.scalars(query.offset(offset).limit(limit + 1)))
        found = _records(session, rows[:limit])
    return found, (encode_token(offset + limit) if len(rows) > limit else None)


# -- artifacts ---------------------------------------------------------------------------------------
def store_artifact(store: Store, objects: ObjectStore, model_id: str, path: str, data: bytes) -> str:
    """Keep one uploaded file of a logged model; returns its object id."""
    path = safe_relative(path)
    with store.read() as session:
        lm.get_row(session, model_id)   # checked before any byte is stored: bad input changes nothing
    oid = objects.put_bytes(data)
    with store.write() as session:
        # logged models are only ever soft-deleted, so the row checked above is still there
        lm.record_artifacts(session, model_id, [(path, oid, len(data))])
    return oid


def read_artifact(store: Store, objects: ObjectStore, model_id: str, path: str) -> bytes:
    path = safe_relative(path)
    with store.read() as session:
        oid = lm.artifact_oid(session, model_id, path)
        if oid is None:
            lm.get_row(session, model_id, allow_deleted=True)   # an unknown model is named as such
            raise NotFound(f"logged model {model_id} has no artifact {path!r}")
    return objects.get_bytes(oid)


def list_artifacts(store: Store, model_id: str, prefix: str = "") -> list[dict[str, Any]]:
    """Direct children of ``prefix`` (files with sizes, and folders), as MLflow lists them."""
    prefix = safe_relative(prefix) if prefix else ""
    with store.read() as session:
        lm.get_row(session, model_id, allow_deleted=True)
        files = lm.artifacts_of(session, model_id)
    return service.children([(p, s) for p, _, s in files], prefix)


def _checkout(objects: ObjectStore, files: Sequence[tuple[str, str]], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for rel, oid in files:
        target = dest / safe_relative(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        objects.checkout(oid, target)
    return dest


def logged_model_files(workspace: Workspace, model_id: str) -> dict[str, str]:
    """Path -> object id of every artifact file of an active logged model, read from the store
    (NotFound when the model is unknown or none of its files are stored on this server)."""
    with workspace.store.read() as session:
        row = lm.get_row(session, model_id)
        files = {p: oid for p, oid, _ in lm.artifacts_of(session, model_id)}
        location = row.artifact_location
    if not files:
        where = "" if location.startswith(PROXY_SCHEME) else f" (its artifact location {location} is outside this server)"
        raise NotFound(f"logged model {model_id} has no artifact files stored on this server{where}",
                       hint="log the model with the MLflow client against this server's tracking URI")
    return files


def download_logged_model(workspace: Workspace, model_id: str, dest: Path) -> Path:
    """Copy every artifact file of a logged model into ``dest`` (verified against its hash)."""
    return _checkout(workspace.objects, list(logged_model_files(workspace, model_id).items()), Path(dest))


def run_artifact_files(workspace: Workspace, run_id: str, path: str) -> dict[str, str]:
    """A run's artifact file or folder ``path`` ('' = all) as relative path -> object id.

    A folder's files keep their paths relative to ``path``; a single file is keyed by its name.
    """
    prefix = safe_relative(path) if path else ""
    with workspace.store.read() as session:
        repo.get_run(session, run_id)
        query = select(repo.Artifact.path, repo.Artifact.oid).where(repo.Artifact.run_id == run_id)
        rows = list(session.execute(query))
    exact = {p.rsplit("/", 1)[-1]: oid for p, oid in rows if p == prefix}
    inside = {p[len(prefix) + 1:] if prefix else p: oid for p, oid in rows if not prefix or p.startswith(prefix + "/")}
    files = exact or inside
    if not files:
        raise NotFound(f"run {run_id} has no artifact {prefix!r}", hint=f"list them with 'shipyard runs show {run_id}'")
    return files


def download_run_artifacts(workspace: Workspace, run_id: str, path: str, dest: Path) -> Path:
    """Copy a run's artifact file or folder ``path`` ('' = all) into ``dest`` (for ``runs:/`` sources),
    laid out as ``run_artifact_files`` says."""
    return _checkout(workspace.objects, list(run_artifact_files(workspace, run_id, path).items()), Path(dest))


def link_run(session: Session, run_id: str, models: Sequence[tuple[str, int]], direction: str) -> None:
    """Record that a run read (``input``) or wrote (``output``) logged models, at a step."""
    if not models:
        return
    service.active_run(session, run_id)
    for model_id, _ in models:
        lm.get_row(session, model_id)
    lm.link_runs(session, run_id, models, direction)
