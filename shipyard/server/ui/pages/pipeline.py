"""``/pipeline``: the DAG with each stage's last execution (status, cache hit or run, duration, CPU,
peak memory) and what ``shipyard status`` says now; ``/pipeline/stages/{stage}``: ``shipyard
explain`` for one stage (each changed input with its old and new value) and its recent executions.

The pipeline comes from the project's config through ``pipeline.runner.Context`` (as the CLI reads
it); executions come from the store. A config that does not load is shown on the page, not a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from shipyard.errors import ShipyardError
from shipyard.server.ui.pages._graph import Node, layered_svg
from shipyard.server.ui.render import error_page, not_found, render
from shipyard.store import pipeline as repo

STATE_CLASS = {"SUCCEEDED": "ok", "RESTORED": "ok", "FAILED": "bad", "KILLED": "bad", "RUNNING": "warn",
               "SKIPPED": "muted"}
RECENT = 10  # executions shown on a stage's page


def context(request: Request) -> Any:
    """The project's pipeline as ``shipyard status`` opens it (config, lock file, hash cache)."""
    from shipyard.pipeline.runner import Context

    project = request.app.state.workspace.project
    return Context(project.root, project.state_dir, echo=lambda _message: None)


def seconds(value: float | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 05 s."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60):02d} s"


def shown(value: Any) -> str | None:
    """An input's value for a page: strings as they are, anything else as JSON (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def megabytes(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:.1f} MB"


def execution_facts(row: repo.StageExecution) -> dict[str, Any]:
    """One stage execution as a page shows it (raw numbers kept for data- attributes)."""
    took = (row.ended_at - row.started_at) / 1000 if row.ended_at is not None else None
    cache = "cache hit" if row.cache_hit or row.status == "RESTORED" else (
        "skipped" if row.status == "SKIPPED" else "ran")
    return {"stage": row.stage, "status": row.status, "cls": STATE_CLASS.get(row.status, ""), "cache": cache,
            "duration": seconds(took), "duration_s": took, "cpu": seconds(row.cpu_seconds),
            "cpu_s": row.cpu_seconds, "memory": megabytes(row.peak_memory_bytes),
            "memory_bytes": row.peak_memory_bytes, "run_id": row.run_id, "pipeline_run": row.pipeline_run_id,
            "started_at": row.started_at, "exit_code": row.exit_code, "reason": row.reason or ""}


def last_executions(session: Session, stages: Iterable[str]) -> dict[str, repo.StageExecution]:
    """Each stage's newest execution in any pipeline run, in one query."""
    names = list(stages)
    if not names:
        return {}
    newest: dict[str, repo.StageExecution] = {}
    query = (select(repo.StageExecution).where(repo.StageExecution.stage.in_(names))
             .order_by(repo.StageExecution.id.desc()))
    for row in session.scalars(query):
        newest.setdefault(row.stage, row)
        if len(newest) == len(names):
            break
    return newest


def last_run(session: Session) -> dict[str, Any] | None:
    """The newest pipeline run with its stage executions (None before the first ``shipyard run``)."""
    found = repo.list_pipeline_runs(session, limit=1)
    if not found:
        return None
    run = found[0]
    took = (run.ended_at - run.started_at) / 1000 if run.ended_at is not None else None
    return {"id": run.id, "status": run.status, "cls": STATE_CLASS.get(run.status, ""), "started_at": run.started_at,
            "duration": seconds(took), "targets": run.targets, "executor": run.executor,
            "stages": [execution_facts(row) for row in repo.stage_executions(session, run.id)]}


def dag_svg(order: Sequence[str], upstream: dict[str, Sequence[str]], facts: dict[str, dict[str, Any]],
            stale: set[str]) -> Any:
    """The DAG as SVG: one node per stage, coloured by its last status, linked to its page; a stage
    that ``shipyard run`` would run now says so."""
    nodes = []
    for name in order:
        fact = facts.get(name)
        sub = f"{fact['status'].lower()} · {fact['cache']}" if fact else "never run"
        sub += " · would run" if name in stale and fact else ""
        nodes.append(Node(name, name, sub, href=f"/pipeline/stages/{name}", cls=fact["cls"] if fact else "muted"))
    edges = [(up, name) for name in order for up in upstream[name]]
    return layered_svg(nodes, edges, element_id="pipeline-dag", title="pipeline stages and what feeds what")


def pipeline_page(request: Request) -> HTMLResponse:
    """The DAG, each stage's last execution and current state, and the last pipeline run."""
    problem = None
    stages: list[dict[str, Any]] = []
    svg = None
    try:
        ctx = context(request)
    except ShipyardError as exc:
        ctx, problem = None, exc.message + (f" ({exc.hint})" if exc.hint else "")
    with request.app.state.workspace.store.read() as session:
        run = last_run(session)
        if ctx is not None:
            dag = ctx.dag
            facts = {name: execution_facts(row) for name, row in last_executions(session, dag.order).items()}
    if ctx is not None:
        try:
            now = {s.name: s for s in ctx.status()}
        except ShipyardError as exc:  # e.g. a dep that nothing produces: say so, still show the runs
            now, problem = {}, exc.message
        for name in ctx.dag.order:
            state = now.get(name)
            stages.append({"name": name, "upstream": list(dag.upstream[name]), "last": facts.get(name),
                           "state": state.state if state else "", "reasons": state.reasons if state else []})
        stale = {name for name, state in now.items() if state.stale}
        svg = dag_svg(dag.order, dict(dag.upstream), facts, stale) if dag.order else None
    return render(request, "pipeline.html", {"stages": stages, "svg": svg, "run": run, "problem": problem},
                  nav="/pipeline")


def stage_page(request: Request) -> HTMLResponse:
    """``shipyard explain STAGE``: state, reasons, each changed input (old -> new), recent executions."""
    from shipyard.pipeline.runner import explain

    name = request.path_params["stage"]
    try:
        ctx = context(request)
    except ShipyardError as exc:
        # the project's config, not the request, is wrong: 409 says so without claiming a crash
        return error_page(request, 409, "The pipeline's config does not load", exc.message, nav="/pipeline")
    if name not in ctx.dag.stages:
        return not_found(request, f"stage {name!r} in this pipeline")
    spec = ctx.dag.stages[name]
    try:
        report = explain(ctx, name)
    except ShipyardError as exc:
        report = {"state": "unknown", "reasons": [exc.message], "changes": [], "recorded_fingerprint": None,
                  "current_fingerprint": None}
    # a param's old and new value as JSON (what params.yaml would say), a hash or a path as it is
    report["changes"] = [{**c, "old": shown(c["old"]), "new": shown(c["new"])} for c in report["changes"]]
    with request.app.state.workspace.store.read() as session:
        rows = list(session.scalars(select(repo.StageExecution).where(repo.StageExecution.stage == name)
                                    .order_by(repo.StageExecution.id.desc()).limit(RECENT)))
        executions = [execution_facts(row) for row in rows]
    spec_view = {"cmd": " && ".join(spec.cmd), "deps": list(spec.deps), "outs": [o.path for o in spec.outs],
                 "params": [f"{p.file}:{p.key}" if p.key else p.file for p in spec.params], "upstream": list(ctx.dag.upstream[name]),
                 "downstream": [n for n in ctx.dag.order if name in ctx.dag.upstream[n]]}
    return render(request, "pipeline_stage.html", {"stage": name, "report": report, "spec": spec_view,
                                                   "executions": executions}, nav="/pipeline")


routes = [Route("/pipeline", pipeline_page, methods=["GET"]),
          Route("/pipeline/stages/{stage}", stage_page, methods=["GET"])]
permissions = {"/pipeline": "runs:read", "/pipeline/stages/{stage}": "runs:read"}
