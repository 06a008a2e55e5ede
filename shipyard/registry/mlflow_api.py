"""The registry as MLflow's model-registry API sees it: entities, tags, search and version sources.

The server's MLflow routes call these functions and only translate HTTP; every write runs in the
caller's transaction with its audit event. Shapes are MLflow's ``RegisteredModel`` and
``ModelVersion`` (strings for versions, millisecond timestamps, tag lists).

Version sources follow MLflow's rules (``mlflow/server/handlers.py``): a local path (``/etc``,
``file:///etc``) is refused, as MLflow does after its path-traversal CVEs, since the server must
never read its own disk for a client; a source with ``..`` is refused; ``runs:/`` needs the
matching ``run_id`` and ``models:/m-...`` the matching ``model_id``. Any other URI (``s3://...``)
is recorded as given and never read (flavor ``external``). A ``models:/m-<id>`` source, or the
run's own artifacts (``runs:/`` or ``mlflow-artifacts:/`` inside the run), is fetched from our
store, its MLmodel mapped (``models.flavors.mlflow``) and packaged, so the version loads, gates and
serves like one registered by ``shipyard run``, and goes through the same supply chain at
registration (``supply.registration.at_registration``: scan, SBOM, signature). A
``python_function``-only model (a custom ``PythonModel``) is packaged whole with flavor
``mlflow_pyfunc``, untrusted: it loads, gates and serves once trusted (``shipyard models trust``).
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shipyard import audit
from shipyard.errors import AlreadyExists, InputError, NotFound, UnsafeModel
from shipyard.models import EXTERNAL
from shipyard.registry.core import record_version, validate_name
from shipyard.store import registry as repo
from shipyard.store.registry import now_ms

EXTERNAL_FLAVOR = EXTERNAL
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 100_000
MODEL_ID_TAG = "mlflow.model_id"   # where a version keeps MLflow's model_id (the logged model it came from)
RUN_ID_TAG = "mlflow.run_id"       # a run_id MLflow accepts but our store does not know (no row to link)
HIDDEN_TAGS = (MODEL_ID_TAG, RUN_ID_TAG)
_TAG_KEY = re.compile(r"^[/\w.\- :]*$")


class InvalidParameter(InputError):
    """A request value MLflow would refuse, with MLflow's message (``INVALID_PARAMETER_VALUE``)."""

    error_code = "INVALID_PARAMETER_VALUE"


class PermissionRefused(InvalidParameter):
    """Refused by Shipyard's policy (champion without a passing gate, deleting the champion): a
    4xx the client fixes, answered as MLflow's ``PERMISSION_DENIED`` (403)."""

    error_code = "PERMISSION_DENIED"
    http_status = 403


# -- validation, with MLflow's messages (mlflow/utils/validation.py) ----------------------------
def invalid_value(path: str, value: Any, message: str = "") -> InvalidParameter:
    import json

    shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = f"Invalid value {shown} for parameter '{path}' supplied"
    return InvalidParameter(f"{text}: {message}" if message else f"{text}.")


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    """A registry tag as MLflow checks it: key characters and normal form, key <= 250, value <= 100,000."""
    if key is None or key == "":
        raise InvalidParameter("Missing value for required parameter 'key'.")
    if not isinstance(key, str) or not _TAG_KEY.match(key):
        raise invalid_value("key", key, "Names may only contain alphanumerics, underscores (_), dashes (-), "
                                        "periods (.), spaces ( ), colons(:) and slashes (/).")
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        raise invalid_value("key", key, "Names may be treated as files in certain cases, and must not resolve "
                                        f"to other names when treated as such. This name would resolve to {posixpath.normpath(key)!r}")
    if len(key) > MAX_TAG_KEY:
        raise InvalidParameter(f"'key' exceeds the maximum length of {MAX_TAG_KEY} characters")
    text = "" if value is None else str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidParameter(f"'value' exceeds the maximum length of {MAX_TAG_VALUE} characters")
    return key, text


# -- lookups with MLflow's messages (our hint kept) ----------------------------------------------
def model_of(session: Session, name: str) -> repo.RegisteredModel:
    """The registered model ``name``; MLflow's "Registered Model with name=... not found" otherwise."""
    try:
        return repo.get_model(session, name)
    except NotFound as exc:
        raise NotFound(f"Registered Model with name={name} not found", hint=exc.hint) from None


def version_of(session: Session, model: repo.RegisteredModel, version: int) -> repo.ModelVersionRow:
    """Version ``version`` of ``model``; MLflow's "Model Version (name=..., version=...) not found" otherwise."""
    try:
        return repo.get_version(session, model, version)
    except NotFound as exc:
        raise NotFound(f"Model Version (name={model.name}, version={version}) not found", hint=exc.hint) from None


# -- entities ---------------------------------------------------------------------------------
def version_entity(model: repo.RegisteredModel, row: repo.ModelVersionRow, aliases: dict[str, int],
                   tags: dict[str, str]) -> dict[str, Any]:
    """MLflow's ``ModelVersion`` for one row (``aliases`` are the model's, ``tags`` the version's)."""
    out = {
        "name": model.name, "version": str(row.version), "creation_timestamp": row.created_at,
        "last_updated_timestamp": row.updated_at, "user_id": row.user or "", "current_stage": "None",
        "description": row.description or "", "source": row.source or "",
        "run_id": row.run_id or tags.get(RUN_ID_TAG, ""), "status": "READY", "status_message": "", "run_link": "",
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items()) if k not in HIDDEN_TAGS],
        "aliases": sorted(a for a, v in aliases.items() if v == row.version),
    }
    if tags.get(MODEL_ID_TAG):
        out["model_id"] = tags[MODEL_ID_TAG]
    return out


def versions_entities(session: Session, rows: list[repo.ModelVersionRow]) -> list[dict[str, Any]]:
    """``version_entity`` for many rows, with three queries in all."""
    model_ids = sorted({r.model_id for r in rows})
    models = {m.id: m for m in repo.models_by_id(session, model_ids)}
    aliases = repo.aliases_many(session, model_ids)
    tags = repo.version_tags_many(session, [r.id for r in rows])
    return [version_entity(models[r.model_id], r, aliases[r.model_id], tags[r.id]) for r in rows]


def model_entity(session: Session, model: repo.RegisteredModel) -> dict[str, Any]:
    """MLflow's ``RegisteredModel``: its tags, aliases and newest version."""
    aliases = repo.aliases_many(session, [model.id])[model.id]
    tags = repo.model_tags_many(session, [model.id])[model.id]
    newest = repo.newest_version(session, model)
    latest = [] if newest is None else [version_entity(model, newest, aliases,
                                                       repo.version_tags_many(session, [newest.id])[newest.id])]
    return {
        "name": model.name, "creation_timestamp": model.created_at, "last_updated_timestamp": model.updated_at,
        "description": model.description or "", "user_id": "", "latest_versions": latest,
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())],
    }


def get_version(session: Session, name: str, version: int) -> dict[str, Any]:
    model = model_of(session, name)
    return versions_entities(session, [version_of(session, model, version)])[0]


def version_by_alias(session: Session, name: str, alias: str) -> dict[str, Any]:
    """The version ``alias`` points at (MLflow's "Registered model alias ... not found" otherwise)."""
    row = repo.alias_target(session, model_of(session, name), alias)
    if row is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    return versions_entities(session, [row])[0]


# -- registered models: writes --------------------------------------------------------------------
def create_model(session: Session, name: str, description: str | None, tags: dict[str, str],
                 actor: str | None = None) -> dict[str, Any]:
    validate_name(name)
    checked = dict(check_tag(k, v) for k, v in tags.items())
    if repo.find_model(session, name) is not None:
        raise AlreadyExists(f"Registered Model (name={name}) already exists.")
    model = repo.create_model(session, name, description, checked)
    audit.record(session, "model.create", name, {"via": "mlflow-rest"}, actor=actor)
    return model_entity(session, model)


def update_model(session: Session, name: str, description: str | None, actor: str | None = None) -> dict[str, Any]:
    model = model_of(session, name)
    model.description = description
    model.updated_at = now_ms()
    audit.record(session, "model.update", name, {"description": description, "via": "mlflow-rest"}, actor=actor)
    return model_entity(session, model)


def delete_model(session: Session, name: str, actor: str | None = None) -> None:
    model_of(session, name)
    repo.delete_model(session, name)
    audit.record(session, "model.delete", name, {"via": "mlflow-rest"}, actor=actor)


def rename_model(session: Session, name: str, new_name: str, actor: str | None = None) -> dict[str, Any]:
    """MLflow's ``rename``: the versions, aliases and history move with the model (audited)."""
    validate_name(new_name)
    model = model_of(session, name)
    if new_name != name and repo.find_model(session, new_name) is not None:
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.")
    model.name = new_name
    model.updated_at = now_ms()
    audit.record(session, "model.rename", name, {"new_name": new_name, "via": "mlflow-rest"}, actor=actor)
    return model_entity(session, model)


def set_model_tag(session: Session, name: str, key: Any, value: Any, actor: str | None = None) -> None:
    key, text = check_tag(key, value)
    model = model_of(session, name)
    repo.set_model_tags(session, model.id, {key: text})
    model.updated_at = now_ms()
    audit.record(session, "model.tag", name, {"tags": {key: text}, "via": "mlflow-rest"}, actor=actor)


def delete_model_tag(session: Session, name: str, key: Any, actor: str | None = None) -> None:
    """Remove a tag; like MLflow, a tag that is not there is a 404 naming the key."""
    key, _ = check_tag(key, "")
    model = model_of(session, name)
    if key not in repo.model_tags_many(session, [model.id])[model.id]:
        raise NotFound(f"No tag with name: {key} in registered model {name!r}")
    repo.delete_model_tag(session, model.id, key)
    audit.record(session, "model.tag.delete", name, {"key": key, "via": "mlflow-rest"}, actor=actor)


# -- versions: writes -----------------------------------------------------------------------------
def update_version(session: Session, name: str, version: int, description: str | None,
                   actor: str | None = None) -> dict[str, Any]:
    model = model_of(session, name)
    row = version_of(session, model, version)
    row.description = description
    row.updated_at = now_ms()
    audit.record(session, "model.version.update", f"{name}@{version}", {"description": description}, actor=actor)
    return versions_entities(session, [row])[0]


def delete_version(session: Session, name: str, version: int, actor: str | None = None) -> None:
    """MLflow's ``model-versions/delete``: the version disappears and its number is never reused.

    Its aliases go with it, except ``champion``: the version serving production traffic is not
    deleted under the gateway (move the champion first, e.g. with ``shipyard deploy``).
    """
    from shipyard.registry.core import CHAMPION

    model = model_of(session, name)
    row = version_of(session, model, version)
    aliases = [a for a, v in repo.aliases_many(session, [model.id])[model.id].items() if v == version]
    if CHAMPION in aliases:
        raise PermissionRefused(f"{name}@{version} is the champion; refusing to delete it",
                                hint=f"deploy another version first (shipyard deploy {name}@VERSION)")
    for alias in aliases:
        repo.put_alias(session, model, alias, None, actor=actor or audit.current_actor())
    repo.delete_version(session, model, row)
    audit.record(session, "model.version.delete", f"{name}@{version}", {"aliases": aliases, "via": "mlflow-rest"},
                 actor=actor)


def set_version_tag(session: Session, name: str, version: int, key: Any, value: Any,
                    actor: str | None = None) -> None:
    key, text = check_tag(key, value)
    model = model_of(session, name)
    row = version_of(session, model, version)
    repo.set_version_tags(session, row.id, {key: text})
    row.updated_at = now_ms()
    audit.record(session, "model.tag", f"{name}@{version}", {"tags": {key: text}, "via": "mlflow-rest"}, actor=actor)


def delete_version_tag(session: Session, name: str, version: int, key: Any, actor: str | None = None) -> None:
    key, _ = check_tag(key, "")
    model = model_of(session, name)
    row = version_of(session, model, version)
    if key not in repo.version_tags_many(session, [row.id])[row.id]:
        raise NotFound(f"No tag with name: {key} for model version {name!r} version {version}")
    repo.delete_version_tag(session, row.id, key)
    audit.record(session, "model.tag.delete", f"{name}@{version}", {"key": key, "via": "mlflow-rest"}, actor=actor)


# -- version sources ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a version's files are: ``kind`` is ``model`` (a logged model, ``run_id`` its source
    run), ``run`` (a run's artifacts under ``path``) or ``external`` (recorded, never read)."""

    kind: str
    model_id: str | None = None
    run_id: str | None = None
    path: str = ""


def _invalid_source(source: str, id_name: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid model version source: '{source}'. The {id_name} request parameter must "
                            "identify the resource that contains the source.")


def is_local(source: str) -> bool:
    """MLflow's ``is_local_uri``: no scheme, or ``file:`` (any host is refused as well)."""
    scheme = urllib.parse.urlparse(source).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and source[1:2] == ":")


def check_relative(source: str) -> None:
    """MLflow's rule against ``..`` (also percent-encoded, nested) and NUL in a source."""
    message = (f"Invalid model version source: '{source}'. If supplying a source as an http, https, local file "
               "path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without "
               "relative path references present. Please provide an absolute path.")
    text = source
    while (unquoted := urllib.parse.unquote_plus(text)) != text:
        text = unquoted
    path = re.sub(r"/+", "/", urllib.parse.urlparse(text).path.rstrip("/"))
    if "\x00" in path or any(p == ".." for p in text.split("/")):
        raise InvalidParameter(message)
    # MLflow compares the path with its resolved form: an empty or relative path, or one that
    # normalizes to something else, is refused (without reading our disk for symlinks).
    if not path.startswith("/") or posixpath.normpath(path) != path:
        raise InvalidParameter(message)


def check_source(workspace: Any, source: str, run_id: str | None, model_id: str | None) -> Source:
    """Apply MLflow's source rules and say where the version's files are (see the module doc)."""
    from shipyard.store import runs as runs_repo

    id_name = "model_id" if model_id else "run_id"
    if is_local(source):
        owner = "model_id" if model_id else "run_id"
        raise InvalidParameter(
            f"Invalid model version source: '{source}'. To use a local path as a model version source, the "
            f"{owner} request parameter has to be specified and the local path has to be contained within the "
            f"artifact directory of the run specified by the {owner}.")
    check_relative(source)
    parsed = urllib.parse.urlparse(source)
    parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
    if parsed.scheme == "models":
        if parsed.netloc or not parts:
            raise _invalid_source(source, "model_id")
        source_model = parts[0] if len(parts) == 1 and parts[0].startswith("m-") else None
        if source_model is None:
            return Source("external")   # models:/name/version: a registry reference, recorded as given
        if model_id != source_model:
            raise _invalid_source(source, "model_id")
        _location, source_run = _logged_model(workspace, source, model_id)
        return Source("model", model_id=model_id, run_id=source_run)
    if model_id:
        return _model_artifact_source(workspace, source, model_id)
    if parsed.scheme == "runs":
        if parsed.netloc or not parts or parts[0] != run_id:
            raise _invalid_source(source, "run_id")
        return Source("run", run_id=run_id, path="/".join(parts[1:]))
    if _is_artifact_source(parsed.scheme, parts):
        with workspace.store.read() as session:
            run = session.get(runs_repo.Run, run_id) if run_id else None
        root = None if run is None else [str(run.experiment_id), run.id, "artifacts"]
        tail = parts[parts.index("artifacts") + 1:] if parsed.scheme != "mlflow-artifacts" and "artifacts" in parts else parts
        if root is None or tail[:3] != root:
            raise _invalid_source(source, id_name)
        return Source("run", run_id=run_id, path="/".join(tail[3:]))
    return Source("external")


def _is_artifact_source(scheme: str, parts: list[str]) -> bool:
    """MLflow's ``_is_mlflow_artifact_source``: the artifact proxy, by scheme or by its HTTP route."""
    if scheme.lower() == "mlflow-artifacts":
        return True
    route = ["api", "2.0", "mlflow-artifacts", "artifacts"]
    return scheme.lower() in ("http", "https") and any(parts[i:i + 4] == route for i in range(len(parts) - 3))


def _logged_model(workspace: Any, source: str, model_id: str) -> tuple[str, str | None]:
    """(artifact location, source run id) of the logged model a source names (MLflow's invalid
    source error when there is none)."""
    from shipyard.tracking.logged_models import locate

    try:
        return locate(workspace, model_id)
    except NotFound:
        raise _invalid_source(source, "model_id") from None


def _model_artifact_source(workspace: Any, source: str, model_id: str) -> Source:
    """A source given with ``model_id``: ``runs:/`` is refused; an artifact URI must lie inside the
    logged model's artifact location (then its files are read); anything else is recorded."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "runs":
        raise _invalid_source(source, "model_id")
    parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
    if not _is_artifact_source(parsed.scheme, parts):
        return Source("external", model_id=model_id)
    location, source_run = _logged_model(workspace, source, model_id)
    root = [p for p in urllib.parse.urlparse(location).path.split("/") if p]
    tail = parts[parts.index("artifacts") + 1:] if parsed.scheme.lower() != "mlflow-artifacts" else parts
    if not root or tail[:len(root)] != root:
        raise _invalid_source(source, "model_id")
    return Source("model", model_id=model_id, run_id=source_run, path="/".join(tail[len(root):]))


def create_version(workspace: Any, name: str, source: str, *, run_id: str | None = None,
                   model_id: str | None = None, description: str | None = None,
                   tags: dict[str, str] | None = None, actor: str | None = None) -> dict[str, Any]:
    """MLflow's ``model-versions/create``: check the source, package what it points at, register.

    The model is packaged before the write transaction (packaging reads, checks and loads it);
    the version is then numbered and recorded in one transaction with its audit event.
    """
    validate_name(name)
    checked = dict(check_tag(k, v) for k, v in (tags or {}).items())
    where = check_source(workspace, source, run_id, model_id)
    if where.kind == "model" and not run_id:
        run_id = where.run_id   # the logged model's source run, as MLflow's store records it
    packaged, lineage = _package_source(workspace, where)
    model_oid = packaged.model_oid if packaged else ""
    if packaged is not None and lineage is not None:
        model_oid, lineage["supply"] = _at_registration(workspace, packaged, f"{name} ({source})")
    with workspace.store.write() as session:
        from shipyard.store import runs as runs_repo

        known_run = run_id if run_id and session.get(runs_repo.Run, run_id) is not None else None
        hidden = {MODEL_ID_TAG: model_id} if model_id else {}
        if run_id and known_run is None:
            hidden[RUN_ID_TAG] = run_id   # MLflow keeps any run_id; ours must name a run we have
        all_tags = {**checked, **hidden}
        model, row = record_version(
            session, name, model_oid=model_oid,
            content_oid=packaged.file_oid if packaged else None,
            flavor=packaged.flavor if packaged else EXTERNAL_FLAVOR, run_id=known_run, source=source,
            signature=packaged.signature if packaged else None, lineage=lineage, description=description,
            size_bytes=packaged.size_bytes if packaged else 0, trusted=bool(packaged and packaged.trusted),
            tags=all_tags, actor=actor)
        return version_entity(model, row, {}, all_tags)   # a new version: no alias points at it yet


def _package_source(workspace: Any, where: Source) -> tuple[Any, dict[str, Any] | None]:
    """(the package, the version's lineage) for the MLflow model a source points at.

    Its files are already in our object store (uploaded through the artifact proxy), so they
    are read from there, each verified against its hash, and packaged from memory with the
    flavor the MLmodel maps to. A model file that would run code is refused, never stored; a
    source we cannot load is recorded (no package, flavor external) with the reason, since
    MLflow accepts any source.
    """
    from shipyard.models.flavors.mlflow import package_mlflow_files
    from shipyard.tracking import logged_models

    if where.kind == "external":
        return None, None
    try:
        if where.kind == "model":
            files = logged_models.logged_model_files(workspace, where.model_id or "")
            prefix = f"{where.path}/" if where.path else ""   # '..' parts were refused (check_relative)
            files = {p[len(prefix):]: oid for p, oid in files.items() if p.startswith(prefix)}
            folder = f"logged model {where.model_id}" + (f" ({where.path})" if where.path else "")
        else:
            files = logged_models.run_artifact_files(workspace, where.run_id or "", where.path)
            folder = f"run {where.run_id} artifact {where.path or '.'!r}"
        packaged, mapped = package_mlflow_files(workspace.objects, files, folder, untrusted_ok=True)
    except UnsafeModel:
        raise
    except (NotFound, InputError) as exc:
        return None, {"mlflow": {"unpackaged": exc.message}}
    return packaged, {"mlflow": mapped.to_dict()}


def _at_registration(workspace: Any, packaged: Any, target: str) -> tuple[str, dict[str, Any]]:
    """What ``shipyard run``'s registrations do for the supply chain, for a version created over
    MLflow's API: scan under the project's ``supply.scan`` policy, SBOM, and signing with the
    project's key (the package id changes when it is signed). A python_function package is scanned
    with its flavor's allow-list (``models.flavors.pyfunc.registration_settings``).
    """
    from shipyard.models.flavors.pyfunc import registration_settings
    from shipyard.supply.registration import at_registration, project_settings

    root = workspace.project.root
    settings = registration_settings(project_settings(root), workspace.objects, packaged)
    return at_registration(workspace.objects, packaged.model_oid, packaged.flavor, settings, root=root, target=target)


def download_uri(workspace: Any, name: str, version: int) -> str:
    """MLflow's ``get-download-uri``: a logged model's artifact location for a ``models:/m-...``
    source, the referenced version's for ``models:/NAME/V``, else the source as given."""
    seen: set[tuple[str, int]] = set()
    source = ""
    while (name, version) not in seen:
        seen.add((name, version))
        with workspace.store.read() as session:
            row = version_of(session, model_of(session, name), version)
            source, model_id = row.source or "", repo.version_tags_many(session, [row.id])[row.id].get(MODEL_ID_TAG)
        parsed = urllib.parse.urlparse(source)
        parts = [p for p in parsed.path.split("/") if p]
        if parsed.scheme != "models" or not parts:
            return source
        if model_id and parts == [model_id]:
            return _logged_model(workspace, source, model_id)[0]
        if len(parts) != 2 or not parts[1].isdigit():
            return source
        name, version = parts[0], int(parts[1])
    raise InvalidParameter(f"model version source {source!r} refers back to itself")
