"""What runs cost: recorded resources priced by the project's price table (``cost:`` in shipyard.yaml).

A stage execution records its CPU seconds, peak memory and wall time; a pipeline run costs the sum
of its stages, a sweep the sum of its trials' pipeline runs. Memory is priced as peak GB held for
the stage's wall time (what a machine sized for the stage costs). A part whose price the table
does not set is *unpriced*, named in the answer, never counted as zero; a run with no recorded
resources (a plain ``shipyard.start_run`` from a notebook) is unpriced too.

A deployment costs the gateway's CPU: the request log carries each prediction row's share of the
gateway process's CPU (``gateway_cpu_ms``), so ``deployment_usage`` sums it per model version over
any window and prices it as CPU seconds per 1,000 predictions. Storage is the object store's bytes
at ``storage_gb_month`` (a monthly rate, not a spend: it is not counted in budgets).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

GB = 1024**3
NO_RESOURCES = "no resources recorded"


@dataclass(frozen=True)
class Resources:
    """Resources used: CPU seconds, memory as GB x seconds, GPU seconds."""

    cpu_seconds: float = 0.0
    memory_gb_seconds: float = 0.0
    gpu_seconds: float = 0.0
    recorded: bool = True  # False: nothing was measured (the run is unpriced, not free)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_seconds + other.cpu_seconds, self.memory_gb_seconds + other.memory_gb_seconds,
                         self.gpu_seconds + other.gpu_seconds, self.recorded or other.recorded)


NOTHING = Resources(recorded=False)


@dataclass(frozen=True)
class PriceTable:
    """Prices per hour of CPU, GB of memory and GPU (None: not priced), in ``currency``."""

    cpu_hour: float | None = None
    memory_gb_hour: float | None = None
    gpu_hour: float | None = None
    storage_gb_month: float | None = None
    currency: str = "USD"

    @classmethod
    def of(cls, section: Any) -> PriceTable:
        """From shipyard.yaml's ``cost:`` section (None: nothing priced)."""
        if section is None:
            return cls()
        return cls(section.cpu_hour, section.memory_gb_hour, section.gpu_hour, section.storage_gb_month,
                   section.currency)

    @property
    def empty(self) -> bool:
        return self.cpu_hour is None and self.memory_gb_hour is None and self.gpu_hour is None


@dataclass(frozen=True)
class Cost:
    """A price: ``amount`` of the priced parts, and the parts left unpriced (by name)."""

    amount: float | None
    currency: str
    unpriced: tuple[str, ...] = field(default_factory=tuple)

    @property
    def priced(self) -> bool:
        return self.amount is not None

    def text(self) -> str:
        """``0.0123 USD``, ``0.0123 USD (memory unpriced)`` or ``unpriced (no price table)``."""
        if self.amount is None:
            return f"unpriced ({', '.join(self.unpriced)})" if self.unpriced else "unpriced"
        shown = f"{money(self.amount)} {self.currency}"
        return shown + (f" ({', '.join(self.unpriced)} unpriced)" if self.unpriced else "")

    def short(self) -> str:
        """For a table cell: the amount, ``unpriced``, or ``-`` when nothing was recorded to price."""
        if self.amount is not None:
            return f"{money(self.amount)} {self.currency}" + ("*" if self.unpriced else "")
        return "-" if self.unpriced == (NO_RESOURCES,) else "unpriced"

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency, "unpriced": list(self.unpriced), "text": self.text()}


def money(amount: float) -> str:
    """An amount as people read money: ``12.35``, ``0.0123``, ``0.0000518`` (three significant digits
    below 1, never ``5.18e-05``), ``0`` for nothing."""
    if amount == 0:
        return "0"
    if abs(amount) >= 1:
        return f"{amount:,.2f}"
    digits = 2 - math.floor(math.log10(abs(amount)))
    return f"{amount:.{digits}f}"


def price(used: Resources, table: PriceTable) -> Cost:
    """The cost of ``used`` under ``table``."""
    if not used.recorded:
        return Cost(None, table.currency, (NO_RESOURCES,))
    if table.empty:
        return Cost(None, table.currency, ("no price table: cost: in shipyard.yaml",))
    amount, missing = 0.0, []
    for name, quantity, rate in (("cpu", used.cpu_seconds, table.cpu_hour),
                                 ("memory", used.memory_gb_seconds, table.memory_gb_hour),
                                 ("gpu", used.gpu_seconds, table.gpu_hour)):
        if quantity <= 0:
            continue
        if rate is None:
            missing.append(name)
        else:
            amount += quantity / 3600.0 * rate
    return Cost(amount, table.currency, tuple(missing))


def stage_resources(cpu_seconds: float | None, peak_memory_bytes: int | None, started_ms: int | None,
                    ended_ms: int | None, cache_hit: bool = False) -> Resources:
    """One stage execution's resources (a restore from the run cache used next to nothing)."""
    if cache_hit:
        return Resources()
    if cpu_seconds is None and peak_memory_bytes is None:
        return NOTHING
    wall = max(((ended_ms or started_ms or 0) - (started_ms or 0)) / 1000.0, 0.0)
    return Resources(cpu_seconds=float(cpu_seconds or 0.0),
                     memory_gb_seconds=float(peak_memory_bytes or 0) / GB * wall)


def run_resources(session: Any, run_ids: Sequence[str]) -> dict[str, Resources]:
    """Resources of each run: a stage run its execution, a pipeline run its stages, a sweep its trials."""
    from sqlalchemy import or_, select

    from shipyard.store.pipeline import StageExecution
    from shipyard.store.runs import Run

    wanted = list(dict.fromkeys(run_ids))
    children: dict[str, list[str]] = {}
    for parent, child in session.execute(select(Run.parent_run_id, Run.id).where(Run.parent_run_id.in_(wanted))):
        children.setdefault(parent, []).append(child)
    pipelines = {rid for rid in wanted} | {c for kids in children.values() for c in kids}
    rows = session.execute(select(StageExecution.pipeline_run_id, StageExecution.run_id, StageExecution.cpu_seconds,
                                  StageExecution.peak_memory_bytes, StageExecution.started_at,
                                  StageExecution.ended_at, StageExecution.cache_hit).where(
        or_(StageExecution.pipeline_run_id.in_(pipelines), StageExecution.run_id.in_(wanted))))
    by_pipeline: dict[str, Resources] = {}
    by_stage_run: dict[str, Resources] = {}
    for pipeline_id, stage_run, cpu, peak, started, ended, hit in rows:
        used = stage_resources(cpu, peak, started, ended, bool(hit))
        by_pipeline[pipeline_id] = by_pipeline.get(pipeline_id, NOTHING) + used
        if stage_run is not None:
            by_stage_run[stage_run] = used
    out: dict[str, Resources] = {}
    for rid in wanted:
        if rid in by_stage_run:
            out[rid] = by_stage_run[rid]
        elif rid in by_pipeline:
            out[rid] = by_pipeline[rid]
        else:  # a sweep (or any parent of pipeline runs): the sum of its children's pipelines
            found = [by_pipeline[c] for c in children.get(rid, ()) if c in by_pipeline]
            out[rid] = sum(found, NOTHING) if found else NOTHING
    return out


def run_costs(session: Any, run_ids: Sequence[str], table: PriceTable) -> dict[str, Cost]:
    """The cost of each run under ``table``."""
    return {rid: price(used, table) for rid, used in run_resources(session, run_ids).items()}


def spent_since(session: Any, since_ms: int, table: PriceTable) -> Cost:
    """The cost of every pipeline run started since ``since_ms`` (for daily and monthly budgets)."""
    from sqlalchemy import select

    from shipyard.store.pipeline import PipelineRun

    ids = list(session.scalars(select(PipelineRun.id).where(PipelineRun.started_at >= since_ms)))
    total = sum(run_resources(session, ids).values(), NOTHING) if ids else Resources()
    return price(total, table)


@dataclass(frozen=True)
class BudgetCheck:
    """A budget against what was spent: which limit, its amount, the spend and the share used."""

    limit: str  # per_run | per_day | per_month
    budget: float
    spent: float
    currency: str

    @property
    def share(self) -> float:
        return self.spent / self.budget if self.budget > 0 else math.inf

    @property
    def exceeded(self) -> bool:
        return self.spent > self.budget

    def text(self) -> str:
        return (f"{self.limit} budget: spent {money(self.spent)} of {money(self.budget)} {self.currency} "
                f"({self.share:.0%})")


def check_budgets(session: Any, budget: Any, table: PriceTable, now_ms: int,
                  run_cost: Cost | None = None) -> list[BudgetCheck]:
    """Every limit of ``budget`` (shipyard.yaml's ``budget:``) against what was spent."""
    checks: list[BudgetCheck] = []
    if budget is None:
        return checks
    if budget.per_run is not None and run_cost is not None and run_cost.amount is not None:
        checks.append(BudgetCheck("per_run", budget.per_run, run_cost.amount, table.currency))
    for limit, window_ms in (("per_day", 86_400_000), ("per_month", 30 * 86_400_000)):
        amount = getattr(budget, limit)
        if amount is None:
            continue
        spent = spent_since(session, now_ms - window_ms, table)
        if spent.amount is not None:
            checks.append(BudgetCheck(limit, amount, spent.amount, table.currency))
    return checks


def crossed(checks: Iterable[BudgetCheck], thresholds: Sequence[float]) -> list[tuple[BudgetCheck, float]]:
    """The (check, threshold) pairs whose share reached a threshold (highest threshold per check)."""
    found = []
    for check in checks:
        reached = [t for t in thresholds if check.share >= t]
        if reached:
            found.append((check, max(reached)))
    return found


@dataclass(frozen=True)
class DeploymentUsage:
    """One model version's predictions in the gateway over a window, and the gateway CPU they took."""

    model: str
    version: int
    predictions: int
    measured: int  # predictions whose row carries the gateway's CPU (older request logs do not)
    cpu_seconds: float

    @property
    def cpu_per_1k(self) -> float | None:
        """Gateway CPU seconds per 1,000 predictions (None: no measured prediction)."""
        return self.cpu_seconds / self.measured * 1000.0 if self.measured else None

    def costs(self, table: PriceTable) -> tuple[Cost, Cost]:
        """(cost per 1,000 predictions, cost of the window's measured predictions) under ``table``."""
        if not self.measured:
            nothing = Cost(None, table.currency, ("no gateway CPU recorded",))
            return nothing, nothing
        return (price(Resources(cpu_seconds=self.cpu_per_1k or 0.0), _cpu_only(table)),
                price(Resources(cpu_seconds=self.cpu_seconds), _cpu_only(table)))

    def to_dict(self, table: PriceTable) -> dict[str, Any]:
        per_1k, total = self.costs(table)
        return {"model": self.model, "version": self.version, "predictions": self.predictions,
                "measured": self.measured, "cpu_seconds": self.cpu_seconds, "cpu_seconds_per_1k": self.cpu_per_1k,
                "cost_per_1k": per_1k.to_dict(), "cost": total.to_dict()}


def _cpu_only(table: PriceTable) -> PriceTable:
    """A deployment is priced by CPU alone: an empty table when CPU has no price (so it says so)."""
    return PriceTable(cpu_hour=table.cpu_hour, currency=table.currency)


def deployment_usage(location: Any, model: str, since: float | None = None,
                     until: float | None = None) -> list[DeploymentUsage]:
    """Per version of ``model``: predictions in [since, until) and the gateway CPU they took."""
    import polars as pl

    from shipyard.data.requestlog import read_requests

    rows = read_requests(location, model, since, until, columns=["ts", "version", "gateway_cpu_ms"])
    if rows.height == 0:
        return []
    per_version = (rows.group_by("version")
                   .agg(pl.len().alias("predictions"), pl.col("gateway_cpu_ms").count().alias("measured"),
                        (pl.col("gateway_cpu_ms").sum() / 1000.0).alias("cpu_seconds"))
                   .sort("version"))
    return [DeploymentUsage(model, int(r["version"]), int(r["predictions"]), int(r["measured"]),
                            float(r["cpu_seconds"] or 0.0)) for r in per_version.iter_rows(named=True)]


def storage_cost(stored_bytes: int, table: PriceTable) -> Cost:
    """What keeping ``stored_bytes`` costs per month at ``storage_gb_month`` (unpriced without it)."""
    if table.storage_gb_month is None:
        return Cost(None, table.currency, ("storage: no storage_gb_month in cost:",))
    return Cost(stored_bytes / GB * table.storage_gb_month, table.currency)
