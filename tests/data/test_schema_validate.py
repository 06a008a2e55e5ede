"""Schemas (loading, inference) and validation: every check, counts, examples, reports, PII."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from shipyard.data.pii import luhn_ok, mask
from shipyard.data.schema import Schema, infer_schema, load_schema
from shipyard.data.validate import validate
from shipyard.errors import ConfigError, InputError


def write(tmp_path, text: str):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    return path


def failures(report) -> dict[tuple[str, str | None], object]:
    return {(c.check, c.column): c for c in report.failures}


def test_every_column_check_counts_and_shows_examples(tmp_path) -> None:
    df = pl.DataFrame({
        "id": [1, 2, 2, 4, 5, 6, 7],
        "age": [30, -1, 40, 200, None, 50, 60],
        "kind": ["a", "b", "z", "a", "b", "a", None],
        "code": ["AB12", "AB13", "xx", "AB14", "AB15", "AB16", "AB17"],
        "name": ["ann", "bo", "carla", "d", "eve", "fay", "gus"],
    })
    schema = write(tmp_path, """
columns:
  id: {dtype: int, unique: true}
  age: {dtype: int, nullable: false, min: 0, max: 120}
  kind: {dtype: string, allowed: [a, b]}
  code: {dtype: string, regex: '[A-Z]{2}[0-9]{2}'}
  name: {dtype: string, min_length: 2, max_length: 4}
""")
    report = validate(df, schema)
    f = failures(report)
    assert set(f) == {("unique", "id"), ("not_null", "age"), ("min", "age"), ("max", "age"), ("allowed", "kind"),
                      ("regex", "code"), ("min_length", "name"), ("max_length", "name")}
    assert f[("unique", "id")].failed == 2 and [e["row"] for e in f[("unique", "id")].examples] == [2, 3]
    assert f[("min", "age")].examples == [{"row": 2, "age": -1}]
    assert f[("max", "age")].examples == [{"row": 4, "age": 200}]
    assert f[("allowed", "kind")].failed == 1 and f[("allowed", "kind")].examples == [{"row": 3, "kind": "z"}]
    assert f[("min_length", "name")].examples == [{"row": 4, "name": "d"}]
    assert f[("max_length", "name")].examples == [{"row": 3, "name": "carla"}]
    assert f[("regex", "code")].where == "schema.yaml:6:3"
    assert not report.passed


def test_at_most_five_examples_and_all_failures_counted() -> None:
    df = pl.DataFrame({"x": list(range(-100, 100))})
    report = validate(df, Schema.model_validate({"columns": {"x": {"min": 0}}}))
    (fail,) = report.failures
    assert fail.failed == 100 and len(fail.examples) == 5


def test_table_checks(tmp_path) -> None:
    df = pl.DataFrame({"b": [1, 1], "a": [2, 2], "extra": [0, 0]})
    schema = write(tmp_path, """
columns: {a: {}, b: {}}
table: {rows: {min: 3, max: 10}, unique: [a, b], strict: ordered}
""")
    f = failures(validate(df, schema))
    assert set(f) == {("table.columns", None), ("table.order", None), ("table.rows", None), ("table.unique", "a,b")}
    assert "extra" in f[("table.columns", None)].message
    assert "2 rows, expected 3..10" in f[("table.rows", None)].message
    assert f[("table.unique", "a,b")].failed == 2


def test_schema_naming_a_missing_column_fails_with_its_line(tmp_path) -> None:
    df = pl.DataFrame({"species": ["a"], "island": ["b"]})
    schema = write(tmp_path, "columns:\n  species: {}\n  islands: {}\n")
    report = validate(df, schema)
    (fail,) = report.failures
    assert fail.check == "column.present" and fail.column == "islands"
    assert "schema.yaml:3:3" in fail.message and "did you mean 'island'" in fail.message


def test_header_only_file_never_passes_silently(tmp_path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    report = validate(tmp_path / "h.csv", write(tmp_path, "columns: {a: {}, b: {}}\n"))
    assert not report.passed and report.failures[0].check == "table.rows"
    assert any("header but no data rows" in w for w in report.warnings)
    allowed = validate(tmp_path / "h.csv", write(tmp_path, "columns: {a: {}}\ntable: {rows: {min: 0}}\n"))
    assert allowed.passed


def test_mixed_types_fail_the_dtype_check_with_the_bad_values(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("x\n1.5\n2\noops\n4\n")
    report = validate(tmp_path / "m.csv", write(tmp_path, "columns: {x: {dtype: float, max: 3}}\n"))
    f = failures(report)
    assert f[("dtype", "x")].examples == [{"row": 3, "x": "oops"}]
    assert f[("max", "x")].failed == 1  # range checks still run on the values that parse
    assert any("mixes numbers and text" in w for w in report.warnings)


def test_wrong_dtype_on_a_typed_column() -> None:
    report = validate(pl.DataFrame({"x": [1.0, 2.0]}), Schema.model_validate({"columns": {"x": {"dtype": "string"}}}))
    (fail,) = report.failures
    assert fail.check == "dtype" and "expected string, the column is float" in fail.message


def test_float_accepts_int_and_nan_counts_as_null() -> None:
    schema = Schema.model_validate({"columns": {"i": {"dtype": "float"}, "f": {"dtype": "float", "nullable": False}}})
    report = validate(pl.DataFrame({"i": [1, 2], "f": [1.0, float("nan")]}), schema)
    assert [(c.check, c.column, c.failed) for c in report.failures] == [("not_null", "f", 1)]


def test_lazy_frames_are_refused() -> None:
    with pytest.raises(InputError, match="LazyFrame"):
        validate(pl.DataFrame({"a": [1]}).lazy(), Schema.model_validate({"columns": {"a": {}}}))  # type: ignore[arg-type]


def test_bad_schema_files_name_the_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"schema\.yaml:3:\d+: columns\.a\.maxx: unknown key \(did you mean 'max'"):
        load_schema(write(tmp_path, "columns:\n  a:\n    maxx: 3\n"))
    with pytest.raises(ConfigError, match=r"min .* is greater than max"):
        load_schema(write(tmp_path, "columns:\n  a: {min: 5, max: 1}\n"))
    with pytest.raises(ConfigError, match="invalid regular expression"):
        load_schema(write(tmp_path, "columns:\n  a: {regex: '(['}\n"))
    with pytest.raises(ConfigError, match="needs a 'columns:' mapping"):
        load_schema(write(tmp_path, "table: {}\n"))
    with pytest.raises(ConfigError, match=r"table\.unique names columns"):
        load_schema(write(tmp_path, "columns: {a: {}}\ntable: {unique: [b]}\n"))
    with pytest.raises(ConfigError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")


def test_inferred_schema_is_tolerant_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    df = pl.DataFrame({
        "x": rng.normal(50, 5, n),
        "count": rng.integers(0, 10, n),
        "cat": rng.choice(["a", "b", "c"], n),
        "id": [f"user-{i}" for i in range(n)],
    })
    schema = infer_schema(df)
    x = schema.columns["x"]
    assert x.min <= df["x"].min() and x.max >= df["x"].max()
    q_lo, q_hi = df["x"].quantile(0.001), df["x"].quantile(0.999)
    assert x.min < q_lo - 3 and x.max > q_hi + 3  # widened by 10 % of the quantile range
    assert schema.columns["count"].min == 0  # non-negative stays non-negative
    assert schema.columns["cat"].allowed == ["a", "b", "c"]
    assert schema.columns["id"].allowed is None and schema.columns["id"].unique
    path = write(tmp_path, schema.to_yaml("inferred"))
    assert load_schema(path).schema == schema
    assert validate(df, path).passed
    # a fresh sample of the same process passes too: tolerant, not the exact observed min/max
    fresh = df.with_columns(pl.Series("x", rng.normal(50, 5, n)), pl.Series("id", [f"u-{i}" for i in range(n)]))
    assert validate(fresh, path).passed


def test_pii_flags_emails_phones_and_cards_but_not_ids() -> None:
    df = pl.DataFrame({
        "email": ["ann@example.com", "bo@test.org", "x@y.io", "n/a"],
        "phone": ["+1 (555) 010-9999", "555-0100", "+44 20 7946 0958", "0301234567"],
        "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "4012888888881881", "378282246310005"],
        "id": ["1234567890123456", "1234567890123457", "1111222233334445", "9999999999999990"],
        "note": ["hello", "world", "foo", "bar"],
    })
    report = validate(df, Schema.model_validate({"columns": {}}), pii=True)
    kinds = {p.column: p.kind for p in report.pii}
    assert kinds == {"email": "email", "phone": "phone", "card": "card_number"}
    assert kinds["email"] == "email" and kinds["card"] == "card_number" and kinds["phone"] == "phone"
    assert not report.passed
    assert "an@example.com" not in json.dumps(report.to_dict())  # examples are masked
    acknowledged = validate(df.select("email"), Schema.model_validate({"columns": {"email": {"pii": True}}}), pii=True)
    assert acknowledged.passed
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert mask("ann@example.com") == "an*@*******.*om"


def test_reports_render(tmp_path) -> None:
    df = pl.DataFrame({"x": [1, 50]})
    report = validate(df, Schema.model_validate({"columns": {"x": {"max": 10}}}), source="d.csv")
    data = report.to_dict()
    assert data["passed"] is False and data["failures"][0]["examples"] == [{"row": 2, "x": 50}]
    md = report.to_markdown()
    assert "| max | x | 1 | values above the maximum 10 | 2: 50 |" in md
    assert report.summary() == "d.csv: 1 of 4 checks failed (2 rows)"
