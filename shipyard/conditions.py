"""Conditions over metrics: a threshold (``"> 0.01"``) and the small boolean language of monitor rules
(``drift_share > 0.3 and (accuracy < 0.85 or not error_rate >= 0.05)``).

No ``eval``: a tokenizer and a recursive-descent parser. Which metric names exist is the schema's
business (``shipyard.config``), not this module's.
"""

from __future__ import annotations

import re
from typing import Any

_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_TOKEN = re.compile(r"\s*(?:(?P<num>-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|(?P<op>>=|<=|==|!=|>|<)|"
                    r"(?P<lp>\()|(?P<rp>\))|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))")
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__,
        "==": float.__eq__, "!=": float.__ne__}


def parse_condition(text: str) -> tuple[str, float]:
    """``"> 0.01"`` -> (">", 0.01)."""
    match = _CONDITION.match(str(text))
    if not match:
        raise ValueError(f"expected a condition like \"> 0.01\" or \"< 0.9\", got {text!r}")
    return match.group(1), float(match.group(2))


def parse_when(text: str) -> Any:
    """Parse ``drift_share > 0.3 and (accuracy < 0.85 or error_rate >= 0.05)`` into a small tree.

    No ``eval``: a tokenizer and a recursive-descent parser over comparisons of one metric with one
    number, joined by ``and``, ``or``, ``not`` and parentheses. Returns nested tuples
    ``("cmp", metric, op, number)``, ``("and", a, b)``, ``("or", a, b)``, ``("not", a)``.
    """
    tokens: list[tuple[str, str]] = []
    pos, text = 0, str(text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read {text[pos:].strip()!r} in {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    if not tokens:
        raise ValueError("a rule needs a condition like 'drift_share > 0.3'")
    at = 0

    def peek() -> tuple[str, str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise ValueError(f"{text!r} ends too early")
        at += 1
        return tokens[at - 1]

    def disjunction() -> Any:
        left = conjunction()
        while peek() == ("name", "or"):
            take()
            left = ("or", left, conjunction())
        return left

    def conjunction() -> Any:
        left = negation()
        while peek() == ("name", "and"):
            take()
            left = ("and", left, negation())
        return left

    def negation() -> Any:
        if peek() == ("name", "not"):
            take()
            return ("not", negation())
        if peek() and peek()[0] == "lp":  # type: ignore[index]
            take()
            inner = disjunction()
            if take()[0] != "rp":
                raise ValueError(f"missing ')' in {text!r}")
            return inner
        kind, metric = take()
        if kind != "name" or metric in ("and", "or", "not"):
            raise ValueError(f"expected a metric name in {text!r}, got {metric!r}")
        kind, op = take()
        if kind != "op":
            raise ValueError(f"expected a comparison (>, >=, <, <=, ==, !=) after {metric} in {text!r}")
        kind, number = take()
        if kind != "num":
            raise ValueError(f"expected a number after {metric} {op} in {text!r}, got {number!r}")
        return ("cmp", metric, op, float(number))

    tree = disjunction()
    if at != len(tokens):
        raise ValueError(f"unexpected {tokens[at][1]!r} in {text!r}")
    return tree


def when_metrics(tree: Any) -> list[str]:
    """The metric names a parsed condition reads."""
    if tree[0] == "cmp":
        return [tree[1]]
    return [m for part in tree[1:] for m in when_metrics(part)]


def eval_when(tree: Any, metrics: dict[str, Any]) -> bool | None:
    """True/False, or None when a metric it needs is missing from ``metrics`` (no verdict)."""
    op = tree[0]
    if op == "cmp":
        value = metrics.get(tree[1])
        if value is None or isinstance(value, str):
            return None
        return _OPS[tree[2]](float(value), tree[3])
    if op == "not":
        inner = eval_when(tree[1], metrics)
        return None if inner is None else not inner
    left, right = eval_when(tree[1], metrics), eval_when(tree[2], metrics)
    if op == "and":
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if left is True or right is True:
        return True
    return None if left is None or right is None else False
