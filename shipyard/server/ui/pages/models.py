"""``/models``: registered models; ``/models/{model}``: versions, aliases (and their history), every
gate verdict with each check's value, threshold and reason; ``/models/{model}/{version}``: the model
card, the lineage graph (data versions -> run -> commit -> model version -> deployments) and the
version's verdicts in full. ``{version}`` is a number or an alias (``/models/iris/champion``).

One version is read through the registry (``resolve``, ``lineage``, ``render_card``) as ``shipyard
models show|card|lineage`` print it; lists read only the columns they show from the registry's
tables (a version's stored training profile can be large, and ``find_versions`` parses each one).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from shipyard.errors import InputError, NotFound
from shipyard.gates.verdict import _fmt as fmt_value
from shipyard.registry import resolve
from shipyard.registry.core import CHAMPION, ModelVersion
from shipyard.server.ui.pages._graph import Node, layered_svg
from shipyard.server.ui.pages.runs import when
from shipyard.server.ui.render import not_found, render
from shipyard.store import registry as repo
from shipyard.store import serving as serving_repo

DEPLOY_CLASS = {"promoted": "ok", "rolled_back": "bad", "aborted": "bad", "running": "warn", "paused": "warn"}


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt  # rich's own dependency: always installed

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str) -> Markup:
    """Markdown (a model card, a verdict) as HTML; raw HTML in the text is escaped, not passed."""
    return Markup(_markdown().render(text))


def gate(passed: bool | None) -> tuple[str, str]:
    """(label, css class) of a latest verdict that passed, failed or (None) does not exist, as
    ``shipyard models list`` says it."""
    if passed is None:
        return "not gated", "muted"
    return ("passed", "ok") if passed else ("failed", "bad")


def gate_label(mv: ModelVersion) -> tuple[str, str]:
    """(label, css class) of a version's latest verdict."""
    return gate(None if mv.verdict is None else bool(mv.passed_gate))


def verdict_view(row: repo.VerdictRow) -> dict[str, Any]:
    """One stored verdict with every check's value, threshold and reason formatted for a page."""
    body = json.loads(row.body)
    checks = [{**c, "value_text": fmt_value(c.get("value")), "threshold_text": fmt_value(c.get("threshold")),
               "cls": {"pass": "ok", "FAIL": "bad"}.get(c.get("status", ""), "muted")}
              for c in body.get("checks", [])]
    return {"id": row.id, "passed": row.passed, "champion_version": row.champion_version, "when": when(row.created_at),
            "checks": checks, "notes": body.get("notes", []), "candidate": body.get("candidate")}


def version_rows(session: Session, model: repo.RegisteredModel) -> list[dict[str, Any]]:
    """Every live version of ``model``, newest first, with its aliases and all its verdicts (newest
    first). Only the columns a page shows are read: a version's stored training profile can be
    hundreds of kilobytes, and ``find_versions`` would parse each one."""
    columns = (repo.ModelVersionRow.id, repo.ModelVersionRow.version, repo.ModelVersionRow.flavor,
               repo.ModelVersionRow.run_id, repo.ModelVersionRow.created_at)
    found = session.execute(select(*columns).where(repo.ModelVersionRow.model_id == model.id,
                                                   repo.ModelVersionRow.status != repo.DELETED)
                            .order_by(repo.ModelVersionRow.version.desc())).all()
    stored = repo.verdicts_of(session, [r.id for r in found])
    aliases = repo.aliases_many(session, [model.id])[model.id]
    rows = []
    for r in found:
        verdicts = [verdict_view(v) for v in reversed(stored[r.id])]
        rows.append({"version": r.version, "ref": f"{model.name}@{r.version}", "flavor": r.flavor, "run_id": r.run_id,
                     "when": when(r.created_at), "gate": gate(verdicts[0]["passed"] if verdicts else None),
                     "verdicts": verdicts,
                     "aliases": sorted(a for a, v in aliases.items() if v == r.version)})
    return rows


def model_summaries(session: Session) -> list[dict[str, Any]]:
    """Per model: number of versions, newest version, aliases, the champion, and the latest gate
    verdict of the champion and of the newest version, in five queries whatever the number of
    versions (``find_versions`` would parse every version's stored training profile)."""
    models = {m.id: m.name for m in repo.list_models(session, limit=None)}
    if not models:
        return []
    live = repo.ModelVersionRow.status != repo.DELETED
    counts = {model_id: (count, newest) for model_id, count, newest in session.execute(
        select(repo.ModelVersionRow.model_id, func.count(), func.max(repo.ModelVersionRow.version))
        .where(live).group_by(repo.ModelVersionRow.model_id))}
    aliases = repo.aliases_many(session, list(models))
    wanted = {(i, v) for i, (_, newest) in counts.items() for v in (newest, aliases[i].get(CHAMPION)) if v is not None}
    ids = {(model_id, version): vid for vid, model_id, version in session.execute(
        select(repo.ModelVersionRow.id, repo.ModelVersionRow.model_id, repo.ModelVersionRow.version)
        .where(live, repo.ModelVersionRow.model_id.in_({i for i, _ in wanted})))
        if (model_id, version) in wanted}
    verdicts = repo.verdicts_of(session, list(ids.values()))

    def gate_of(model_id: int, version: int | None) -> tuple[str, str] | None:
        if version is None or (model_id, version) not in ids:
            return None
        found = verdicts[ids[(model_id, version)]]
        return gate(found[-1].passed if found else None)

    out = []
    for model_id, name in models.items():
        count, newest = counts.get(model_id, (0, None))
        champion = aliases[model_id].get(CHAMPION)
        out.append({"name": name, "versions": count, "newest": newest, "aliases": aliases[model_id],
                    "champion": champion, "champion_gate": gate_of(model_id, champion),
                    "newest_gate": gate_of(model_id, newest)})
    return out


def models_page(request: Request) -> HTMLResponse:
    """Each registered model: versions, aliases, its champion and the champion's gate."""
    with request.app.state.workspace.store.read() as session:
        models = model_summaries(session)
    return render(request, "models.html", {"models": models}, nav="/models")


def model_page(request: Request) -> HTMLResponse:
    """One model: its versions with aliases and every gate verdict, and the alias history."""
    name = request.path_params["model"]
    with request.app.state.workspace.store.read() as session:
        model = repo.find_model(session, name)
        if model is None:
            return not_found(request, f"model {name!r}")
        rows = version_rows(session, model)
        history = [{"alias": h.alias, "version": h.version, "previous": h.previous_version, "actor": h.actor,
                    "forced": h.forced, "reason": h.reason, "when": when(h.at)}
                   for h in reversed(repo.alias_history(session, model))]
    aliases = sorted((a, r["version"]) for r in rows for a in r["aliases"])
    return render(request, "models_model.html", {"name": name, "description": model.description, "rows": rows,
                                                 "aliases": aliases, "history": history}, nav="/models")


def lineage_svg(mv: ModelVersion, tree: dict[str, Any], deployments: list[Any]) -> Markup:
    """data versions -> run -> git commit -> model version -> deployments, as a layered graph."""
    from shipyard.registry.lineage import datasets_of

    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    run = tree.get("run") or {}
    commit = run.get("git_commit") or (tree.get("pipeline") or {}).get("git_commit")
    model_key = f"model:{mv.ref}"
    run_key = f"run:{run['id']}" if run.get("id") else None
    commit_key = f"commit:{commit}" if commit else None
    for d in datasets_of(tree):
        name, _, version = str(d["name"]).partition("@")
        href = f"/data/{name}/{version}" if version.isdigit() else None
        key = f"data:{d['name']}:{d['digest']}"
        nodes.append(Node(key, str(d["name"]), d.get("context") or "dataset", href=href))
        edges.append((key, run_key or commit_key or model_key))
    if run_key:
        label = run.get("stage") or run.get("name") or "run"
        nodes.append(Node(run_key, f"run {label}", run["id"][:12], href=f"/runs/{run['id']}",
                          cls="bad" if run.get("missing") else ""))
        edges.append((run_key, commit_key or model_key))
    if commit_key:
        nodes.append(Node(commit_key, f"commit {commit[:10]}", "dirty work tree" if run.get("git_dirty") else "git"))
        edges.append((commit_key, model_key))
    nodes.append(Node(model_key, mv.ref, mv.flavor, href=f"/models/{mv.name}/{mv.version}", cls="ok"))
    for d in deployments:
        key = f"deploy:{d.id}"
        nodes.append(Node(key, f"deployment #{d.id}", f"{d.strategy} · {d.state}", href=f"/rollouts/{mv.name}",
                          cls=DEPLOY_CLASS.get(d.state, "")))
        edges.append((model_key, key))
    return layered_svg(nodes, edges, element_id="model-lineage", title=f"lineage of {mv.ref}")


def version_page(request: Request) -> HTMLResponse:
    """One version: model card, lineage graph, deployments and every gate verdict in full."""
    from shipyard.gates.runner import run_metrics
    from shipyard.registry.card import render_card
    from shipyard.registry.lineage import lineage

    name, version = request.path_params["model"], request.path_params["version"]
    with request.app.state.workspace.store.read() as session:
        try:
            mv = resolve(session, f"{name}@{version}")
        except (NotFound, InputError):
            return not_found(request, f"version {version!r} of model {name!r}")
        tree = lineage(session, mv)
        card = render_card(mv, tree, run_metrics(session, mv.run_id))
        row = repo.get_version(session, repo.get_model(session, name), mv.version)
        verdicts = [verdict_view(v) for v in reversed(repo.verdicts_of(session, [row.id])[row.id])]
        deployments = [d for d in serving_repo.latest_deployments(session, name, limit=200) if d.candidate == mv.version]
    views = [{"id": d.id, "strategy": d.strategy, "state": d.state, "step": d.step, "champion": d.champion,
              "reason": d.reason or "", "cls": DEPLOY_CLASS.get(d.state, "")} for d in deployments]
    return render(request, "models_version.html", {
        "mv": mv, "gate": gate_label(mv), "card": markdown(card), "svg": lineage_svg(mv, tree, deployments),
        "verdicts": verdicts, "deployments": views, "when": when(mv.created_at)}, nav="/models")


routes = [Route("/models", models_page, methods=["GET"]),
          Route("/models/{model}", model_page, methods=["GET"]),
          Route("/models/{model}/{version}", version_page, methods=["GET"])]
permissions = {"/models": "models:read", "/models/{model}": "models:read", "/models/{model}/{version}": "models:read"}
