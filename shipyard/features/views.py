"""Feature views as the CLI shows them: listing with their users, definitions across git revisions,
and materialization into the online store (recorded as a tracked run, like a stage)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from shipyard.errors import InputError, ShipyardError
from shipyard.features.repo import RepoDefinitions, ViewDef, load_definitions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def describe(view: ViewDef, root: Path | None = None) -> dict[str, Any]:
    """A view as plain data (what ``features list --json`` prints per view)."""
    source = Path(view.source)
    if root is not None:
        try:
            source = source.relative_to(root)
        except ValueError:
            pass
    return {"name": view.name, "features": list(view.features), "join_keys": list(view.join_keys),
            "ttl_s": view.ttl_s, "source": str(source), "definition": view.definition}


def stages_using(stages: Mapping[str, Any]) -> dict[str, list[str]]:
    """{view: [stage, ...]} from the pipeline's stage specs (their ``features.refs``)."""
    users: dict[str, list[str]] = {}
    for name, spec in stages.items():
        if spec.features is None:
            continue
        for view in dict.fromkeys(ref.split(":", 1)[0] for ref in spec.features.refs):
            users.setdefault(view, []).append(name)
    return users


def runs_reading(session: Any, view: str) -> list[dict[str, Any]]:
    """The stage runs that read ``view`` (newest first), each with the definition it read and the
    model versions registered from its pipeline run."""
    from sqlalchemy import select

    from shipyard.store import registry as models_repo
    from shipyard.store import runs as runs_repo

    def models_of(run_id: str) -> list[str]:
        rows = models_repo.list_versions(session, None, run_id=run_id)
        names = {m.id: m.name for m in models_repo.models_by_id(session, list({r.model_id for r in rows}))}
        return [f"{names[r.model_id]}@{r.version}" for r in rows]

    found = []
    tags = session.scalars(select(runs_repo.Tag).where(runs_repo.Tag.key == "shipyard.features"))
    for tag in tags:
        info = json.loads(tag.value)
        if view not in (info.get("views") or {}):
            continue
        run = session.get(runs_repo.Run, tag.run_id)
        models = [ref for rid in (tag.run_id, getattr(run, "parent_run_id", None)) if rid for ref in models_of(rid)]
        found.append({"run": tag.run_id, "stage": getattr(run, "name", None), "start_time": getattr(run, "start_time", None),
                      "definition": info["views"][view], "dataset": info.get("dataset"), "models": models})
    return sorted(found, key=lambda r: r["start_time"] or 0, reverse=True)


def definitions_at(root: Path, repo: Path, rev: str) -> RepoDefinitions:
    """The repository's views as committed at git revision ``rev`` (read from ``git archive``)."""
    rel = repo.relative_to(root).as_posix()
    done = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", rev, rel], capture_output=True)
    if done.returncode != 0:
        raise InputError(f"git revision {rev!r} has no {rel}/: {done.stderr.decode(errors='replace').strip()}",
                         hint="name a commit, branch or tag where the feature repository exists")
    with tempfile.TemporaryDirectory(prefix="shipyard-features-") as tmp:
        with tarfile.open(fileobj=BytesIO(done.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        defs = load_definitions(Path(tmp) / rel)
    return RepoDefinitions(repo, defs.project, defs.views)


def diff_definitions(old: RepoDefinitions, new: RepoDefinitions) -> list[dict[str, Any]]:
    """Per view: added, removed or changed (with the fields that differ)."""
    out = []
    for name in sorted(set(old.views) | set(new.views)):
        a, b = old.views.get(name), new.views.get(name)
        if a is None or b is None:
            out.append({"view": name, "change": "added" if a is None else "removed"})
        elif a.definition != b.definition:
            fields = [f for f in ("features", "join_keys", "ttl_s", "timestamp_field", "created_field", "field_mapping")
                      if getattr(a, f) != getattr(b, f)]
            if Path(a.source).name != Path(b.source).name:
                fields.append("source")
            out.append({"view": name, "change": "changed", "fields": fields or ["definition"],
                        "old": a.definition, "new": b.definition})
    return out


def materialize(repo: Path, views: Iterable[str], start: datetime | None, end: datetime | None,
                each: Callable[[Iterable[str]], Iterable[str]] = lambda names: names) -> dict[str, Any]:
    """Copy the latest values in ``[start, end]`` of each view into the online store (``feast
    materialize``, one view at a time so ``each`` can show progress); returns what was done."""
    from shipyard.features.repo import open_store

    store = open_store(repo)
    names = list(views) or [fv.name for fv in store.list_feature_views()]
    end = end or datetime.now(UTC)
    start = start or EPOCH
    if start >= end:
        raise InputError(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
    seconds: dict[str, float] = {}
    for name in each(names):
        began = time.perf_counter()
        try:
            store.materialize(start_date=start, end_date=end, feature_views=[name])
        except Exception as exc:  # Feast's own failure (unknown view, unreachable online store)
            raise ShipyardError(f"materializing feature view {name!r} failed: {type(exc).__name__}: {exc}",
                                hint="check the online store in feature_store.yaml ('shipyard doctor')") from exc
        seconds[name] = round(time.perf_counter() - began, 3)
    return {"views": names, "start": start.isoformat(), "end": end.isoformat(), "seconds": seconds}


def record_materialize(store: Any, result: Mapping[str, Any], status: str = "FINISHED") -> str:
    """A tracked run for one materialization (params: window and views; metrics: seconds per view)."""
    import uuid

    from shipyard.store import runs

    run_id = uuid.uuid4().hex
    with store.write() as session:
        experiment = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
        runs.create_run(session, experiment_id=experiment.id, run_id=run_id, name="features materialize",
                        source="features", tags={"shipyard.features.materialize": json.dumps(list(result["views"]))})
        runs.log_params(session, run_id, {"start": result["start"], "end": result["end"],
                                          "views": ",".join(result["views"])})
        runs.log_metrics(session, run_id, [runs.MetricValue(f"seconds.{k}", v, 0) for k, v in result["seconds"].items()])
        runs.finish_run(session, run_id, status)
    return run_id
