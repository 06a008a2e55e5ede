"""Lineage of a model version: version -> run -> dataset versions -> git commit -> stage fingerprints."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.registry.core import ModelVersion
from shipyard.store import runs as runs_repo

FINGERPRINT_TAGS = ("shipyard.fingerprint", "shipyard.stage.fingerprint", "fingerprint")
STAGE_TAGS = ("shipyard.stage", "stage")
FEATURES_TAG = "shipyard.features"  # the feature views a stage read (shipyard.features.stage)


def _run_info(session: Session, run: runs_repo.Run) -> dict[str, Any]:
    tags = {t.key: t.value for t in session.scalars(select(runs_repo.Tag).where(runs_repo.Tag.run_id == run.id))}
    params = {p.key: p.value for p in session.scalars(select(runs_repo.Param).where(runs_repo.Param.run_id == run.id))}
    datasets = [{"name": d.name, "digest": d.digest, "context": d.context, "source": d.source}
                for d in session.scalars(select(runs_repo.DatasetInput).where(runs_repo.DatasetInput.run_id == run.id))]
    stage = next((tags[k] for k in STAGE_TAGS if k in tags), None)
    fingerprint = next((tags[k] for k in FINGERPRINT_TAGS if k in tags), None)
    features = json.loads(tags[FEATURES_TAG]) if FEATURES_TAG in tags else None
    return {"id": run.id, "name": run.name, "status": run.status, "stage": stage, "fingerprint": fingerprint,
            "git_commit": run.git_commit, "git_branch": run.git_branch, "git_dirty": run.git_dirty,
            "params": params, "datasets": datasets, **({"features": features} if features else {})}


def lineage(session: Session, mv: ModelVersion) -> dict[str, Any]:
    """The lineage tree of ``mv`` as plain data (what ``models lineage`` prints)."""
    tree: dict[str, Any] = {"model": mv.ref, "model_oid": mv.model_oid, "flavor": mv.flavor,
                            "registered_from": mv.lineage, "run": None, "pipeline": None, "stages": []}
    if mv.run_id is None:
        return tree
    run = session.get(runs_repo.Run, mv.run_id)
    if run is None:
        tree["run"] = {"id": mv.run_id, "missing": True}
        return tree
    tree["run"] = _run_info(session, run)
    top = run
    if run.parent_run_id:
        parent = session.get(runs_repo.Run, run.parent_run_id)
        if parent is not None:
            tree["pipeline"] = _run_info(session, parent)
            top = parent
    stages = session.scalars(select(runs_repo.Run).where(runs_repo.Run.parent_run_id == top.id)
                             .order_by(runs_repo.Run.start_time))
    tree["stages"] = [_run_info(session, s) for s in stages]
    return tree


def datasets_of(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dataset version seen anywhere in the tree (deduplicated by name and digest)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for node in [tree.get("run"), tree.get("pipeline"), *tree.get("stages", [])]:
        for d in (node or {}).get("datasets", []) or []:
            seen.setdefault((d["name"], d["digest"]), d)
    for key in ("train", "eval"):
        data = (tree.get("registered_from") or {}).get(key)
        if data:
            seen.setdefault((data["path"], data["oid"]), {"name": data["path"], "digest": data["oid"], "context": key,
                                                          "source": data["path"]})
    return list(seen.values())


def render_tree(tree: dict[str, Any]) -> list[str]:
    """Indented text lines of the lineage tree."""
    lines = [f"{tree['model']}  ({tree['flavor']}, {tree['model_oid']})"]
    run = tree.get("run")
    if not run:
        lines.append("└── run: none recorded (register with --run RUN to link one)")
    else:
        lines.append(f"├── run {run['id']}" + (f" ({run['name']})" if run.get("name") else "") + f" {run.get('status', '')}")
        commit = run.get("git_commit") or (tree.get("pipeline") or {}).get("git_commit")
        dirty = run.get("git_dirty")
        lines.append(f"│   ├── git commit: {commit or 'unknown'}" + (" (dirty work tree)" if dirty else ""))
        if run.get("params"):
            lines.append("│   ├── params: " + ", ".join(f"{k}={v}" for k, v in sorted(run["params"].items())))
        pipeline = tree.get("pipeline")
        if pipeline:
            lines.append(f"│   └── pipeline run {pipeline['id']}" + (f" ({pipeline['name']})" if pipeline.get("name") else ""))
    datasets = datasets_of(tree)
    lines.append("├── datasets:" if datasets else "├── datasets: none recorded")
    for i, d in enumerate(datasets):
        branch = "└──" if i == len(datasets) - 1 else "├──"
        lines.append(f"│   {branch} {d['name']} @ {d['digest']}" + (f" [{d['context']}]" if d.get("context") else ""))
    views = {name: digest for s in tree.get("stages") or [] for name, digest in
             ((s.get("features") or {}).get("views") or {}).items()}
    if views:
        lines.append("├── feature views:")
        for i, (name, digest) in enumerate(sorted(views.items())):
            lines.append(f"│   {'└──' if i == len(views) - 1 else '├──'} {name} @ {digest}")
    stages = tree.get("stages") or []
    lines.append("└── stages:" if stages else "└── stages: none recorded")
    for i, s in enumerate(stages):
        branch = "└──" if i == len(stages) - 1 else "├──"
        name = s.get("stage") or s.get("name") or s["id"]
        lines.append(f"    {branch} {name}: fingerprint {s.get('fingerprint') or 'not recorded'} (run {s['id']}, {s['status']})")
    return lines


def to_json(tree: dict[str, Any]) -> str:
    return json.dumps(tree, indent=2, default=str)
