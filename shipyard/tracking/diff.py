"""Compare runs: params, metrics and tags side by side, between two runs or two git revisions.

A reference is a run id (or a unique prefix), ``latest``, or a git revision (``main``, ``HEAD~1``,
a tag or commit): the newest top-level run recorded at that commit. A pipeline run shows the
params and metrics of its stage runs as its own (a stage's value wins over the parent's; stages
are merged in start order). ``to_markdown`` renders the table a pull-request comment needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.errors import NotFound
from shipyard.store.runs import Run
from shipyard.tracking.service import RunRecord, get_run, records, resolve_run_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _latest(session: Session, *, commit: str | None = None, exclude: str | None = None) -> Run | None:
    query = select(Run).where(Run.parent_run_id.is_(None), Run.lifecycle_stage == "active")
    if commit is not None:
        query = query.where(Run.git_commit == commit)
    if exclude is not None:
        query = query.where(Run.id != exclude)
    return session.scalar(query.order_by(Run.start_time.desc(), Run.id.desc()).limit(1))


def resolve_ref(session: Session, ref: str | None, root: Path | None, *, exclude: str | None = None) -> RunRecord:
    """The run a reference names (see the module docstring)."""
    if ref is None or ref == "latest":
        run = _latest(session, exclude=exclude)
        if run is None:
            raise NotFound("there are no runs to compare" if exclude is None else "there is only one run",
                           hint="log runs with shipyard.log_metric(...) or 'shipyard run' first")
        return with_children(session, records(session, [run])[0])
    try:
        return with_children(session, get_run(session, resolve_run_id(session, ref)))
    except NotFound:
        pass
    from shipyard.tracking.gitinfo import resolve_revision

    commit = resolve_revision(root, ref) if root is not None else None
    if commit is None:
        raise NotFound(f"{ref!r} is neither a run id nor a git revision",
                       hint="use a run id from 'shipyard runs list', 'latest', or a branch, tag or commit")
    run = _latest(session, commit=commit)
    if run is None:
        raise NotFound(f"no run was recorded at {ref} ({commit[:12]})",
                       hint="run the pipeline on that revision first, or compare run ids")
    return with_children(session, records(session, [run])[0])


def with_children(session: Session, record: RunRecord) -> RunRecord:
    """The run with its stage runs' params and metrics folded in (stage values win)."""
    children = list(session.scalars(select(Run).where(Run.parent_run_id == record.run_id).order_by(Run.start_time)))
    if not children:
        return record
    params, metrics = dict(record.params), dict(record.metrics)
    for child in records(session, children, with_files=False):
        params.update(child.params)
        metrics.update({k: val for k, val in child.metrics.items() if not k.startswith("system/")})
    record.params, record.metrics = params, metrics
    return record


@dataclass
class DiffRow:
    key: str
    old: Any
    new: Any

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def delta(self) -> float | None:
        if isinstance(self.old, (int, float)) and isinstance(self.new, (int, float)):
            return self.new - self.old
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new, "delta": self.delta, "changed": self.changed}


@dataclass
class Diff:
    old: RunRecord
    new: RunRecord
    kind: str  # metrics, params or tags
    rows: list[DiffRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old.run_id, "new": self.new.run_id, "kind": self.kind,
                "rows": [r.to_dict() for r in self.rows]}

    def to_markdown(self, *, all_rows: bool = True) -> str:
        label = {"metrics": "Metric", "params": "Param", "tags": "Tag"}[self.kind]
        old, new = _label(self.old), _label(self.new)
        lines = [f"| {label} | {old} | {new} | Change |", "|---|---:|---:|---:|"]
        for row in self.rows:
            if not all_rows and not row.changed:
                continue
            lines.append(f"| {row.key} | {_fmt(row.old)} | {_fmt(row.new)} | {_change(row)} |")
        if len(lines) == 2:
            lines.append(f"| _no {self.kind}_ | | | |")
        return "\n".join(lines)


def _label(run: RunRecord) -> str:
    where = f" @ {run.git_commit[:7]}" if run.git_commit else ""
    return f"`{run.run_id[:8]}`{where}"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")


def _change(row: DiffRow) -> str:
    delta = row.delta
    if delta is not None:
        if delta == 0:
            return "0"
        percent = f" ({delta / abs(row.old) * 100:+.1f}%)" if row.old else ""
        return f"{delta:+.6g}{percent}"
    if row.old is None:
        return "added"
    if row.new is None:
        return "removed"
    return "changed" if row.changed else "="


def diff_runs(old: RunRecord, new: RunRecord, kind: str, *, include_system: bool = False) -> Diff:
    """Rows for every key either run has, sorted by key."""
    a = getattr(old, kind)
    b = getattr(new, kind)
    keys = sorted(set(a) | set(b))
    if kind == "metrics" and not include_system:
        keys = [k for k in keys if not k.startswith("system/")]
    return Diff(old, new, kind, [DiffRow(k, a.get(k), b.get(k)) for k in keys])
