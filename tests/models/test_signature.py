"""Signatures: captured from a sample, enforced at predict with errors naming the column."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pytest

from shipyard.errors import InputError
from shipyard.models.signature import ColumnSpec, Signature, infer_signature


@pytest.fixture
def sig() -> Signature:
    sample = pd.DataFrame({"x": [1.5, 2.0], "n": [1, 2], "island": ["Dream", "Biscoe"], "ok": [True, False]})
    return infer_signature(sample, ["a", "b"], classes=["a", "b"])


def test_infer_types(sig: Signature) -> None:
    assert [(c.name, c.type) for c in sig.inputs] == [("x", "double"), ("n", "long"), ("island", "string"), ("ok", "boolean")]
    assert sig.outputs[0].type == "string"
    assert Signature.from_dict(sig.to_dict()) == sig


def test_missing_column_is_named(sig: Signature) -> None:
    with pytest.raises(InputError, match="input is missing column 'island'"):
        sig.enforce({"x": [1.0], "n": [1], "ok": [True]})


def test_wrong_type_is_named(sig: Signature) -> None:
    with pytest.raises(InputError, match="column 'x': expected double, got string"):
        sig.enforce(pd.DataFrame({"x": ["heavy"], "n": [1], "island": ["Dream"], "ok": [True]}))
    with pytest.raises(InputError, match="column 'island': expected string, got long"):
        sig.enforce(pd.DataFrame({"x": [1.0], "n": [1], "island": [3], "ok": [True]}))


def test_integers_widen_to_double_and_extras_are_dropped(sig: Signature) -> None:
    out = sig.enforce(pl.DataFrame({"extra": [0], "ok": [True], "island": ["Dream"], "n": [1], "x": [2]}))
    assert list(out.columns) == ["x", "n", "island", "ok"]
    assert out["x"].dtype == "float64"


def test_row_dicts_are_accepted(sig: Signature) -> None:
    out = sig.enforce([{"x": 1.0, "n": 2, "island": "Dream", "ok": False}])
    assert len(out) == 1


def test_unreadable_input() -> None:
    with pytest.raises(InputError, match="cannot read model input of type int"):
        Signature((ColumnSpec("x", "double"),)).enforce(3)


def test_compatibility() -> None:
    old = Signature((ColumnSpec("a", "double"), ColumnSpec("b", "string")), classes=("x", "y"))
    fewer = Signature((ColumnSpec("a", "double"),), classes=("x", "y"))
    assert fewer.compatible_with(old) == []
    more = Signature((ColumnSpec("a", "double"), ColumnSpec("c", "long")), classes=("x",))
    problems = more.compatible_with(old)
    assert any("needs column 'c'" in p for p in problems)
    assert any("no longer predicts class(es) y" in p for p in problems)
    retyped = Signature((ColumnSpec("b", "double"),))
    assert retyped.compatible_with(old) == ["column 'b' changed type string -> double"]
