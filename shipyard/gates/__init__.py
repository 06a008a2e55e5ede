"""Gates: the checks that decide whether a model version may become champion.

``evaluate(gates, candidate, champion, ...) -> Verdict`` is pure over values the caller read;
``run_gate`` (in ``shipyard.gates.runner``) reads them from the registry, runs ``evaluate`` and
stores the verdict with the version. Checks are a lazy string table (STYLE.md D2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InputError
from shipyard.lazy_imports import lookup, module_getattr

if TYPE_CHECKING:
    from shipyard.config import Gate
    from shipyard.gates.checks import Subject
    from shipyard.gates.verdict import Verdict

CHECKS: dict[str, str] = {
    "metric": "shipyard.gates.checks:metric",
    "fairness": "shipyard.gates.checks:fairness",
    "latency": "shipyard.gates.checks:latency",
    "max_size_mb": "shipyard.gates.checks:size",
    "signature": "shipyard.gates.checks:signature",
    "behavioral": "shipyard.gates.checks:behavioral",
    "replay": "shipyard.gates.checks:replay",
    "scan": "shipyard.gates.checks:scan",
    "signed": "shipyard.gates.checks:signed",
    "forbid_classified": "shipyard.gates.checks:forbid_classified",
    "max_cost": "shipyard.gates.checks:max_cost",
}


def get_check(kind: str) -> Any:
    """The check function of a gate kind; an unknown kind lists the known ones."""
    return lookup(CHECKS, kind, "gate kind")


def evaluate(gates: Sequence[Gate], candidate: Subject, champion: Subject | None = None, *,
             frame: Any = None, target: str | None = None, root: Path = Path("."),
             champion_note: str | None = None) -> Verdict:
    """Run every gate on the candidate (and the champion, where a gate compares) and decide."""
    from shipyard.gates.checks import NO_CHAMPION, Context
    from shipyard.gates.verdict import Verdict

    if not gates:
        raise InputError("no gates are configured", hint="add a gates: list to shipyard.yaml (see docs/guide/registry.md)")
    ctx = Context(candidate, champion, frame, target, Path(root), champion_note or NO_CHAMPION)
    checks = tuple(get_check(g.kind)(g, ctx) for g in gates)
    notes = []
    if champion is None:
        notes.append(ctx.champion_note[0].upper() + ctx.champion_note[1:] + ".")
    return Verdict(candidate.ref, champion.ref if champion else None, checks, tuple(notes))


__getattr__ = module_getattr(__name__, {
    "Verdict": "shipyard.gates.verdict:Verdict",
    "Check": "shipyard.gates.verdict:Check",
    "run_gate": "shipyard.gates.runner:run_gate",
})
