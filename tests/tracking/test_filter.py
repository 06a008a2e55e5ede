"""The filter language: MLflow's syntax, plus OR and parentheses; errors point at the token."""

from __future__ import annotations

import pytest

from shipyard.errors import InputError
from shipyard.tracking import filter as flt


def test_mlflow_syntax_parses() -> None:
    node = flt.parse("metrics.acc > 0.9 and params.depth = '3'")
    assert node == flt.And((flt.Comparison("metrics", "acc", ">", 0.9), flt.Comparison("params", "depth", "=", "3")))


def test_or_binds_looser_than_and_and_parentheses_group() -> None:
    node = flt.parse("tags.a = 'x' or tags.b = 'y' and metrics.m < 1")
    assert isinstance(node, flt.Or) and isinstance(node.parts[1], flt.And)
    grouped = flt.parse("(tags.a = 'x' OR tags.b = 'y') AND metrics.m < 1")
    assert isinstance(grouped, flt.And) and isinstance(grouped.parts[0], flt.Or)


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics.`f1 macro` >= 0.8", flt.Comparison("metrics", "f1 macro", ">=", 0.8)),
    ('params."learning rate" = \'0.1\'', flt.Comparison("params", "learning rate", "=", "0.1")),
    ("tags.team LIKE 'a%'", flt.Comparison("tags", "team", "LIKE", "a%")),
    ("tags.team ILIKE 'A%'", flt.Comparison("tags", "team", "ILIKE", "A%")),
    ("attributes.status = 'FINISHED'", flt.Comparison("attributes", "status", "=", "FINISHED")),
    ("status = 'FINISHED'", flt.Comparison("attributes", "status", "=", "FINISHED")),
    ("run.run_id IN ('a', 'b')", flt.Comparison("attributes", "run_id", "IN", ("a", "b"))),
    ("attributes.created > 5", flt.Comparison("attributes", "start_time", ">", 5.0)),
    ("tags.x IS NULL", flt.Comparison("tags", "x", "IS NULL", None)),
    ("params.x IS NOT NULL", flt.Comparison("params", "x", "IS NOT NULL", None)),
    ("metrics.system/cpu_seconds < 1e3", flt.Comparison("metrics", "system/cpu_seconds", "<", 1000.0)),
    ("datasets.context = 'training'", flt.Comparison("datasets", "context", "=", "training")),
    ("params.name = 'it''s'", flt.Comparison("params", "name", "=", "it's")),
])
def test_forms(text: str, expected: flt.Comparison) -> None:
    assert flt.parse(text) == expected


@pytest.mark.parametrize(("text", "column", "words"), [
    ("metrics.acc > 'high'", 15, "compares with a number"),
    ("params.depth = 3", 16, "quoted string"),
    ("metrics.acc LIKE 'x'", 13, "does not apply"),
    ("foo.acc > 1", 1, "unknown entity"),
    ("metrics.acc > 0.9 and", 22, "ends too early"),
    ("(metrics.acc > 0.9", 19, "expected ')'"),
    ("metrics.acc > 0.9 params.x = '1'", 19, "expected AND, OR"),
    ("params.x = 'open", 12, "unterminated string"),
    ("attributes.colour = 'red'", 12, "unknown attribute"),
    ("metrics.acc ~ 1", 13, "unexpected character"),
    ("params.x IN ('a')", 10, "works on attributes"),
])
def test_errors_point_at_the_token(text: str, column: int, words: str) -> None:
    with pytest.raises(InputError) as info:
        flt.parse(text)
    message = info.value.message
    assert f"column {column}:" in message and words in message, message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") - 2 == column - 1


def test_empty_filter_is_none() -> None:
    assert flt.parse("  ") is None and flt.parse(None) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics.acc DESC", flt.OrderKey("metrics", "acc", False)),
    ("params.depth", flt.OrderKey("params", "depth", True)),
    ("attributes.start_time ASC", flt.OrderKey("attributes", "start_time", True)),
    ("start_time desc", flt.OrderKey("attributes", "start_time", False)),
    ("metrics.`f1 macro` DESC", flt.OrderKey("metrics", "f1 macro", False)),
])
def test_order_by(text: str, expected: flt.OrderKey) -> None:
    assert flt.parse_order_by(text) == expected


def test_bad_order_by() -> None:
    with pytest.raises(InputError, match="unexpected 'sideways'"):
        flt.parse_order_by("metrics.acc sideways")
