"""Run the configured gates on a registered version and store the verdict with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.config import ShipyardConfig
from shipyard.errors import NotFound, UnsafeModel
from shipyard.gates.checks import Subject
from shipyard.gates.verdict import Verdict

# the gate kinds that judge the package and its lineage, not the loaded model
PACKAGE_GATES = ("scan", "signed", "forbid_classified")


def run_metrics(session: Session, run_id: str | None) -> dict[str, float]:
    """Latest metrics of a run, then of its child runs, then of its pipeline's other stage runs."""
    from shipyard.store.runs import Run, merged_latest_metrics

    if run_id is None:
        return {}
    run = session.get(Run, run_id)
    if run is None:
        return {}
    order = [run_id]
    children = list(session.scalars(select(Run.id).where(Run.parent_run_id == run_id).order_by(Run.start_time)))
    order += children
    if run.parent_run_id:
        order.append(run.parent_run_id)
        order += list(session.scalars(select(Run.id).where(Run.parent_run_id == run.parent_run_id, Run.id != run_id)
                                      .order_by(Run.start_time)))
    return merged_latest_metrics(session, order)  # earlier entries win


def read_eval_set(root: Path, rel: str | None) -> Any:
    """The evaluation set named by model.eval, as a pandas DataFrame (CSV or Parquet)."""
    if not rel:
        return None
    from shipyard.registry.project import read_table

    return read_table(root, rel, "model.eval")


@dataclass(frozen=True)
class GateRun:
    verdict: Verdict
    stored: bool


def _needs_supply(config: ShipyardConfig) -> bool:
    return any(g.kind in PACKAGE_GATES for g in config.gates)


def _supply_facts(objects: Any, mv: Any, config: ShipyardConfig, root: Path,
                  classified: dict[str, list[str]] | None) -> dict[str, Any]:
    """What the scan, signed and forbid_classified gates judge: a fresh scan of the package (only
    for a scan gate: it reads every byte), its verified signature (a signature that does not verify
    raises here, as it does wherever the version is loaded) and the classified columns reached
    through lineage (``supply.governance.version_classification``)."""
    from shipyard.supply.signing import keys_from_settings, verify_package

    facts = {"signature": verify_package(objects, mv.model_oid, keys_from_settings(config.supply, root), what=mv.ref),
             "classified": classified}
    if any(g.kind == "scan" for g in config.gates):
        from shipyard.supply.scan import scan_package

        facts["scan"] = scan_package(objects, mv.model_oid, flavor=mv.flavor, extra=config.supply.allow_globals,
                                     target=mv.ref).summary()
    return facts


def _needs_cost(config: ShipyardConfig) -> bool:
    return any(g.kind == "max_cost" for g in config.gates)


def _training_costs(session: Any, config: ShipyardConfig, versions: list[Any]) -> dict[str, Any]:
    """Each version's training cost: the pipeline run that made it (its own run's parent, for a stage run)."""
    from sqlalchemy import select

    from shipyard.store.runs import Run
    from shipyard.tracking.cost import PriceTable, run_costs

    runs = {mv.ref: mv.run_id for mv in versions if mv is not None and mv.run_id}
    parents = dict(session.execute(select(Run.id, Run.parent_run_id).where(Run.id.in_(list(runs.values())))).all())
    training = {ref: parents.get(rid) or rid for ref, rid in runs.items()}
    costs = run_costs(session, list(training.values()), PriceTable.of(config.cost))
    return {ref: costs[rid] for ref, rid in training.items()}


def run_gate(store: Any, objects: Any, ref: str, config: ShipyardConfig, root: Path, *,
             trust: bool = False, record: bool = True) -> GateRun:
    """Judge ``ref`` with the gates in ``config`` against the current champion; store the verdict."""
    from shipyard import gates as gates_mod
    from shipyard.models import load_model
    from shipyard.registry import resolve
    from shipyard.registry.core import CHAMPION as champion_alias

    with store.read() as session:
        candidate_mv = resolve(session, ref)
        try:
            champion_mv = resolve(session, f"{candidate_mv.name}@{champion_alias}")
        except NotFound:
            champion_mv = None
        candidate_metrics = run_metrics(session, candidate_mv.run_id)
        champion_metrics = run_metrics(session, champion_mv.run_id) if champion_mv else {}
        costs = _training_costs(session, config, [candidate_mv, champion_mv]) if _needs_cost(config) else {}
        classified = None
        if any(g.kind == "forbid_classified" for g in config.gates):
            from shipyard.supply.governance import version_classification

            classified = version_classification(session, candidate_mv)
    note = None
    if champion_mv is not None and champion_mv.version == candidate_mv.version:
        note = f"{candidate_mv.ref} is the champion itself: compared with thresholds only"
        champion_mv = None
    model_cfg = config.model
    frame = read_eval_set(root, model_cfg.eval if model_cfg else None)
    target = model_cfg.target if model_cfg else None
    supply = _supply_facts(objects, candidate_mv, config, root, classified) if _needs_supply(config) else {}
    # _supply_facts verified the candidate's signature (with the gate's keys): not again while loading
    try:
        # a version trusted at registration or by 'models trust' loads as the gateway loads it
        model = load_model(objects, candidate_mv.model_oid, candidate_mv.flavor, trust=trust or candidate_mv.trusted,
                           what=candidate_mv.ref,
                           verified=bool(supply))
    except UnsafeModel as exc:
        if (supply.get("scan") or {}).get("clean", True):
            raise
        # registered with its findings (supply.scan: record), so never loaded: the package gates judge it
        verdict = _judge_unloaded(config, Subject(candidate_mv.ref, None, candidate_mv.size_bytes, candidate_metrics,
                                                  supply), exc.message)
        return _finish(store, candidate_mv.ref, verdict, record)
    candidate = Subject(candidate_mv.ref, model, candidate_mv.size_bytes, candidate_metrics, supply,
                        costs.get(candidate_mv.ref))
    champion = None
    if champion_mv is not None:
        champion = Subject(champion_mv.ref, load_model(objects, champion_mv.model_oid, champion_mv.flavor,
                                                       trust=trust or champion_mv.trusted, what=champion_mv.ref),
                           champion_mv.size_bytes, champion_metrics, cost=costs.get(champion_mv.ref))
    verdict = gates_mod.evaluate(config.gates, candidate, champion, frame=frame, target=target, root=root,
                                 champion_note=note)
    return _finish(store, candidate_mv.ref, verdict, record)


def _finish(store: Any, ref: str, verdict: Verdict, record: bool) -> GateRun:
    if record:
        from shipyard.registry import record_verdict

        with store.write() as session:
            record_verdict(session, ref, verdict.to_dict(), verdict.to_markdown())
    return GateRun(verdict, record)


def _judge_unloaded(config: ShipyardConfig, candidate: Subject, why: str) -> Verdict:
    """The verdict on a candidate whose scan found problems and that cannot be loaded: only the
    gates that judge the package (scan, signed, forbid_classified) run; the scan gate fails it."""
    from dataclasses import replace

    from shipyard import gates as gates_mod

    judged = [g for g in config.gates if g.kind in PACKAGE_GATES]
    verdict = gates_mod.evaluate(judged, candidate)
    skipped = len(config.gates) - len(judged)
    return replace(verdict, notes=(*verdict.notes, f"{candidate.ref} was not loaded ({why}): "
                                   f"{skipped} gates that need the model were not run"))
