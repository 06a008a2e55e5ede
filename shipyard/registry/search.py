"""MLflow's registry search: ``search_model_versions`` and ``search_registered_models``.

Filters are comparisons joined by ``AND`` (MLflow's registry grammar has no ``OR``):

    name = 'penguins' AND tags.stage != 'old'       version_number >= 2
    name LIKE 'pen%'   name ILIKE 'PEN%'   run_id IN ('ab..', 'cd..')   source_path = 's3://b/m'

Versions filter on ``name``, ``run_id``, ``source_path`` (``=``, ``!=``, ``LIKE``, ``ILIKE``, and
``IN``/``NOT IN`` for name and run_id), ``version_number`` (``= != < <= > >=``) and
``tags.KEY``/``tag.KEY`` (``= != LIKE ILIKE``; a version without the tag never matches).
Registered models filter on ``name`` and tags. ``order_by`` takes MLflow's keys with ``ASC`` or
``DESC``; page tokens are MLflow's (base64 of ``{"offset": N}``). Errors use MLflow's messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shipyard.registry.mlflow_api import (
    RUN_ID_TAG,
    InvalidParameter,
    model_entity,
    versions_entities,
)
from shipyard.store import registry as repo

VERSION_STRING_KEYS = {"name", "run_id", "source_path"}
VERSION_NUMERIC_KEYS = {"version_number"}
VERSION_ORDER_KEYS = {"name", "version_number", "creation_timestamp", "last_updated_timestamp"}
MODEL_ORDER_KEYS = {"name", "creation_timestamp", "timestamp", "last_updated_timestamp"}
LIST_KEYS = {"name", "run_id"}
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"   # MLflow's client adds ``!= 'true'`` to leave prompts out
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
VERSIONS_DEFAULT, VERSIONS_MAX = 10_000, 200_000
MODELS_DEFAULT, MODELS_MAX = 100, 1000


@dataclass(frozen=True)
class Clause:
    """One comparison: ``kind`` is ``attribute`` or ``tag``; ``value`` a str, int or tuple of str."""

    kind: str
    key: str
    op: str
    value: Any


def parse(text: str | None, string_keys: set[str], numeric_keys: set[str]) -> list[Clause]:
    """The AND-joined clauses of ``text`` (empty for no filter); a 400 with MLflow's words otherwise."""
    from shipyard.tracking.filter import tokenize

    if not text or not text.strip():
        return []
    try:
        tokens = tokenize(text)
    except Exception as exc:  # the tokenizer's InputError carries a caret; MLflow's wording here
        raise InvalidParameter(f"Error on parsing filter '{text}'") from exc
    groups: list[list[Any]] = [[]]
    for tok in tokens:
        if tok.kind == "word" and tok.upper == "AND":
            groups.append([])
        elif tok.kind == "word" and tok.upper == "OR":
            raise InvalidParameter(f"Invalid clause(s) in filter string: 'OR'. Filter string: '{text}'")
        else:
            groups[-1].append(tok)
    return [_clause(text, group, string_keys, numeric_keys) for group in groups]


def _identifier(tokens: list[Any], valid: set[str]) -> tuple[str, str, int]:
    """(kind, key, tokens used) for ``name``, ``attribute.name``, ``tags.`k``` or ``tag.k.x``."""
    first = tokens[0]
    text = first.text[1:-1] if first.kind == "backtick" else first.text
    if len(tokens) > 2 and tokens[1].kind == "dot":
        entity = text
        if entity not in ("attribute", "tag", "tags"):
            raise InvalidParameter(f"Invalid entity type '{entity}'. Valid entity types are ('attribute', 'tag', 'tags')")
        used, parts = 2, []
        while used < len(tokens):
            tok = tokens[used]
            if tok.kind in ("backtick", "string"):
                parts.append(tok.text[1:-1])
            elif tok.kind in ("word", "number"):
                parts.append(tok.text)
            else:
                break
            used += 1
            if used < len(tokens) and tokens[used].kind == "dot" and entity != "attribute":
                used += 1
                continue
            break
        key = ".".join(parts)
        kind = "attribute" if entity == "attribute" else "tag"
    else:
        key, kind, used = text, "attribute", 1
    if kind == "attribute" and key not in valid:
        raise InvalidParameter(f"Invalid attribute key '{key}' specified. Valid keys are '{valid}'")
    return kind, key, used


def _clause(text: str, tokens: list[Any], string_keys: set[str], numeric_keys: set[str]) -> Clause:
    if not tokens:
        raise InvalidParameter(f"Invalid filter '{text}'. Could not be parsed.")
    kind, key, used = _identifier(tokens, string_keys | numeric_keys)
    rest = tokens[used:]
    if len(rest) >= 2 and rest[0].kind == "word" and rest[0].upper == "NOT" and rest[1].upper == "IN":
        op, rest = "NOT IN", rest[2:]
    elif rest and (rest[0].kind == "op" or rest[0].upper in ("LIKE", "ILIKE", "IN")):
        op, rest = {"==": "=", "<>": "!="}.get(rest[0].text, rest[0].text.upper()), rest[1:]
    else:
        raise InvalidParameter(f"Invalid filter '{text}'. Could not be parsed.")
    if kind == "tag":
        return _tag_clause(key, op, rest)
    if key in numeric_keys:
        if op not in NUMERIC_OPS:
            raise InvalidParameter(f"Invalid comparator for attribute: {op}. Valid comparators are {set(NUMERIC_OPS)}")
        if len(rest) != 1 or rest[0].kind not in ("number", "string"):
            raise InvalidParameter(f"Expected a numeric value for attribute {key}. Got value "
                                   f"{' '.join(t.text for t in rest)}")
        raw = rest[0].text.strip("'\"")
        if not re.fullmatch(r"-?\d+", raw):
            raise InvalidParameter(f"Expected an integer value for attribute {key}. Got value {raw}")
        return Clause("attribute", key, op, int(raw))
    if op not in STRING_OPS:
        raise InvalidParameter(f"Invalid comparator for attribute: {op}. Valid comparators are {set(STRING_OPS)}")
    if op in ("IN", "NOT IN"):
        if key not in LIST_KEYS:
            raise InvalidParameter(f"Only {sorted(LIST_KEYS & string_keys)} support IN and NOT IN, not '{key}'")
        return Clause("attribute", key, op, _string_list(rest))
    return Clause("attribute", key, op, _string(rest, "attributes"))


def _tag_clause(key: str, op: str, rest: list[Any]) -> Clause:
    if op not in ("=", "!=", "LIKE", "ILIKE"):
        raise InvalidParameter(f"Invalid comparator for tag: {op}. Valid comparators are {{'=', '!=', 'LIKE', 'ILIKE'}}")
    return Clause("tag", key, op, _string(rest, "tag"))


def _string(rest: list[Any], what: str) -> str:
    if len(rest) != 1 or rest[0].kind != "string":
        got = " ".join(t.text for t in rest)
        raise InvalidParameter(f"Expected a quoted string value for {what} (e.g. 'my-value'). Got value {got}")
    return _unquote(rest[0].text)


def _string_list(rest: list[Any]) -> tuple[str, ...]:
    if len(rest) < 3 or rest[0].kind != "lparen" or rest[-1].kind != "rparen":
        raise InvalidParameter("While parsing a list in the query, expected a non-empty list of string values, "
                               f"but got {' '.join(t.text for t in rest)}")
    values = [t for t in rest[1:-1] if t.kind != "comma"]
    if any(t.kind != "string" for t in values):
        raise InvalidParameter("While parsing a list in the query, expected string value, punctuation, or "
                               f"whitespace, but got {' '.join(t.text for t in values)}")
    return tuple(_unquote(t.text) for t in values)


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1]
    return body.replace(quote * 2, quote).replace("\\" + quote, quote)


def tag_matches(tags: dict[str, str], clause: Clause) -> bool:
    """A tag clause; a missing tag never matches, except MLflow's prompt marker, whose absence
    means "not a prompt" (so ``!= 'true'`` and ``= 'false'`` match it, as in MLflow)."""
    value = tags.get(clause.key)
    if value is None and clause.key == IS_PROMPT_TAG:
        return (clause.op, clause.value) in (("!=", "true"), ("=", "false"))
    return matches(value, clause.op, clause.value)


def matches(value: Any, op: str, target: Any) -> bool:
    """One comparison as MLflow's SQL store makes it (LIKE case-sensitive, ILIKE not)."""
    if value is None:
        return False
    if op in ("LIKE", "ILIKE"):
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(target))
        return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL if op == "ILIKE" else re.DOTALL) is not None
    if op == "IN":
        return value in target
    if op == "NOT IN":
        return value not in target
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return compare[op](value, target)


def parse_order_by(order_by: Sequence[str], valid: set[str]) -> list[tuple[str, bool]]:
    """[(key, ascending)] from MLflow's ``order_by`` (``name``, ``version_number DESC``, ...)."""
    out: list[tuple[str, bool]] = []
    for clause in order_by:
        words = str(clause).split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise InvalidParameter(f"Invalid order_by clause '{clause}'. Could not be parsed.")
        key = words[0].split(".", 1)[1] if words[0].startswith(("attribute.", "attributes.")) else words[0]
        key = key.strip("`")
        if key not in valid:
            raise InvalidParameter(f"Invalid order by key '{key}' specified. Valid keys are '{valid}'")
        if key in [k for k, _ in out]:
            raise InvalidParameter(f"`order_by` contains duplicate fields: {list(order_by)}")
        out.append((key, len(words) == 1 or words[1].upper() == "ASC"))
    return out


def check_max_results(raw: Any, default: int, limit: int) -> int:
    """``max_results`` as MLflow checks it: a positive integer at most ``limit``."""
    if raw is None or raw == "":
        return default
    text = str(raw)
    if not re.fullmatch(r"-?\d+", text) or int(text) < 1:
        raise InvalidParameter(f"Invalid value for max_results. It must be a positive integer, but got {text[:40]}")
    if int(text) > limit:
        raise InvalidParameter(f"Invalid value for request parameter max_results. It must be at most {limit}, "
                               f"but got value {int(text)}")
    return int(text)


def _page(items: list[Any], max_results: int, page_token: str | None) -> tuple[list[Any], str | None]:
    from shipyard.tracking.search import decode_token, encode_token

    try:
        offset = decode_token(page_token)
    except Exception as exc:
        raise InvalidParameter(f"Invalid page token, could not base64-decode. Error: {exc}") from exc
    page = items[offset:offset + max_results]
    return page, encode_token(offset + max_results) if offset + max_results < len(items) else None


def _sort_value(value: Any, ascending: bool) -> Any:
    return value if ascending else _Reversed(value)


class _Reversed:
    """Sorts its value in reverse (for DESC keys mixed with ASC ones in one sort)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value


def search_versions(session: Session, filter_string: str | None = None, order_by: Sequence[str] = (),
                    max_results: Any = None, page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """MLflow's ``search_model_versions``: (page of ``ModelVersion`` entities, next page token)."""
    clauses = parse(filter_string, VERSION_STRING_KEYS, VERSION_NUMERIC_KEYS)
    limit = check_max_results(max_results, VERSIONS_DEFAULT, VERSIONS_MAX)
    ordering = parse_order_by(order_by, VERSION_ORDER_KEYS) or [("last_updated_timestamp", False)]
    if "name" not in [k for k, _ in ordering]:
        ordering.append(("name", True))
    if "version_number" not in [k for k, _ in ordering]:
        ordering.append(("version_number", False))
    rows = repo.list_versions(session, limit=None)
    names = {m.id: m.name for m in repo.models_by_id(session, sorted({r.model_id for r in rows}))}
    tags = repo.version_tags_many(session, [r.id for r in rows])
    attrs = {"name": lambda r: names[r.model_id], "version_number": lambda r: r.version,
             "source_path": lambda r: r.source or "",
             "run_id": lambda r: r.run_id or tags[r.id].get(RUN_ID_TAG, ""),
             "creation_timestamp": lambda r: r.created_at, "last_updated_timestamp": lambda r: r.updated_at}

    def keep(row: repo.ModelVersionRow) -> bool:
        return all(tag_matches(tags[row.id], c) if c.kind == "tag" else matches(attrs[c.key](row), c.op, c.value)
                   for c in clauses)

    # filter and sort the rows; only the page becomes MLflow entities
    found = sorted((r for r in rows if keep(r)), key=lambda r: tuple(_sort_value(attrs[k](r), asc) for k, asc in ordering))
    page, token = _page(found, limit, page_token)
    return versions_entities(session, page), token


def search_models(session: Session, filter_string: str | None = None, order_by: Sequence[str] = (),
                  max_results: Any = None, page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """MLflow's ``search_registered_models``: (page of ``RegisteredModel`` entities, next token)."""
    clauses = parse(filter_string, {"name"}, set())
    limit = check_max_results(max_results, MODELS_DEFAULT, MODELS_MAX)
    ordering = [("creation_timestamp" if k == "timestamp" else k, asc)
                for k, asc in parse_order_by(order_by, MODEL_ORDER_KEYS)]
    if "name" not in [k for k, _ in ordering]:
        ordering.append(("name", True))
    models = repo.list_models(session, limit=None)
    tags = repo.model_tags_many(session, [m.id for m in models])
    attrs = {"name": lambda m: m.name, "creation_timestamp": lambda m: m.created_at,
             "last_updated_timestamp": lambda m: m.updated_at}
    kept = [m for m in models
            if all(tag_matches(tags[m.id], c) if c.kind == "tag" else matches(m.name, c.op, c.value) for c in clauses)]
    kept.sort(key=lambda m: tuple(_sort_value(attrs[k](m), asc) for k, asc in ordering))
    page, token = _page(kept, limit, page_token)
    return [model_entity(session, m) for m in page], token
