"""Trusting a version after it was registered: ``shipyard models trust NAME@VERSION``.

A version whose model runs code when loaded (a pickle, an MLflow ``python_function`` model) is
recorded untrusted when its registration could not say ``--trust`` (MLflow's REST API). The gates
then need ``--trust`` and the gateway refuses it. Trusting it is a decision someone takes about
that version: it is checked first (signature, hash, the flavor's scan, one load with trust, so a
malicious pickle is refused here as anywhere), then recorded on the version with an audit event
naming who took it. Gates and the gateway load a trusted version as they load one registered with
``--trust``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard import audit
from shipyard.errors import InputError
from shipyard.registry.core import ModelVersion, resolve
from shipyard.store import registry as repo
from shipyard.store.registry import now_ms


@dataclass(frozen=True)
class Trusted:
    """The version, and whether this call changed it (False: it was trusted already)."""

    version: ModelVersion
    changed: bool


def trust_version(store: Any, objects: Any, ref: str, *, reason: str | None = None,
                  actor: str | None = None) -> Trusted:
    """Check that ``ref`` loads with trust and record it as trusted (audited ``model.trust``)."""
    from shipyard.models import EXTERNAL, load_model

    with store.read() as session:
        mv = resolve(session, ref)
    if mv.flavor == EXTERNAL:
        raise InputError(f"{mv.ref} only records its model's source (flavor external): there is no model to trust",
                         hint=f"see why in 'shipyard models show {mv.ref} --json' (lineage.mlflow)")
    if mv.trusted:
        return Trusted(mv, changed=False)
    load_model(objects, mv.model_oid, mv.flavor, trust=True, what=mv.ref)   # refuses what the scan refuses
    with store.write() as session:
        model = repo.get_model(session, mv.name)
        row = repo.get_version(session, model, mv.version)
        row.trusted = True
        row.updated_at = now_ms()
        audit.record(session, "model.trust", mv.ref, {"flavor": mv.flavor, "model_oid": mv.model_oid,
                                                      "reason": reason}, actor=actor)
        trusted = resolve(session, mv.ref)
    return Trusted(trusted, changed=True)
