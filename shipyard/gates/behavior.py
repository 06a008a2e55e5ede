"""Behavioural tests in YAML: invariance, directional expectations, minimum functionality.

```yaml
invariance:          # changing this column must not change the prediction (beyond max_changed)
  - {name: island does not decide, column: island, values: [Biscoe, Dream, Torgersen], max_changed: 0.05}
directional:         # raising the column by delta must not lower (or raise) one class's score
  - {name: heavier is not less Gentoo, column: body_mass_g, delta: 500, class: Gentoo, expect: not_decrease}
minimum:             # fixed cases with the expected prediction
  - {name: typical Gentoo, input: {bill_length_mm: 47.5, ...}, expect: Gentoo}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from shipyard.config import Frozen
from shipyard.errors import ConfigError, InputError
from shipyard.validation_errors import explain_validation
from shipyard.yaml_positions import load_yaml


class Invariance(Frozen):
    name: str
    column: str
    values: list[Any] = Field(min_length=1)
    max_changed: float = Field(default=0.0, ge=0, le=1)


class Directional(Frozen):
    name: str
    column: str
    delta: float
    expect: Literal["not_decrease", "not_increase"] = "not_decrease"
    class_: Any = Field(default=None, alias="class")
    tolerance: float = Field(default=1e-9, ge=0)
    max_violations: float = Field(default=0.0, ge=0, le=1)


class Minimum(Frozen):
    name: str
    input: dict[str, Any]
    expect: Any


class Suite(Frozen):
    invariance: list[Invariance] = Field(default_factory=list)
    directional: list[Directional] = Field(default_factory=list)
    minimum: list[Minimum] = Field(default_factory=list)


def load_suite(path: Path) -> Suite:
    loaded = load_yaml(path)
    try:
        return Suite.model_validate(loaded.data or {})
    except ValidationError as exc:
        raise ConfigError(explain_validation(exc, loaded, Suite),
                          hint="see docs/guide/registry.md#behavioural-tests") from None


def run_suite(suite: Suite, model: Any, frame: Any, max_rows: int = 500) -> list[dict[str, Any]]:
    """Run every test; returns one result dict per test (name, kind, passed, detail)."""
    import numpy as np
    import pandas as pd

    rows = frame.head(max_rows).reset_index(drop=True)
    results = []
    base = np.asarray(model.predict(rows)) if len(rows) else np.array([])
    for test in suite.invariance:
        _need(rows, test.column, test.name)
        changed = np.zeros(len(rows), dtype=bool)
        for value in test.values:
            varied = rows.assign(**{test.column: value})
            changed |= np.asarray(model.predict(varied)) != base
        share = float(changed.mean()) if len(rows) else 0.0
        results.append({"name": test.name, "kind": "invariance", "passed": share <= test.max_changed,
                        "detail": f"{share:.1%} of {len(rows)} rows changed prediction when {test.column} varied (allowed {test.max_changed:.1%})"})
    for test in suite.directional:
        _need(rows, test.column, test.name)
        classes = model.classes
        before = model.predict_proba(rows)
        if before is None:
            before_score = np.asarray(model.predict(rows), dtype=float)
            after_score = np.asarray(model.predict(rows.assign(**{test.column: rows[test.column] + test.delta})), dtype=float)
        else:
            if test.class_ is None or classes is None or str(test.class_) not in [str(c) for c in classes]:
                raise InputError(f"behavioural test {test.name!r}: class {test.class_!r} is not one of the model's classes {classes}")
            col = [str(c) for c in classes].index(str(test.class_))
            after = model.predict_proba(rows.assign(**{test.column: rows[test.column] + test.delta}))
            before_score, after_score = before[:, col], after[:, col]
        change = after_score - before_score
        bad = change < -test.tolerance if test.expect == "not_decrease" else change > test.tolerance
        share = float(bad.mean()) if len(rows) else 0.0
        results.append({"name": test.name, "kind": "directional", "passed": share <= test.max_violations,
                        "detail": f"{int(bad.sum())} of {len(rows)} rows broke '{test.expect}' when {test.column} += {test.delta}"})
    for test in suite.minimum:
        got = model.predict(pd.DataFrame([test.input]))[0]
        got = got.item() if hasattr(got, "item") else got
        ok = str(got) == str(test.expect)
        results.append({"name": test.name, "kind": "minimum", "passed": ok,
                        "detail": f"predicted {got!r}, expected {test.expect!r}"})
    return results


def _need(frame: Any, column: str, test: str) -> None:
    if column not in frame.columns:
        raise InputError(f"behavioural test {test!r} names column {column!r}, which the evaluation set does not have")
