"""Request bodies in, responses out: MLflow ``/invocations`` JSON, v1 predict, and the rows every
protocol ends in (``shipyard.serving.oip`` parses Open Inference Protocol v2 into the same ``Inputs``).

Every parser returns ``Inputs`` (column names and a columnar mapping of values) or raises
``RequestError`` naming the field that is wrong (``dataframe_split.columns``, ...), which the app
turns into a 4xx. Feature checks against the model's signature happen in ``to_rows``: a missing
column, a value of the wrong type or an infinite number names the column; NaN is a missing value
and reaches the model. Numeric input stays a numpy matrix (``Rows``); a DataFrame is built only
when the model is called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from shipyard.models.signature import EXACT_INTEGERS, INTEGER_TYPES, NUMERIC_TYPES, typed_frame
from shipyard.serving.protocols import Feature

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class RequestError(Exception):
    """A request body that does not follow the protocol; ``field`` is where it went wrong."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass
class Inputs:
    """Parsed rows: ``columns`` in order and ``values`` (column -> list), or positional ``rows``."""

    columns: list[str] | None
    values: dict[str, list[Any]] | None
    rows: list[list[Any]] | None
    n: int
    params: dict[str, Any] | None = None


def loads(body: bytes) -> Any:
    """A JSON body; also the ``NaN`` literal MLflow's client writes for a missing value (and
    ``Infinity`` or ``1e999``, which the column checks then refuse naming the feature)."""
    if not body:
        raise RequestError("body", "the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in body or b"Infinity" in body or "infinity" in str(exc):
            try:  # the standard library reads the non-standard constants orjson refuses
                return json.loads(body)
            except (ValueError, RecursionError):
                pass
        raise RequestError("body", f"not valid JSON ({exc})") from None


def _rows(value: Any, field: str) -> Inputs:
    """A list of rows: each a list (positional) or an object (named columns)."""
    if not isinstance(value, list) or not value:
        raise RequestError(field, "expected a non-empty list of rows")
    first = value[0]
    if isinstance(first, dict):
        columns = list(first)
        cols: dict[str, list[Any]] = {c: [] for c in columns}
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                raise RequestError(f"{field}[{i}]", "expected an object like the first row")
            if len(row) != len(columns) or any(c not in row for c in columns):
                missing = [c for c in columns if c not in row]
                what = f"missing {missing[0]!r}" if missing else "has different keys than the first row"
                raise RequestError(f"{field}[{i}]", what)
            for c in columns:
                cols[c].append(row[c])
        return Inputs(columns, cols, None, len(value))
    if isinstance(first, list):
        width = len(first)
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != width:
                raise RequestError(f"{field}[{i}]", f"expected a list of {width} values like the first row")
        return Inputs(None, None, value, len(value))
    if isinstance(first, int | float | str | bool):
        # one row given flat: [5.1, 3.5, 1.4, 0.2]
        return Inputs(None, None, [value], 1)
    raise RequestError(f"{field}[0]", "expected a row (a list of values or an object)")


def parse_mlflow(doc: Any) -> Inputs:
    """MLflow scoring-server JSON: exactly one of dataframe_split, dataframe_records, instances, inputs."""
    if not isinstance(doc, dict):
        raise RequestError("body", "expected a JSON object with one of " + ", ".join(MLFLOW_KEYS))
    present = [k for k in MLFLOW_KEYS if k in doc]
    if len(present) != 1:
        unknown = [k for k in doc if k not in (*MLFLOW_KEYS, "params")]
        what = f"unknown key {unknown[0]!r}; " if unknown else ""
        many = f"got {len(present)} of them; " if present else ""
        raise RequestError(unknown[0] if unknown and not present else "body",
                           f"{what}{many}expected exactly one of " + ", ".join(MLFLOW_KEYS))
    key = present[0]
    value = doc[key]
    params = doc.get("params")
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise RequestError(key, "expected an object with 'columns' and 'data'")
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise RequestError(f"{key}.columns", "expected a list of column names")
        if len(set(columns)) != len(columns):
            twice = next(c for c in columns if columns.count(c) > 1)
            raise RequestError(f"{key}.columns", f"column {twice!r} is given twice")
        if not isinstance(data, list) or not data:
            raise RequestError(f"{key}.data", "expected a non-empty list of rows")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise RequestError(f"{key}.data[{i}]", f"expected a list of {len(columns)} values (one per column)")
        inputs = Inputs(list(columns), None, data, len(data))
    elif key == "dataframe_records":
        inputs = _rows(value, key)
        if inputs.columns is None:
            raise RequestError(f"{key}[0]", "expected an object mapping column names to values")
    elif isinstance(value, dict):
        # {"inputs": {"col": [..], ...}} columnar form
        columns = list(value)
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if not columns or -1 in lengths or len(lengths) != 1:
            raise RequestError(key, "expected a mapping of column name to equally long lists of values")
        inputs = Inputs(columns, {c: value[c] for c in columns}, None, lengths.pop())
    else:
        inputs = _rows(value, key)
    inputs.params = params if isinstance(params, dict) else None
    return inputs


class Rows:
    """One request's rows in the model's column order, as the model and the request log need them.

    ``array`` is the (n, k) float64 matrix when every feature is numeric (the usual case): nothing
    on the request path builds pandas objects until a model asks for ``frame``, and the request log
    concatenates the arrays of many requests in one call. Otherwise ``array`` is None and ``frame``
    is the checked DataFrame built while parsing.
    """

    __slots__ = ("_frame", "array", "columns", "types")

    def __init__(self, columns: tuple[str, ...], array: np.ndarray | None, frame: Any = None,
                 types: tuple[str, ...] | None = None) -> None:
        self.columns = columns
        self.array = array
        self._frame = frame
        self.types = types  # the features' declared types: long and boolean columns come back typed in ``frame``

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self._frame)

    @property
    def frame(self) -> Any:
        """The rows as a pandas DataFrame (built once, sharing the array's memory)."""
        if self._frame is None:
            self._frame = typed_frame(self.array, _column_index(self.columns), self.types or ())
        return self._frame

    @classmethod
    def of_frame(cls, frame: Any) -> Rows:
        """Rows around an existing DataFrame (a float64 block keeps its array for the log)."""
        columns = tuple(str(c) for c in frame.columns)
        dtypes = set(frame.dtypes)
        array = frame.to_numpy() if len(dtypes) == 1 and next(iter(dtypes)) == np.float64 else None
        return cls(columns, array, frame)


@lru_cache(maxsize=256)
def _column_index(columns: tuple[str, ...]) -> Any:
    """One immutable object-dtype column Index per column tuple: building it per request is the
    costly part of a small DataFrame (and scikit-learn checks plain-object names faster)."""
    import pandas as pd

    return pd.Index(list(columns), dtype=object)


def to_rows(inputs: Inputs, features: tuple[Feature, ...] | None, field: str) -> Rows:
    """The request's rows with the model's columns in order; errors name the column."""
    import pandas as pd

    if features is None:
        if inputs.columns is None:
            frame = pd.DataFrame(inputs.rows)
        elif inputs.values is not None:
            frame = pd.DataFrame(inputs.values, columns=inputs.columns)
        else:
            frame = pd.DataFrame(inputs.rows, columns=inputs.columns)
        for column in frame.columns:
            if frame[column].dtype.kind == "f" and np.isinf(frame[column].to_numpy()).any():
                raise RequestError(field, f"column {column!r} holds an infinite number; send finite numbers "
                                   "(NaN for a missing value)")
        return Rows.of_frame(frame)
    names = tuple(f.name for f in features)
    if inputs.columns is None:
        width = len(inputs.rows[0]) if inputs.rows else 0
        if width != len(names):
            raise RequestError(f"{field}[0]", f"expected {len(names)} values per row ({', '.join(names)}), got {width}")
        rows = inputs.rows
        columns = list(names)
        values = None
    else:
        missing = [n for n in names if n not in inputs.columns]
        if missing:
            raise RequestError(f"{field}", f"missing feature {missing[0]!r}; the model expects " + ", ".join(names))
        rows, columns, values = inputs.rows, inputs.columns, inputs.values
    array = _numeric_array(rows, columns, values, names, features)
    if array is not None:
        if np.isinf(array).any():
            _refuse_infinite(array, rows, columns, values, names, field)
        return Rows(names, array, types=_plan(features)[1])
    return Rows.of_frame(_checked_frame(rows, columns, values, names, features, field))


_Plan = tuple[bool, tuple[str, ...], list[int]]
_PLANS: dict[int, tuple[tuple[Feature, ...], _Plan]] = {}


def _plan(features: tuple[Feature, ...]) -> _Plan:
    """Per model input list, once: whether every feature is numeric, their types, and the positions
    of the integer ones (the request path asks this of every request). Found by the tuple's
    identity: a served version keeps one tuple, and hashing ten dataclasses costs more than this."""
    found = _PLANS.get(id(features))
    if found is not None and found[0] is features:
        return found[1]
    types = tuple(f.type for f in features)
    plan = (all(t in NUMERIC_TYPES for t in types), types, [j for j, t in enumerate(types) if t in INTEGER_TYPES])
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[id(features)] = (features, plan)  # the tuple is held, so its id is not reused meanwhile
    return plan


def _numeric_array(rows: list[list[Any]] | None, columns: list[str], values: dict[str, list[Any]] | None,
                   names: tuple[str, ...], features: tuple[Feature, ...]) -> np.ndarray | None:
    """The (n, k) float64 matrix in model order, or None when a slower, checked path is needed.

    Every feature numeric (double, long, boolean): rows, columns or named columns in any order are
    cast to float, as a model's numeric input always was. Columnar input with integer features is
    the gateway's enriched request (the online store's longs next to the key), so it must not fall
    back to pandas: that path cost ~1.2 ms a request (8 µs as a matrix) and heavier log flushes.
    """
    numeric, _, integers = _plan(features)
    if not numeric:
        return None
    source: Any
    if values is not None:
        source = [values[n] for n in names]
    elif list(columns) == list(names):
        source = rows
    else:
        order = [columns.index(n) for n in names]
        source = [[row[i] for i in order] for row in rows or []]
    try:
        array = np.asarray(source, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.ndim != 2:
        return None
    array = array.T.copy() if values is not None else array
    if integers and array.size and np.nanmax(np.abs(array[:, integers]), initial=0.0) > EXACT_INTEGERS:
        return None  # a long past 2**53 would lose digits as a float: the checked path keeps it whole
    return array


def _refuse_infinite(array: np.ndarray, rows: list[list[Any]] | None, columns: list[str],
                     values: dict[str, list[Any]] | None, names: tuple[str, ...], field: str) -> None:
    """Name the first infinite value: "Infinity", "-inf", "1e999" parse as numbers no model takes."""
    r, c = (int(i[0]) for i in np.nonzero(np.isinf(array)))
    name = names[c]
    given = values[name][r] if values is not None else rows[r][list(columns).index(name)] if rows else None
    raise RequestError(field, f"feature {name!r} expects a finite number, got {given!r} (row {r}); "
                       "send NaN or null for a missing value")


def _checked_frame(rows: list[list[Any]] | None, columns: list[str], values: dict[str, list[Any]] | None,
                   names: tuple[str, ...], features: tuple[Feature, ...], field: str) -> Any:
    """The DataFrame of mixed or non-numeric input, each column checked against its feature type."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns) if values is None else pd.DataFrame(values, columns=columns)
    frame = frame[list(names)]
    for f in features:
        if f.type in NUMERIC_TYPES:
            col = frame[f.name]
            if not pd.api.types.is_numeric_dtype(col.dtype) or col.dtype == object:
                try:
                    frame[f.name] = pd.to_numeric(col, errors="raise")
                except (ValueError, TypeError, OverflowError):
                    bad = next((v for v in col if not isinstance(v, int | float | bool) and v is not None), None)
                    raise RequestError(f"{field}", f"feature {f.name!r} expects a number ({f.type}), got {bad!r}") from None
            numbers = frame[f.name].to_numpy()
            if numbers.dtype.kind == "f" and np.isinf(numbers).any():
                r = int(np.flatnonzero(np.isinf(numbers))[0])
                raise RequestError(field, f"feature {f.name!r} expects a finite number, got {col.iloc[r]!r} "
                                   f"(row {r}); send NaN or null for a missing value")
        elif f.type == "string":
            bad = next((v for v in frame[f.name] if not isinstance(v, str) and not _missing(v)), _OK)
            if bad is not _OK:
                raise RequestError(field, f"feature {f.name!r} expects a string, got {bad!r}")
    return frame


_OK = object()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def jsonable(array: np.ndarray) -> Any:
    """Predictions as JSON-ready values (numpy numeric arrays pass through orjson directly)."""
    if array.dtype.kind in "fiub":
        return array
    if array.dtype.kind == "U":  # class labels picked from the classes array: already strings
        return array.tolist()
    return [v if isinstance(v, str | int | float | bool) or v is None else str(v) for v in array.tolist()]


def missing_column(rows: Rows) -> str | None:
    """The first column holding a missing value (NaN or None), if any."""
    if rows.array is not None:
        bad = np.isnan(rows.array).any(axis=0)
        return rows.columns[int(np.flatnonzero(bad)[0])] if bad.any() else None
    frame = rows.frame
    for column in frame.columns:
        if frame[column].isna().any():
            return str(column)
    return None
