"""Search runs: the filter tree compiled to one SQL query, ordered and paged in the database.

Metric conditions read ``latest_metrics`` (the newest value per key), as MLflow does; each
condition is an indexed EXISTS on (run_id, key). Ordering by a metric, param or tag joins its
value and puts runs without it last in either direction.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, and_, case, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement

from shipyard.errors import InputError
from shipyard.store.runs import DatasetInput, Experiment, LatestMetric, Param, Run, Tag
from shipyard.tracking import filter as flt
from shipyard.tracking.service import RunRecord, records

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MAX_RESULTS = 50_000
_ATTR_COLUMNS = {
    "start_time": Run.start_time, "end_time": Run.end_time, "status": Run.status, "run_id": Run.id,
    "run_name": Run.name, "user_id": Run.user, "user": Run.user, "lifecycle_stage": Run.lifecycle_stage,
    "source": Run.source, "git_commit": Run.git_commit, "git_branch": Run.git_branch, "host": Run.host,
    "parent_run_id": Run.parent_run_id, "experiment_id": Run.experiment_id,
}


class CaseSensitiveLike(ColumnElement[bool]):
    """MLflow's LIKE, case-sensitive on every backend (SQLite's LIKE ignores case: GLOB there)."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: Any, pattern: str) -> None:
        self.column = column
        self.like = literal(pattern)
        glob = "".join(f"[{c}]" if c in "[]*?" else {"%": "*", "_": "?"}.get(c, c) for c in pattern)
        self.glob = literal(glob)


@compiles(CaseSensitiveLike)
def _like_default(element: CaseSensitiveLike, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} LIKE {compiler.process(element.like, **kw)}"


@compiles(CaseSensitiveLike, "sqlite")
def _like_sqlite(element: CaseSensitiveLike, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} GLOB {compiler.process(element.glob, **kw)}"


def _compare(column, op: str, value):  # type: ignore[no-untyped-def]
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "LIKE":
        return CaseSensitiveLike(column, value)
    if op == "ILIKE":
        return func.lower(column).like(func.lower(value))
    raise InputError(f"operator {op} is not supported here")


def compile_node(node: flt.Node) -> ColumnElement[bool]:
    """SQL condition on ``runs`` for a parsed filter."""
    if isinstance(node, flt.And):
        return and_(*(compile_node(p) for p in node.parts))
    if isinstance(node, flt.Or):
        return or_(*(compile_node(p) for p in node.parts))
    entity, key, op, value = node.entity, node.key, node.op, node.value
    if entity == "attributes":
        column = _ATTR_COLUMNS[key]
        if key == "run_name" and op in ("=", "!=", "LIKE", "ILIKE"):
            column = func.coalesce(Run.name, "")
        if key == "experiment_id":
            column = func.cast(Run.experiment_id, Run.id.type)
        if op == "IN":
            return column.in_(list(value))  # type: ignore[arg-type]
        if op == "NOT IN":
            return column.not_in(list(value))  # type: ignore[arg-type]
        return _compare(column, op, value)
    if entity == "datasets":
        column = {"name": DatasetInput.name, "digest": DatasetInput.digest, "context": DatasetInput.context}[key]
        if op == "IN":
            cond = column.in_(list(value))  # type: ignore[arg-type]
        elif op == "NOT IN":
            cond = column.not_in(list(value))  # type: ignore[arg-type]
        else:
            cond = _compare(column, op, value)
        return exists().where(DatasetInput.run_id == Run.id, cond)
    table = {"metrics": LatestMetric, "params": Param, "tags": Tag}[entity]
    has_key = and_(table.run_id == Run.id, table.key == key)
    if op == "IS NULL":
        return not_(exists().where(has_key))
    if op == "IS NOT NULL":
        return exists().where(has_key)
    return exists().where(has_key, _compare(table.value, op, value))


def _order_column(order: flt.OrderKey, query):  # type: ignore[no-untyped-def]
    if order.entity == "attributes":
        return query, _ATTR_COLUMNS[order.key]
    table = {"metrics": LatestMetric, "params": Param, "tags": Tag}[order.entity]
    alias = aliased(table)
    query = query.outerjoin(alias, and_(alias.run_id == Run.id, alias.key == order.key))
    return query, alias.value


def search_query(*, filter_string: str | None = None, order_by: Sequence[str] = (),
                 experiment_ids: Sequence[int] | None = None, lifecycle: str = "active"):  # type: ignore[no-untyped-def]
    """The SELECT of matching run ids, ordered (``lifecycle``: active, deleted or all)."""
    node = flt.parse(filter_string)
    query = select(Run)
    conditions = []
    if experiment_ids is not None:
        conditions.append(Run.experiment_id.in_(list(experiment_ids)) if experiment_ids else false())
    if lifecycle in ("active", "deleted"):
        conditions.append(Run.lifecycle_stage == lifecycle)
    elif lifecycle != "all":
        raise InputError(f"lifecycle {lifecycle!r} is not active, deleted or all")
    if node is not None:
        conditions.append(compile_node(node))
    query = query.where(and_(true(), *conditions))
    ordering = []
    for clause in order_by:
        query, column = _order_column(flt.parse_order_by(clause), query)
        key = flt.parse_order_by(clause)
        ordering.append(case((column.is_(None), 1), else_=0))
        ordering.append(column.asc() if key.ascending else column.desc())
    ordering += [Run.start_time.desc(), Run.id.asc()]
    return query.order_by(*ordering)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"page token {token!r} is not one this server issued") from exc
    if not isinstance(offset, int) or offset < 0:
        raise InputError(f"page token {token!r} is not one this server issued")
    return offset


def search_runs(session: Session, *, filter_string: str | None = None, order_by: Sequence[str] = (),
                experiment_ids: Sequence[int] | None = None, experiment_names: Sequence[str] | None = None,
                max_results: int = 1000, page_token: str | None = None, lifecycle: str = "active",
                with_files: bool = False) -> tuple[list[RunRecord], str | None]:
    """Matching runs with their params, metrics and tags, and the next page token (or None)."""
    if not 1 <= max_results <= MAX_RESULTS:
        raise InputError(f"max_results must be between 1 and {MAX_RESULTS}, got {max_results}")
    if experiment_names:
        ids = list(session.scalars(select(Experiment.id).where(Experiment.name.in_(list(experiment_names)))))
        experiment_ids = [*(experiment_ids or []), *ids]
    offset = decode_token(page_token)
    query = search_query(filter_string=filter_string, order_by=order_by, experiment_ids=experiment_ids,
                         lifecycle=lifecycle)
    rows = list(session.scalars(query.offset(offset).limit(max_results + 1)))
    more = len(rows) > max_results
    rows = rows[:max_results]
    return records(session, rows, with_files=with_files), (encode_token(offset + max_results) if more else None)


_EXPERIMENT_ATTRIBUTES = {
    "name": Experiment.name, "experiment_id": Experiment.id, "creation_time": Experiment.created_at,
    "last_update_time": Experiment.updated_at,
}


def _experiment_condition(cond: flt.Comparison) -> ColumnElement[bool]:
    if cond.entity == "tags":
        from shipyard.store.runs import ExperimentTag

        return exists().where(ExperimentTag.experiment_id == Experiment.id, ExperimentTag.key == cond.key,
                              _compare(ExperimentTag.value, cond.op, cond.value))
    column = _EXPERIMENT_ATTRIBUTES.get(cond.key)
    if cond.entity != "attributes" or column is None:
        raise InputError(f"Invalid attribute key '{cond.key}' specified. Valid keys are "
                         f"{sorted(_EXPERIMENT_ATTRIBUTES)} and tags.<key>")
    return _compare(column, cond.op, cond.value)


def _experiment_order(clause: str):  # type: ignore[no-untyped-def]
    text = clause.strip()
    parts = text.rsplit(None, 1)
    ascending = True
    if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
        text, ascending = parts[0], parts[1].upper() == "ASC"
    key = text.removeprefix("attributes.").removeprefix("attribute.")
    column = _EXPERIMENT_ATTRIBUTES.get(key)
    if column is None:
        raise InputError(f"Invalid order_by clause '{clause}'. Valid keys are {sorted(_EXPERIMENT_ATTRIBUTES)}")
    return column, ascending


def search_experiments(session: Session, *, filter_string: str | None = None, order_by: Sequence[str] = (),
                       lifecycle: str = "active", max_results: int = 1000,
                       page_token: str | None = None) -> tuple[list[Experiment], str | None]:
    """Experiments matching MLflow's experiment filter (name, times, tags; AND only), MLflow's order
    (creation time, newest first, then id) and the next page token (or None)."""
    query = select(Experiment)
    if lifecycle != "all":
        query = query.where(Experiment.lifecycle_stage == lifecycle)
    for cond in flt.and_comparisons(filter_string):
        query = query.where(_experiment_condition(cond))
    ordering = [_experiment_order(c) for c in order_by] or [(Experiment.created_at, False), (Experiment.id, True)]
    if not any(column is Experiment.id for column, _ in ordering):
        ordering.append((Experiment.id, False))
    query = query.order_by(*(column.asc() if asc else column.desc() for column, asc in ordering))
    offset = decode_token(page_token)
    rows = list(session.scalars(query.offset(offset).limit(max_results + 1)))
    return rows[:max_results], (encode_token(offset + max_results) if len(rows) > max_results else None)
