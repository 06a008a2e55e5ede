"""``/runs``: the runs table. Keyset pages of 50 (the cursor is in the URL, never an OFFSET), sort by
any column, the CLI's filter language (``shipyard runs list --filter``: one parser, OR and
parentheses included), ``?experiment=`` (an id, as MLflow's links carry, or a name), a column
picker that pages through keys instead of listing 12,000 checkboxes, checkboxes to compare, and
``/runs.csv`` streaming every run of the current filter.

Every state lives in the URL: htmx swaps only the table (``hx-push-url``), so reload and share work.
Only the chosen columns are read, for only the page's runs (``shipyard.store.run_views``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from shipyard.errors import InputError
from shipyard.server.common import in_thread
from shipyard.server.ui.render import bad_request, render
from shipyard.store import run_views as views
from shipyard.tracking import filter as flt
from shipyard.tracking.search import compile_node

PAGE_SIZE = 50
CSV_CHUNK = 500
MAX_COLUMNS = 60
DEFAULT_METRIC_COLUMNS = 5


@dataclass
class RunsQuery:
    """What the URL asks for: filter, experiment, sort, columns, cursor."""

    filter: str = ""
    experiment: str = ""
    sort: views.Column = field(default_factory=lambda: views.Column("attributes", "start_time"))
    ascending: bool = False
    columns: list[views.Column] = field(default_factory=list)
    chosen: bool = False  # columns came from the URL (else the default set)
    cursor: str = ""

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """This query as URL parameters, with ``changes`` (sort, ascending, cursor) applied."""
        sort = changes.get("sort", self.sort)
        ascending = changes.get("ascending", self.ascending)
        out = [("filter", self.filter)] if self.filter else []
        if self.experiment:
            out.append(("experiment", self.experiment))
        if sort.token != "start_time" or ascending:
            out += [("sort", sort.token), ("dir", "asc" if ascending else "desc")]
        if self.chosen:
            out += [("col", c.token) for c in self.columns]
        if changes.get("cursor"):
            out.append(("cursor", changes["cursor"]))
        return out

    def url(self, path: str = "/runs", **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"{path}?{query}" if query else path


def parse_query(request: Request) -> RunsQuery:
    """The page's URL parameters, checked; InputError names the one that is wrong."""
    qp = request.query_params
    query = RunsQuery(filter=qp.get("filter", "").strip(), experiment=qp.get("experiment", "").strip(),
                      cursor=qp.get("cursor", ""))
    if qp.get("sort"):
        query.sort = views.parse_column(qp["sort"])
    direction = qp.get("dir", "desc")
    if direction not in ("asc", "desc"):
        raise InputError(f"dir {direction!r} is not asc or desc")
    query.ascending = direction == "asc"
    tokens = [t for t in dict.fromkeys(qp.getlist("col")) if t]
    if len(tokens) > MAX_COLUMNS:
        raise InputError(f"{len(tokens)} columns chosen; the table shows at most {MAX_COLUMNS}")
    query.columns = [views.parse_column(t) for t in tokens]
    query.chosen = bool(tokens)
    return query


def where_of(session: Any, query: RunsQuery) -> Any:
    """The SQL condition of the filter text and the experiment (None when neither is given)."""
    from sqlalchemy import and_, false

    parts = []
    node = flt.parse(query.filter)
    if node is not None:
        parts.append(compile_node(node))
    if query.experiment:
        from shipyard.store.runs import Run

        ids = views.experiment_ids(session, query.experiment)
        parts.append(Run.experiment_id.in_(ids) if ids else false())
    return and_(*parts) if parts else None


def number(value: Any) -> str:
    """A table cell's value as text: "" for none, NaN as "NaN", a float to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def when(ms: int | None) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` UTC ("" for None)."""
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(run: Any) -> float | None:
    """A run's wall time in seconds (None while it runs)."""
    return None if run.end_time is None else (run.end_time - run.start_time) / 1000


def cell(run: Any, column: views.Column, values: dict[str, Any]) -> str:
    """The text of one table cell."""
    if column.kind == "attributes":
        if column.key == "start_time":
            return when(run.start_time)
        if column.key == "duration":
            seconds = duration(run)
            return "" if seconds is None else f"{seconds:.1f}s"
        if column.key in ("cpu", "memory"):
            return number(values.get(column.key))
        return str(getattr(run, column.key) or "")
    return number(values.get(column.token))


def _default_columns(session: Any) -> list[views.Column]:
    keys, _ = views.keys_page(session, "metrics", limit=DEFAULT_METRIC_COLUMNS * 4)
    chosen = [k for k in keys if not k.startswith("system/")][:DEFAULT_METRIC_COLUMNS]
    return [views.Column("attributes", "duration"), *(views.Column("metrics", k) for k in chosen)]


def load_page(request: Request, query: RunsQuery) -> dict[str, Any]:
    """The table's rows and the next page's cursor (runs in a worker thread)."""
    with request.app.state.workspace.store.read() as session:
        if not query.chosen:
            query.columns = _default_columns(session)
        runs, next_cursor = views.page_runs(session, where=where_of(session, query), sort=query.sort,
                                            ascending=query.ascending, cursor=query.cursor or None, limit=PAGE_SIZE)
        values = views.column_values(session, [r.id for r in runs], query.columns)
        experiments = views.experiment_names(session, [r.experiment_id for r in runs])
    rows = [{"run": r, "experiment": experiments.get(r.experiment_id, ""), "started": when(r.start_time),
             "cells": [cell(r, c, values[r.id]) for c in query.columns]} for r in runs]
    return {"rows": rows, "next_cursor": next_cursor}


async def runs_page(request: Request) -> Response:
    """The runs table (the whole page, or the table fragment for htmx)."""
    fragment = None if request.headers.get("HX-History-Restore-Request") else "runs_table.html"
    try:
        query = parse_query(request)
        data = await in_thread(load_page, request, query)
    except InputError as exc:
        context = {"query": RunsQuery(filter=request.query_params.get("filter", "")), "rows": [], "next_cursor": None,
                   "error": exc.message, "sort_links": {}, "attributes": views.ATTRIBUTES}
        return render(request, "runs.html", context, status=400, nav="/runs", fragment=fragment)
    sort_links = {c.token: query.url(sort=c, ascending=not query.ascending if c == query.sort else False)
                  for c in [views.Column("attributes", "start_time"), *query.columns]}
    context = {"query": query, **data, "error": "", "sort_links": sort_links, "attributes": views.ATTRIBUTES}
    return render(request, "runs.html", context, nav="/runs", fragment=fragment)


def _csv_rows(request: Request, query: RunsQuery, where: Any) -> Iterator[str]:
    """The CSV text of every run matching ``where`` (the query's filter, resolved once), a chunk at a
    time (keyset pages of ``CSV_CHUNK``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run_id", "name", "experiment", "status", "start_time", "duration_s",
                     *(c.token for c in query.columns)])
    cursor: str | None = query.cursor or None
    while True:
        with request.app.state.workspace.store.read() as session:
            runs, cursor = views.page_runs(session, where=where, sort=query.sort, ascending=query.ascending,
                                           cursor=cursor, limit=CSV_CHUNK)
            values = views.column_values(session, [r.id for r in runs], query.columns)
            names = views.experiment_names(session, [r.experiment_id for r in runs])
        for r in runs:
            raw = [values[r.id].get(c.token) if c.kind != "attributes" else cell(r, c, values[r.id])
                   for c in query.columns]
            writer.writerow([r.id, r.name or "", names.get(r.experiment_id, ""), r.status, when(r.start_time),
                             duration(r) if r.end_time is not None else "", *("" if v is None else v for v in raw)])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if cursor is None:
            return


async def runs_csv(request: Request) -> Response:
    """Every run of the current filter as CSV, streamed (the page's columns; the default set if none)."""
    def check(query: RunsQuery) -> Any:
        with request.app.state.workspace.store.read() as session:
            where = where_of(session, query)  # a malformed filter is a 400 before the first byte is sent
            if not query.chosen:
                query.columns = _default_columns(session)
            return where

    try:
        query = parse_query(request)
        where = await in_thread(check, query)
    except InputError as exc:
        return Response(f"bad request: {exc.message}\n", status_code=400, media_type="text/plain")
    return StreamingResponse(_csv_rows(request, query, where), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="runs.csv"',
                                      "Cache-Control": "no-store"})


async def column_choices(request: Request) -> Response:
    """One page of keys for the column picker: ``?kind=metrics&q=loss&after=<key>`` (50 a page)."""
    qp = request.query_params
    kind, contains, after = qp.get("kind", "metrics"), qp.get("q", "")[:250], qp.get("after", "")[:250]
    if kind not in ("params", "tags", "metrics"):
        return bad_request(request, f"kind {kind!r} is not params, tags or metrics")

    def work() -> tuple[list[str], str | None]:
        with request.app.state.workspace.store.read() as session:
            return views.keys_page(session, kind, contains=contains, after=after, limit=PAGE_SIZE)

    keys, more = await in_thread(work)
    chosen = set(qp.getlist("col"))
    more_url = None
    if more is not None:
        more_url = "/runs-columns?" + urlencode([("kind", kind), ("q", contains), ("after", more)])
    return render(request, "runs_columns.html", {"kind": kind, "keys": keys, "chosen": chosen, "more_url": more_url,
                                                 "contains": contains})


routes = [
    Route("/runs", runs_page, methods=["GET"]),
    Route("/runs.csv", runs_csv, methods=["GET"]),
    Route("/runs-columns", column_choices, methods=["GET"]),
]
permissions = {"/runs": "runs:read", "/runs.csv": "runs:read", "/runs-columns": "runs:read"}
