"""``/runs/{run_id}``: one run. Params, newest metric values (searchable, capped: a run may hold
12,000 keys), charts of chosen metrics over steps (downsampled on the server), tags, dataset inputs,
models it wrote, model versions registered from it, artifacts with size-capped previews, the stage's
log, git commit, parent and child runs.

``/runs/{run_id}/artifacts/{path}`` downloads an artifact (``?preview=1``: the preview fragment).
The path goes through the one check of an artifact key (``tracking.paths.safe_relative``, the
counterpart of ``project.resolve_inside`` for keys that never touch the disk), on the raw URL too, so
``..``, absolute and URL-encoded escapes are refused with a 400 page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from shipyard.errors import InputError, NotFound
from shipyard.objects.store import key_of
from shipyard.server.common import in_thread
from shipyard.server.tracking import artifact_path
from shipyard.server.ui.pages import _artifacts, _charts
from shipyard.server.ui.pages.runs import duration, when
from shipyard.server.ui.render import bad_request, not_found, render
from shipyard.store import run_views as views
from shipyard.store import runs as repo

MAX_KEYS = 200  # params and metrics listed at once; a search narrows the rest
MAX_CHARTS = 8
DEFAULT_CHARTS = 4
LOG_BYTES = 64 * 1024


def _run_id(request: Request) -> str:
    run_id = request.path_params["run_id"]
    if not 0 < len(run_id) <= 32 or not run_id.isalnum():
        raise NotFound(f"run {run_id!r}")
    return run_id


def _keyed(session: Any, kind: str, run_id: str, contains: str) -> tuple[list[tuple[str, Any]], int]:
    keys, _ = views.keys_page(session, kind, contains=contains, limit=MAX_KEYS, run_ids=[run_id])
    values = views.values_of(session, kind, [run_id], keys)
    return [(k, values[k].get(run_id)) for k in keys], views.count_keys(session, kind, [run_id])


def _log_tail(objects: Any, oid: str | None) -> dict[str, Any] | None:
    if not oid:
        return None
    local = objects.backend.local_path(key_of(oid))
    if local is not None:
        size = local.stat().st_size
        with open(local, "rb") as handle:
            handle.seek(max(0, size - LOG_BYTES))
            data = handle.read()
    else:
        data = objects.get_bytes(oid)
        size = len(data)
        data = data[-LOG_BYTES:]
    return {"text": data.decode("utf-8", errors="replace"), "cut": size > LOG_BYTES, "oid": oid}


def load_run(request: Request, run_id: str) -> dict[str, Any]:
    """Everything the page shows (in a worker thread); NotFound for an unknown run."""
    qp = request.query_params
    contains = qp.get("mq", "")[:250]
    ws = request.app.state.workspace
    with ws.store.read() as session:
        run = repo.get_run(session, run_id)
        experiment = views.experiment_names(session, [run.experiment_id]).get(run.experiment_id, "")
        params, n_params = _keyed(session, "params", run_id, "")
        metrics, n_metrics = _keyed(session, "metrics", run_id, contains)
        tags, _ = _keyed(session, "tags", run_id, "")
        links = views.run_links(session, run_id)
        chosen = [m for m in dict.fromkeys(qp.getlist("metric")) if m][:MAX_CHARTS]
        if not chosen:
            chosen = [k for k, _ in metrics if not k.startswith("system/")][:DEFAULT_CHARTS]
        label = run.name or run_id[:8]
        computed: list[views.Envelope] = []
        charts = [_charts.metric_chart(session, key, [(run_id, label)], computed=computed) for key in chosen]
    _charts.keep(ws.store, computed)
    log = _log_tail(ws.objects, links["stage"]["log_oid"]) if links["stage"] else None
    return {"run": run, "experiment": experiment, "started": when(run.start_time), "ended": when(run.end_time),
            "duration": duration(run), "params": params, "n_params": n_params, "metrics": metrics,
            "n_metrics": n_metrics, "mq": contains, "tags": tags, "charts": charts, "chosen": chosen,
            "chart_json": _charts.as_attribute, "log": log, "quote": quote, **links}


async def run_page(request: Request) -> Response:
    """One run's page; 404 page for an unknown run id."""
    try:
        run_id = _run_id(request)
        data = await in_thread(load_run, request, run_id)
    except NotFound:
        return not_found(request, f"run {request.path_params['run_id']!r}")
    return render(request, "run.html", data, nav="/runs")


def _artifact(request: Request, run_id: str, path: str) -> tuple[str, int]:
    with request.app.state.workspace.store.read() as session:
        if session.get(repo.Run, run_id) is None:
            raise NotFound(f"run {run_id!r}")
        row = session.get(repo.Artifact, (run_id, path))
        if row is None:
            raise NotFound(f"artifact {path!r} in run {run_id!r}")
        return row.oid, row.size


async def artifact(request: Request) -> Response:
    """Download an artifact, or (``?preview=1``) its size-capped preview as an HTML fragment."""
    try:
        run_id = _run_id(request)
        path = artifact_path(request)
        oid, size = await in_thread(_artifact, request, run_id, path)
    except NotFound as exc:
        return not_found(request, exc.message)
    except InputError as exc:  # PathEscapeError too: an escaping or absolute path
        return bad_request(request, exc.message)
    objects = request.app.state.workspace.objects
    url = f"/runs/{run_id}/artifacts/{quote(path)}"
    if request.query_params.get("preview"):
        shown = await in_thread(_artifacts.preview, objects, path, oid, size)
        return render(request, "run_preview.html", {"preview": shown, "path": path, "size": size, "url": url})
    headers = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    media = _artifacts.media_type(path)
    if media == "application/octet-stream":
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"
    local = objects.backend.local_path(key_of(oid))
    if local is not None:
        return FileResponse(local, media_type=media, headers=headers)
    return Response(await in_thread(objects.get_bytes, oid), media_type=media, headers=headers)


routes = [
    Route("/runs/{run_id}", run_page, methods=["GET"]),
    Route("/runs/{run_id}/artifacts/{path:path}", artifact, methods=["GET"]),
]
permissions = {"/runs/{run_id}": "runs:read", "/runs/{run_id}/artifacts/{path:path}": "runs:read"}
