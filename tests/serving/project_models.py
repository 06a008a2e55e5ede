"""Real scikit-learn iris models registered in a real project (store + object store), as
``shipyard models register`` leaves them, for tests that run the gateway from the project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.serving.models import iris, iris_classifier


def register_iris(ws: Any, scratch: Path, name: str = "iris", strengths: tuple[float, ...] = (1.0, 0.01)) -> list[int]:
    """Register one logistic regression per regularisation strength (passing gate verdicts); the
    first becomes the ``champion``. Returns the version numbers."""
    from shipyard import registry
    from shipyard.models import package_model, save_model

    features, _ = iris()
    versions = []
    for i, strength in enumerate(strengths):
        folder = scratch / f"{name}-model-{i}"
        save_model(iris_classifier(strength).estimator, folder, "sklearn")
        packaged = package_model(ws.objects, folder, "sklearn", sample=features)
        with ws.store.write() as session:
            version = registry.register(session, name, model_oid=packaged.model_oid, flavor="sklearn",
                                        signature=packaged.signature, size_bytes=packaged.size_bytes)
            registry.record_verdict(session, f"{name}@{version.version}", {"passed": True, "checks": []}, "passed")
            versions.append(version.version)
    with ws.store.write() as session:
        registry.set_alias(session, name, "champion", versions[0])
    return versions
