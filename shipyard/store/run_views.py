"""Read queries behind the web UI's run pages: keyset pages of runs, chosen columns only, metric keys
page by page, one metric's history with a cap.

A run may hold 12,000 metric keys (MLflow's UI fell over at that, mlflow#11927), so nothing here
loads a run's whole data: a page of runs reads the ``runs`` rows, then only the columns the viewer
chose, for only that page's run ids. Pages are keyset pages (a cursor holding the last row's sort
value and id), never OFFSET, so page 200 costs what page 1 costs.

Columns are named as in the page's URL: ``params.<key>``, ``tags.<key>``, ``metrics.<key>`` (newest
value), ``metrics_min.<key>`` / ``metrics_max.<key>`` (over the history), and the attributes in
``ATTRIBUTES`` (``start_time``, ``duration``, ``git_commit``, ``cpu``, ``memory``...).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from shipyard.errors import InputError
from shipyard.store.runs import Experiment, LatestMetric, Metric, MetricEnvelope, Param, Run, Tag

NAN = float("nan")
CPU_KEY = "system/cpu_seconds"
MEMORY_KEY = "system/peak_memory_mb"
# attribute columns: name -> (label, numeric)
ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "start_time": ("started", True), "duration": ("duration", True), "name": ("name", False),
    "status": ("status", False), "user": ("user", False), "git_commit": ("git commit", False),
    "git_branch": ("git branch", False), "cpu": ("CPU s", True), "memory": ("peak memory MB", True),
}
KINDS = ("params", "tags", "metrics", "metrics_min", "metrics_max")
# the keyed tables a kind reads (metrics: the newest value of each key)
KEYED: dict[str, Any] = {"params": Param, "tags": Tag, "metrics": LatestMetric}
# attribute columns that are system metrics
SYSTEM_METRICS = {"cpu": CPU_KEY, "memory": MEMORY_KEY}
MAX_HISTORY = 200_000  # points read for one chart series; a longer history is read as its first 200k


@dataclass(frozen=True)
class Column:
    """One column of the runs table: ``kind`` is an entity of ``KINDS`` or ``attributes``."""

    kind: str
    key: str

    @property
    def token(self) -> str:
        return self.key if self.kind == "attributes" else f"{self.kind}.{self.key}"

    @property
    def label(self) -> str:
        if self.kind == "attributes":
            return ATTRIBUTES[self.key][0]
        suffix = {"metrics_min": " (min)", "metrics_max": " (max)"}.get(self.kind, "")
        return self.key + suffix

    @property
    def numeric(self) -> bool:
        return self.kind.startswith("metrics") or (self.kind == "attributes" and ATTRIBUTES[self.key][1])


def parse_column(token: str) -> Column:
    """``metrics_min.loss`` -> Column("metrics_min", "loss"); InputError naming the token otherwise."""
    if token in ATTRIBUTES:
        return Column("attributes", token)
    kind, dot, key = token.partition(".")
    if dot and kind in KINDS and key and len(key) <= 250:
        return Column(kind, key)
    raise InputError(f"column {token!r} is not one the runs table knows",
                     hint="use params.<key>, tags.<key>, metrics.<key>, metrics_min.<key>, metrics_max.<key> or one of "
                          + ", ".join(ATTRIBUTES))


def _sort_expr(column: Column, query: Any) -> tuple[Any, Any]:
    """The query joined to what ``column`` sorts by, and that expression (NULL where a run has none)."""
    if column.kind == "attributes":
        simple = {"start_time": Run.start_time, "name": Run.name, "status": Run.status, "user": Run.user,
                  "git_commit": Run.git_commit, "git_branch": Run.git_branch}
        if column.key in simple:
            return query, simple[column.key]
        if column.key == "duration":
            return query, Run.end_time - Run.start_time
        column = Column("metrics", SYSTEM_METRICS[column.key])
    if column.kind in ("metrics_min", "metrics_max"):
        agg = func.min if column.kind == "metrics_min" else func.max
        sub = (select(Metric.run_id.label("run_id"), agg(Metric.value).label("value"))
               .where(Metric.key == column.key, Metric.is_nan == false()).group_by(Metric.run_id).subquery())
        return query.outerjoin(sub, sub.c.run_id == Run.id), sub.c.value
    alias = aliased(KEYED[column.kind])
    query = query.outerjoin(alias, and_(alias.run_id == Run.id, alias.key == column.key))
    if column.kind == "metrics":
        return query, case((alias.is_nan == true(), None), else_=alias.value)
    return query, alias.value


def encode_cursor(values: Sequence[Any]) -> str:
    """The URL-safe cursor of a page's last row: (has no value, value, run id)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, numeric: bool) -> tuple[int, Any, str]:
    """A cursor made by ``encode_cursor`` for a column of this type; InputError for anything else."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        missing, value, run_id = raw
    except (ValueError, TypeError) as exc:
        raise InputError(f"cursor {cursor!r} is not one this page made", hint="start again from the first page") from exc
    kind_ok = value is None or (isinstance(value, int | float) if numeric else isinstance(value, str))
    if missing not in (0, 1) or not isinstance(run_id, str) or not kind_ok or (missing == 1) != (value is None):
        raise InputError(f"cursor {cursor!r} is not one this page made for this sort",
                         hint="start again from the first page")
    return missing, value, run_id


def page_runs(session: Session, *, where: ColumnElement[bool] | None, sort: Column, ascending: bool,
              cursor: str | None, limit: int) -> tuple[list[Run], str | None]:
    """One keyset page of active runs matching ``where``, ordered by ``sort`` (runs without a value
    last in either direction, then by run id), and the next page's cursor (None on the last page)."""
    query, value = _sort_expr(sort, select(Run))
    missing = case((value.is_(None), 1), else_=0)
    query = query.add_columns(missing.label("missing"), value.label("value"))
    conditions: list[ColumnElement[bool]] = [Run.lifecycle_stage == "active"]
    if where is not None:
        conditions.append(where)
    if cursor:
        c_missing, c_value, c_id = decode_cursor(cursor, sort.numeric)
        if c_missing == 0:
            beyond = value > c_value if ascending else value < c_value
            conditions.append(or_(value.is_(None), and_(value.is_not(None), beyond),
                                  and_(value == c_value, Run.id > c_id)))
        else:
            conditions.append(and_(value.is_(None), Run.id > c_id))
    query = query.where(*conditions).order_by(missing, value.asc() if ascending else value.desc(), Run.id.asc())
    rows = list(session.execute(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        last_value = last.value if not isinstance(last.value, float) or math.isfinite(last.value) else None
        next_cursor = encode_cursor([0 if last_value is not None else 1, last_value, last.Run.id])
    return [row.Run for row in rows], next_cursor


def column_values(session: Session, run_ids: Sequence[str], columns: Sequence[Column]) -> dict[str, dict[str, Any]]:
    """run id -> column token -> value, for only these runs and only these columns (a handful of queries)."""
    out: dict[str, dict[str, Any]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    ids = list(run_ids)
    wanted: dict[str, set[str]] = {}
    for column in columns:
        if column.kind == "attributes" and column.key in SYSTEM_METRICS:
            wanted.setdefault("metrics", set()).add(SYSTEM_METRICS[column.key])
        elif column.kind != "attributes":
            wanted.setdefault(column.kind, set()).add(column.key)
    for kind, table in (("params", Param), ("tags", Tag)):
        if wanted.get(kind):
            query = select(table.run_id, table.key, table.value).where(table.run_id.in_(ids), table.key.in_(wanted[kind]))
            for rid, key, value in session.execute(query):
                out[rid][f"{kind}.{key}"] = value
    if wanted.get("metrics"):
        query = (select(LatestMetric.run_id, LatestMetric.key, LatestMetric.value, LatestMetric.is_nan)
                 .where(LatestMetric.run_id.in_(ids), LatestMetric.key.in_(wanted["metrics"])))
        for rid, key, value, is_nan in session.execute(query):
            out[rid][f"metrics.{key}"] = NAN if is_nan else value
    bounds = wanted.get("metrics_min", set()) | wanted.get("metrics_max", set())
    if bounds:
        query = (select(Metric.run_id, Metric.key, func.min(Metric.value), func.max(Metric.value))
                 .where(Metric.run_id.in_(ids), Metric.key.in_(bounds), Metric.is_nan == false())
                 .group_by(Metric.run_id, Metric.key))
        for rid, key, low, high in session.execute(query):
            out[rid][f"metrics_min.{key}"] = low
            out[rid][f"metrics_max.{key}"] = high
    for values in out.values():
        for name, key in SYSTEM_METRICS.items():
            values[name] = values.get(f"metrics.{key}")
    return out


def keys_page(session: Session, kind: str, *, contains: str = "", after: str = "", limit: int = 50,
              run_ids: Sequence[str] | None = None) -> tuple[list[str], str | None]:
    """Distinct keys of ``kind`` (params, tags, metrics) in name order, ``contains`` a text, after
    ``after``: one page of at most ``limit`` and the key to continue after (None on the last page)."""
    table = KEYED.get(kind)
    if table is None:
        raise InputError(f"key kind {kind!r} is not params, tags or metrics")
    matches = None
    if contains:
        escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = f"%{escaped.lower()}%"
    if run_ids is None:
        keys = _distinct_keys(session, table, after, matches, limit + 1)
    else:
        query = select(table.key).distinct().where(table.key > after, table.run_id.in_(list(run_ids)))
        if matches is not None:
            query = query.where(func.lower(table.key).like(matches, escape="\\"))
        keys = list(session.scalars(query.order_by(table.key).limit(limit + 1)))
    return keys[:limit], (keys[limit - 1] if len(keys) > limit else None)


def _distinct_keys(session: Session, table: Any, after: str, matches: str | None, limit: int) -> list[str]:
    """At most ``limit`` distinct keys of every run, after ``after``, in name order (``matches``: a
    LIKE pattern on the lower-cased key), by a loose scan of the key index: one seek per distinct
    key. A DISTINCT reads every row instead: 10,000 runs x 200 metric keys is 2,000,000 index
    entries for 200 keys, and a search through them took 0.4 s of CPU."""
    first = select(func.min(table.key)).where(table.key > after).scalar_subquery()
    walk = select(first.label("key")).cte("walk", recursive=True)
    following = select(func.min(table.key)).where(table.key > walk.c.key).correlate(walk).scalar_subquery()
    walk = walk.union_all(select(following).where(walk.c.key.is_not(None)))
    query = select(walk.c.key).where(walk.c.key.is_not(None))
    if matches is not None:
        query = query.where(func.lower(walk.c.key).like(matches, escape="\\"))
    return list(session.scalars(query.limit(limit)))


def count_keys(session: Session, kind: str, run_ids: Sequence[str]) -> int:
    """How many distinct keys of ``kind`` these runs hold."""
    table = KEYED[kind]
    inner = select(table.key).distinct().where(table.run_id.in_(list(run_ids))).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def values_of(session: Session, kind: str, run_ids: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """key -> run id -> value of ``kind`` (params, tags, metrics as newest value) for these keys only."""
    table = KEYED[kind]
    out: dict[str, dict[str, Any]] = {key: {} for key in keys}
    if not keys or not run_ids:
        return out
    columns = [table.run_id, table.key, table.value] + ([LatestMetric.is_nan] if kind == "metrics" else [])
    for row in session.execute(select(*columns).where(table.run_id.in_(list(run_ids)), table.key.in_(list(keys)))):
        out[row[1]][row[0]] = NAN if kind == "metrics" and row[3] else row[2]
    return out


def metric_series(session: Session, run_id: str, key: str,
                  limit: int = MAX_HISTORY) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric of one run in step order, at most ``limit`` points (NaN kept as NaN)."""
    query = (select(Metric.step, Metric.value, Metric.is_nan).where(Metric.run_id == run_id, Metric.key == key)
             .order_by(Metric.step, Metric.id).limit(limit))
    steps: list[int] = []
    values: list[float] = []
    for step, value, is_nan in session.execute(query):
        steps.append(step)
        values.append(NAN if is_nan else value)
    return steps, values


def metric_envelope(session: Session, run_id: str, key: str, limit: int,
                    points: int | None = None) -> tuple[list[int], list[float | None]]:
    """One metric's history reduced in SQL to at most ``limit`` points: per step bucket, its smallest
    then its largest value, both drawn at the bucket's first step (a vertical stroke: the envelope),
    so a spike survives; a bucket of NaN points only is one gap (None). A history of ``limit`` points
    or fewer comes back whole, at its own steps.

    Index seeks on (run, key, step) only: the size test reads at most ``limit + 1`` entries, and each
    bucket is a step range whose first step, smallest and largest value are read by range scans, so
    a 100,000-point history is never sorted (a GROUP BY over a bucket expression sorted every point
    in a temporary B-tree: ~40 ms a series, the compare page's 10 series 0.4 s of CPU) and never
    crosses into Python (``shipyard.tracking.downsample`` does the same over a list already read).
    """
    where = (Metric.run_id == run_id, Metric.key == key)
    if points is None:  # the history's count when the caller has not read it (latest_metrics.points)
        head = select(Metric.id).where(*where).limit(limit + 1).subquery()
        points = session.scalar(select(func.count()).select_from(head)) or 0
    if points <= limit:
        steps, values = metric_series(session, run_id, key, limit=limit)
        return steps, [v if math.isfinite(v) else None for v in values]
    low = session.scalar(select(func.min(Metric.step)).where(*where))
    high = session.scalar(select(func.max(Metric.step)).where(*where))
    xs: list[int] = []
    ys: list[float | None] = []
    for first, smallest, largest in session.execute(_envelope_query(run_id, key, low, high, limit)):
        if first is None:  # no step of the history falls in this bucket
            continue
        pair = [smallest] if smallest == largest else [smallest, largest]  # None, None: only NaN points
        for value in pair:
            xs.append(first)
            ys.append(value if value is not None and math.isfinite(value) else None)
    return xs, ys


@dataclass(frozen=True)
class Envelope:
    """A computed envelope of a history of ``points`` points, to keep (``keep_envelopes``)."""

    run_id: str
    key: str
    limit: int
    points: int
    xs: list[int]
    ys: list[float | None]


def kept_envelopes(session: Session, run_ids: Sequence[str], key: str,
                   limit: int) -> tuple[dict[str, tuple[list[int], list[float | None]]], list[Envelope]]:
    """``metric_envelope`` of ``key`` for each run, reusing the envelopes kept for unchanged histories.

    One query reads each history's point count with its kept envelope; a long history whose kept
    envelope has another count (or none) is computed again (~30 ms for 100,000 points) and returned
    in the second item, for the caller to keep in a write transaction. Runs without the key are left
    out of the mapping.
    """
    kept = aliased(MetricEnvelope)
    query = (select(LatestMetric.run_id, LatestMetric.points, kept.points, kept.xs, kept.ys)
             .outerjoin(kept, and_(kept.run_id == LatestMetric.run_id, kept.key == LatestMetric.key,
                                   kept.limit == limit))
             .where(LatestMetric.run_id.in_(list(run_ids)), LatestMetric.key == key))
    found: dict[str, tuple[list[int], list[float | None]]] = {}
    fresh: list[Envelope] = []
    for run_id, points, stamp, xs, ys in session.execute(query):
        if points is not None and points > limit and stamp == points:
            found[run_id] = (json.loads(xs), json.loads(ys))
            continue
        found[run_id] = metric_envelope(session, run_id, key, limit, points)
        if points is not None and points > limit:
            fresh.append(Envelope(run_id, key, limit, points, *found[run_id]))
    return found, fresh


def keep_envelopes(session: Session, envelopes: Sequence[Envelope]) -> None:
    """Store computed envelopes (replacing older ones of the same run, key and limit)."""
    for e in envelopes:
        session.merge(MetricEnvelope(run_id=e.run_id, key=e.key, limit=e.limit, points=e.points,
                                     xs=json.dumps(e.xs, separators=(",", ":")),
                                     ys=json.dumps(e.ys, separators=(",", ":"), allow_nan=False)))


def _envelope_query(run_id: str, key: str, low: int, high: int, limit: int) -> Any:
    """Per bucket of steps (bucket i holds the steps s with (s - low) * n // span == i, n buckets
    over span = high - low + 1 steps), in bucket order: its first step, smallest and largest finite
    value; NULLs for a bucket with no points."""
    span = high - low + 1
    n = max(1, min(limit // 2, span))
    # bigint: i * span passes 2**31 when steps are timestamps
    buckets = select(cast(literal(0), BigInteger).label("i")).cte("buckets", recursive=True)
    buckets = buckets.union_all(select(buckets.c.i + 1).where(buckets.c.i < n - 1))
    # the smallest step of bucket i is low + ceil(i * span / n)
    bounds = select(buckets.c.i, (low + (buckets.c.i * span + n - 1) // n).label("start"),
                    (low + ((buckets.c.i + 1) * span + n - 1) // n).label("stop")).subquery("bounds")
    inside = (Metric.run_id == run_id, Metric.key == key, Metric.step >= bounds.c.start, Metric.step < bounds.c.stop)
    finite = (*inside, Metric.is_nan == false())

    def per_bucket(agg: Any, *where: ColumnElement[bool]) -> Any:
        return select(agg).where(*where).correlate(bounds).scalar_subquery()

    return (select(per_bucket(func.min(Metric.step), *inside), per_bucket(func.min(Metric.value), *finite),
                   per_bucket(func.max(Metric.value), *finite)).select_from(bounds).order_by(bounds.c.i))


def experiment_ids(session: Session, given: str) -> list[int]:
    """The experiment ids ``given`` names: an id (as MLflow's links carry) or a name."""
    if given.isdigit():
        return [int(given)]
    return list(session.scalars(select(Experiment.id).where(Experiment.name == given)))


def experiment_names(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """id -> name of these experiments."""
    if not ids:
        return {}
    return dict(session.execute(select(Experiment.id, Experiment.name).where(Experiment.id.in_(set(ids)))).all())


def run_links(session: Session, run_id: str, *, limit: int = 200) -> dict[str, Any]:
    """What a run page shows beside its data: dataset inputs (as logged, and the dataset versions it
    read), artifacts (at most ``limit``, and their
    count), models it wrote, model versions registered from it, its stage execution (with the log's
    object id) and its child runs (a pipeline run's stages)."""
    from shipyard.store.logged_models import LoggedModel, RunModelIO
    from shipyard.store.pipeline import StageExecution
    from shipyard.store.registry import ModelVersionRow, RegisteredModel
    from shipyard.store.runs import Artifact, DatasetInput

    inputs = [{"name": d.name, "digest": d.digest, "context": d.context, "source": d.source}
              for d in session.scalars(select(DatasetInput).where(DatasetInput.run_id == run_id)
                                       .order_by(DatasetInput.name).limit(limit))]
    artifacts = [{"path": p, "oid": o, "size": s} for p, o, s in session.execute(
        select(Artifact.path, Artifact.oid, Artifact.size).where(Artifact.run_id == run_id)
        .order_by(Artifact.path).limit(limit))]
    n_artifacts = session.scalar(select(func.count()).select_from(Artifact).where(Artifact.run_id == run_id)) or 0
    written = select(RunModelIO.model_id).where(RunModelIO.run_id == run_id, RunModelIO.direction == "output")
    outputs = [{"id": m.id, "name": m.name, "status": m.status} for m in session.scalars(
        select(LoggedModel).where(or_(LoggedModel.source_run_id == run_id, LoggedModel.id.in_(written)))
        .order_by(LoggedModel.created_at).limit(limit))]
    versions = [{"model": name, "version": version} for name, version in session.execute(
        select(RegisteredModel.name, ModelVersionRow.version).join(RegisteredModel, RegisteredModel.id == ModelVersionRow.model_id)
        .where(ModelVersionRow.run_id == run_id).order_by(RegisteredModel.name, ModelVersionRow.version).limit(limit))]
    stage = session.scalar(select(StageExecution).where(StageExecution.run_id == run_id)
                           .order_by(StageExecution.id.desc()).limit(1))
    children = list(session.execute(select(Run.id, Run.name, Run.status).where(Run.parent_run_id == run_id)
                                    .order_by(Run.start_time).limit(limit)))
    from shipyard.store.datasets import DatasetRunLink, DatasetVersion

    datasets = [{"name": name, "version": version, "context": context} for name, version, context in session.execute(
        select(DatasetVersion.name, DatasetVersion.version, DatasetRunLink.context)
        .join(DatasetVersion, DatasetVersion.id == DatasetRunLink.dataset_version_id)
        .where(DatasetRunLink.run_id == run_id).order_by(DatasetVersion.name, DatasetVersion.version).limit(limit))]
    return {"inputs": inputs, "datasets": datasets, "artifacts": artifacts, "n_artifacts": n_artifacts, "outputs": outputs,
            "versions": versions, "children": children,
            "stage": None if stage is None else {"name": stage.stage, "status": stage.status, "log_oid": stage.log_oid,
                                                 "pipeline_run_id": stage.pipeline_run_id}}
