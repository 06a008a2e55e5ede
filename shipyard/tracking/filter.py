"""The run filter language: MLflow's ``search_runs`` syntax plus ``OR`` and parentheses.

    metrics.acc > 0.9 and params.depth = '3'
    (tags.team = 'a' OR tags.team = 'b') AND attributes.status = 'FINISHED'
    params.model LIKE 'random%' and metrics.`f1 macro` >= 0.8
    attributes.run_id IN ('ab12...', 'cd34...')   datasets.context = 'training'   tags.x IS NULL

Identifiers: ``metrics.`` (``metric.``), ``params.`` (``param.``, ``parameters.``), ``tags.``
(``tag.``), ``attributes.`` (``attribute.``, ``attr.``, ``run.``) and ``datasets.``
(``dataset.``); a bare attribute name (``status``) means ``attributes.status``. Names with spaces
or symbols go in backticks or double quotes. ``parse`` returns a small tree; a mistake raises
InputError with the column and a caret under the offending token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InputError

ENTITY_ALIASES = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
    "dataset": "datasets", "datasets": "datasets",
}
NUMERIC_ATTRIBUTES = {"start_time", "end_time", "created"}
STRING_ATTRIBUTES = {"status", "run_id", "run_name", "user_id", "user", "lifecycle_stage", "artifact_uri",
                     "source", "git_commit", "git_branch", "host", "parent_run_id", "experiment_id"}
DATASET_FIELDS = {"name", "digest", "context"}
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
  | (?P<word>[A-Za-z_][\w\-:/]*)
""", re.VERBOSE)
_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class Comparison:
    """``entity.key op value``; value is a float, a str, a tuple of str (IN) or None (IS NULL)."""

    entity: str
    key: str
    op: str
    value: float | str | tuple[str, ...] | None


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Comparison | And | Or


def _error(text: str, pos: int, message: str, hint: str | None = None) -> InputError:
    caret = " " * pos + "^"
    return InputError(f"bad filter at column {pos + 1}: {message}\n  {text}\n  {caret}",
                      hint=hint or "example: metrics.acc > 0.9 and (params.depth = '3' or tags.team = 'a')")


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] in "'\"":
                raise _error(text, pos, "unterminated string", hint="close the quote")
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        if kind == "string" and match.group().startswith('"') and tokens and tokens[-1].kind == "dot":
            kind = "backtick"  # "quoted name" right after a dot is a key, as in MLflow
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unquote(tok: Token) -> str:
    body = tok.text[1:-1]
    if tok.text[0] == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise _error(self.text, len(self.text), "the filter ends too early")
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.upper in words:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise _error(self.text, tok.pos, f"expected AND, OR or the end, got {tok.text!r}")
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.keyword("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.atom()]
        while self.keyword("AND"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def atom(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "lparen":
            self.take()
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise _error(self.text, close.pos if close else len(self.text), "expected ')'")
            self.take()
            return node
        return self.comparison()

    def identifier(self) -> tuple[str, str, Token]:
        tok = self.take()
        if tok.kind not in ("word", "backtick") or tok.upper in _KEYWORDS:
            raise _error(self.text, tok.pos, f"expected an identifier such as metrics.acc, got {tok.text!r}")
        nxt = self.peek()
        if tok.kind == "word" and nxt is not None and nxt.kind == "dot":
            entity = ENTITY_ALIASES.get(tok.text.lower())
            if entity is None:
                raise _error(self.text, tok.pos, f"unknown entity {tok.text!r}",
                             hint="use metrics., params., tags., attributes. or datasets.")
            self.take()
            name_tok = self.take()
            if name_tok.kind == "backtick":
                key = name_tok.text[1:-1]
            elif name_tok.kind in ("word", "number"):
                key = name_tok.text
                while self.peek() is not None and self.peek().kind == "dot":  # type: ignore[union-attr]
                    self.take()
                    more = self.take()
                    key += "." + (more.text[1:-1] if more.kind == "backtick" else more.text)
            else:
                raise _error(self.text, name_tok.pos, f"expected a name after '{tok.text}.', got {name_tok.text!r}")
            if not key:
                raise _error(self.text, name_tok.pos, "empty name")
            return entity, key, name_tok
        name = tok.text[1:-1] if tok.kind == "backtick" else tok.text
        if name.lower() in NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES:
            return "attributes", name.lower(), tok
        raise _error(self.text, tok.pos, f"{tok.text!r} needs a prefix (metrics., params., tags. or attributes.)")

    def comparison(self) -> Comparison:
        entity, key, name_tok = self.identifier()
        if entity == "attributes":
            key = key.lower()
            if key not in NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES:
                from shipyard.errors import did_you_mean

                raise _error(self.text, name_tok.pos, f"unknown attribute {key!r}",
                             hint=did_you_mean(key, NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES))
            if key == "created":
                key = "start_time"
        if entity == "datasets" and key not in DATASET_FIELDS:
            raise _error(self.text, name_tok.pos, f"unknown dataset field {key!r}", hint="use name, digest or context")
        op_tok = self.take()
        if op_tok.kind == "word" and op_tok.upper == "IS":
            negate = self.keyword("NOT")
            null = self.take()
            if null.upper != "NULL":
                raise _error(self.text, null.pos, f"expected NULL after IS, got {null.text!r}")
            if entity not in ("params", "tags", "metrics"):
                raise _error(self.text, op_tok.pos, "IS NULL works on metrics, params and tags")
            return Comparison(entity, key, "IS NOT NULL" if negate else "IS NULL", None)
        if op_tok.kind == "word" and op_tok.upper in ("NOT", "IN"):
            op = "IN"
            if op_tok.upper == "NOT":
                if not self.keyword("IN"):
                    raise _error(self.text, self.peek().pos if self.peek() else len(self.text), "expected IN after NOT")
                op = "NOT IN"
            if entity != "attributes" and entity != "datasets":
                raise _error(self.text, op_tok.pos, f"{op} works on attributes and datasets, not {entity}")
            return Comparison(entity, key, op, self.string_list())
        if op_tok.kind == "op":
            op = {"==": "=", "<>": "!="}.get(op_tok.text, op_tok.text)
        elif op_tok.kind == "word" and op_tok.upper in ("LIKE", "ILIKE"):
            op = op_tok.upper
        else:
            raise _error(self.text, op_tok.pos, f"expected a comparison operator, got {op_tok.text!r}",
                         hint="operators: = != < <= > >= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL")
        value_tok = self.take()
        numeric = entity == "metrics" or (entity == "attributes" and key in NUMERIC_ATTRIBUTES)
        if numeric:
            if op not in NUMERIC_OPS:
                raise _error(self.text, op_tok.pos, f"{op} does not apply to {entity}.{key}; use = != < <= > >=")
            if value_tok.kind != "number":
                raise _error(self.text, value_tok.pos, f"{entity}.{key} compares with a number, got {value_tok.text!r}")
            return Comparison(entity, key, op, float(value_tok.text))
        if op not in STRING_OPS:
            raise _error(self.text, op_tok.pos, f"{op} does not apply to {entity}.{key}; use = != LIKE ILIKE")
        if value_tok.kind != "string":
            raise _error(self.text, value_tok.pos, f"{entity}.{key} compares with a quoted string, got {value_tok.text!r}",
                         hint=f"quote the value: {entity}.{key} {op} '{value_tok.text}'")
        return Comparison(entity, key, op, _unquote(value_tok))

    def string_list(self) -> tuple[str, ...]:
        open_tok = self.take()
        if open_tok.kind != "lparen":
            raise _error(self.text, open_tok.pos, "expected '(' to start the list")
        values = []
        while True:
            tok = self.take()
            if tok.kind != "string":
                raise _error(self.text, tok.pos, f"expected a quoted string in the list, got {tok.text!r}")
            values.append(_unquote(tok))
            sep = self.take()
            if sep.kind == "rparen":
                return tuple(values)
            if sep.kind != "comma":
                raise _error(self.text, sep.pos, f"expected ',' or ')', got {sep.text!r}")


def parse(text: str | None) -> Node | None:
    """The filter's tree, or None for an empty filter."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


@dataclass(frozen=True)
class OrderKey:
    entity: str
    key: str
    ascending: bool


def parse_order_by(clause: str) -> OrderKey:
    """``metrics.acc DESC``, ``params.depth``, ``attributes.start_time ASC``, ``start_time``."""
    text = clause.strip()
    ascending = True
    upper = text.upper()
    if upper.endswith(" DESC"):
        ascending, text = False, text[:-5].rstrip()
    elif upper.endswith(" ASC"):
        text = text[:-4].rstrip()
    parser = _Parser(text)
    if not parser.tokens:
        raise InputError(f"bad order-by {clause!r}: empty", hint="example: metrics.acc DESC")
    entity, key, tok = parser.identifier()
    rest = parser.peek()
    if rest is not None:
        raise _error(text, rest.pos, f"unexpected {rest.text!r} in order-by", hint="example: metrics.acc DESC")
    if entity == "datasets":
        raise _error(text, tok.pos, "cannot order by datasets")
    if entity == "attributes":
        key = "start_time" if key == "created" else key.lower()
        if key not in NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES:
            raise _error(text, tok.pos, f"unknown attribute {key!r}")
    return OrderKey(entity, key, ascending)


def and_comparisons(text: str | None, what: str = "filter") -> list[Comparison]:
    """``<field> <op> <value>`` clauses joined by AND (MLflow's grammar for experiment and logged-model
    searches); a bare field is an attribute. Operators: = != < <= > >= LIKE ILIKE."""
    if text is None or not text.strip():
        return []
    clauses: list[list[Token]] = [[]]
    for tok in tokenize(text):
        if tok.kind == "word" and tok.upper == "AND":
            clauses.append([])
        else:
            clauses[-1].append(tok)
    out = []
    for clause in clauses:
        if len(clause) not in (3, 5) or (len(clause) == 5 and clause[1].kind != "dot"):
            raise InputError(f"Invalid {what} string {text!r}: expected <field> <op> <value> clauses joined by AND",
                             hint="e.g. name LIKE 'penguins%' AND tags.team = 'birds'")
        entity = "attributes" if len(clause) == 3 else ENTITY_ALIASES.get(clause[0].text.lower(), "")
        if not entity:
            raise InputError(f"Invalid entity type '{clause[0].text}' in {what} string {text!r}")
        key = clause[-3].text if clause[-3].kind != "backtick" else _unquote(clause[-3])
        op_tok, raw = clause[-2], clause[-1]
        op = {"<>": "!=", "==": "="}.get(op_tok.text, op_tok.upper)
        if op not in (*NUMERIC_OPS, "LIKE", "ILIKE"):
            raise InputError(f"Invalid comparator '{op_tok.text}' in {what} string {text!r}")
        if raw.kind == "string":
            value: float | str = _unquote(raw)
        elif raw.kind == "number":
            value = float(raw.text) if any(c in raw.text for c in ".eE") else int(raw.text)
        else:
            raise InputError(f"Invalid value {raw.text!r} in {what} string {text!r}: quote strings with ''")
        out.append(Comparison(entity, key, op, value))
    return out
