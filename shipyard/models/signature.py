"""Model signatures: the input and output schema captured from a sample, enforced at predict.

A signature is a list of input columns (name, type) and an output description. Types are a small
portable vocabulary: ``double``, ``long``, ``boolean``, ``string``, ``datetime``. At predict time
``enforce`` checks a frame against the inputs and returns a pandas DataFrame with exactly those
columns in signature order: a missing column or a value of the wrong type is an InputError naming
the column; integers are accepted for ``double`` columns; extra columns are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InputError

TYPES = ("double", "long", "boolean", "string", "datetime")
_COMPATIBLE = {"double": {"double", "long", "boolean"}, "long": {"long", "boolean"}, "boolean": {"boolean"},
               "string": {"string"}, "datetime": {"datetime"}}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class Signature:
    """Inputs (ordered columns) and outputs (prediction type, classes for a classifier)."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()
    classes: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
            "classes": None if self.classes is None else list(self.classes),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Signature | None:
        if not doc:
            return None
        try:
            inputs = tuple(ColumnSpec(c["name"], c["type"], bool(c.get("nullable", True))) for c in doc["inputs"])
            outputs = tuple(ColumnSpec(c["name"], c["type"], bool(c.get("nullable", True)))
                            for c in doc.get("outputs") or [])
        except (KeyError, TypeError) as exc:
            raise InputError(f"model signature is malformed: missing {exc}") from exc
        classes = doc.get("classes")
        return cls(inputs, outputs, tuple(classes) if classes is not None else None)

    def enforce(self, frame: Any) -> Any:
        """Check ``frame`` against the inputs; return a pandas DataFrame of exactly those columns."""
        df = to_pandas(frame)
        missing = [c.name for c in self.inputs if c.name not in df.columns]
        if missing:
            raise InputError(
                f"input is missing column {missing[0]!r}" + (f" (and {len(missing) - 1} more: {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""),
                hint="the model expects columns: " + ", ".join(f"{c.name} ({c.type})" for c in self.inputs),
            )
        for spec in self.inputs:
            got = column_type(df[spec.name])
            if got == "null":
                if not spec.nullable:
                    raise InputError(f"column {spec.name!r} is empty but the model needs a {spec.type} value")
                continue
            if got not in _COMPATIBLE[spec.type]:
                raise InputError(f"column {spec.name!r}: expected {spec.type}, got {got}",
                                 hint=f"send {spec.name} as {_EXAMPLES[spec.type]}")
            if not spec.nullable and df[spec.name].isna().any():
                raise InputError(f"column {spec.name!r} has missing values but the model needs a {spec.type} in every row")
        out = df[self.columns]
        casts = {c.name: "float64" for c in self.inputs
                 if c.type == "double" and column_type(df[c.name]) in ("long", "boolean", "null")}
        return out.astype(casts) if casts else out

    def compatible_with(self, older: Signature) -> list[str]:
        """Why a caller of ``older`` could not call a model with this signature (empty: compatible)."""
        problems = []
        sent = {c.name: c for c in older.inputs}
        for col in self.inputs:
            prior = sent.get(col.name)
            if prior is None:
                problems.append(f"needs column {col.name!r} that callers of the champion do not send")
            elif prior.type not in _COMPATIBLE[col.type]:
                problems.append(f"column {col.name!r} changed type {prior.type} -> {col.type}")
        mine = {c.name: c.type for c in self.outputs}
        for out in older.outputs:
            if out.name in mine and mine[out.name] != out.type:
                problems.append(f"output {out.name!r} changed type {out.type} -> {mine[out.name]}")
        if older.classes is not None and self.classes is not None and set(map(str, older.classes)) - set(map(str, self.classes)):
            lost = sorted(set(map(str, older.classes)) - set(map(str, self.classes)))
            problems.append("no longer predicts class(es) " + ", ".join(lost))
        return problems


_EXAMPLES = {"double": "a number", "long": "an integer", "boolean": "true or false", "string": "text",
             "datetime": "an ISO timestamp"}


def to_pandas(frame: Any) -> Any:
    """A pandas DataFrame from pandas, polars, a dict of columns or a list of row dicts."""
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(frame, "to_pandas") and type(frame).__module__.startswith("polars"):
        return frame.to_pandas()
    if isinstance(frame, dict):
        try:
            return pd.DataFrame(frame)
        except ValueError:
            return pd.DataFrame([frame])
    if isinstance(frame, list) and all(isinstance(r, dict) for r in frame):
        return pd.DataFrame(frame)
    raise InputError(f"cannot read model input of type {type(frame).__name__}",
                     hint="pass a pandas or polars DataFrame, a dict of columns or a list of row dicts")


INTEGER_TYPES = frozenset({"long", "integer", "int"})
TYPED_IN_FRAMES = INTEGER_TYPES | {"boolean"}  # what a float matrix turns into floats, and typed_frame restores
NUMERIC_TYPES = TYPED_IN_FRAMES | {"double", "float"}
EXACT_INTEGERS = 2.0 ** 53  # whole numbers a float64 holds exactly


def typed_frame(array: Any, columns: Any, types: Any) -> Any:
    """A float64 matrix (the gateway's numeric fast path) as a DataFrame of ``columns`` whose integer
    and boolean columns get their type back, as pandas builds them from the request's values: a
    column of whole numbers (0 and 1 for a boolean) becomes int64 (bool); one with a missing value
    stays float64, as ints with a None do. ``columns`` may be a pandas Index (kept as given)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(array, columns=columns, copy=False)
    for j, kind in enumerate(types):
        if kind not in TYPED_IN_FRAMES:
            continue
        values = array[:, j]
        if np.isfinite(values).all() and fits_type(values, kind, missing=False):
            frame[frame.columns[j]] = values.astype(bool if kind == "boolean" else np.int64)
    return frame


def fits_type(values: Any, kind: str, *, missing: bool) -> bool:
    """Whether every float in ``values`` (any shape) is what a ``kind`` column holds: 0 or 1 for a
    boolean, a whole number for an integer type; NaN too when ``missing``."""
    import numpy as np

    fits = (values == 0) | (values == 1) if kind == "boolean" else values == np.trunc(values)
    if missing:
        fits |= np.isnan(values)
    return bool(fits.all())


def column_type(series: Any) -> str:
    """The signature type of a pandas Series (``null`` when it holds no value at all)."""
    import pandas as pd
    from pandas.api import types as ptypes

    kind = series.dtype
    if ptypes.is_bool_dtype(kind):
        return "boolean"
    if ptypes.is_integer_dtype(kind):
        return "long"
    if ptypes.is_float_dtype(kind):
        return "null" if len(series) and series.isna().all() else "double"
    if ptypes.is_datetime64_any_dtype(kind):
        return "datetime"
    if isinstance(kind, pd.CategoricalDtype) or ptypes.is_string_dtype(kind) or ptypes.is_object_dtype(kind):
        values = series.dropna()
        if values.empty:
            return "null"
        kinds = {_py_type(v) for v in values.head(1000)}
        if len(kinds) == 1:
            return kinds.pop()
        if kinds <= {"long", "double"}:
            return "double"
        return "mixed (" + ", ".join(sorted(kinds)) + ")"
    return str(kind)


def _py_type(value: Any) -> str:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | np.integer):
        return "long"
    if isinstance(value, float | np.floating):
        return "double"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def infer_signature(sample: Any, predictions: Any = None, classes: Any = None) -> Signature:
    """Capture a signature from a sample of inputs (and, optionally, the model's predictions on it)."""
    df = to_pandas(sample)
    if df.empty and not len(df.columns):
        raise InputError("cannot capture a signature from an empty sample")
    inputs = []
    for name in df.columns:
        kind = column_type(df[name])
        if kind == "null":
            kind = "double"
        if kind not in TYPES:
            raise InputError(f"column {name!r} has values of type {kind}, which a signature cannot describe",
                             hint="cast it to one type (number, integer, boolean, text or timestamp) before registering")
        inputs.append(ColumnSpec(str(name), kind, nullable=True))
    outputs: tuple[ColumnSpec, ...] = ()
    if predictions is not None:
        import pandas as pd

        outputs = (ColumnSpec("prediction", column_type(pd.Series(list(predictions[:1000])))),)
    return Signature(tuple(inputs), outputs, tuple(_plain(c) for c in classes) if classes is not None else None)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# MLflow's column types -> ours (MLflow's ``float``/``integer`` are narrower numbers of the same kind).
_MLFLOW_TYPES = {"double": "double", "float": "double", "long": "long", "integer": "long", "boolean": "boolean",
                 "string": "string", "datetime": "datetime"}
_NUMPY_KINDS = {"f": "double", "i": "long", "u": "long", "b": "boolean", "U": "string", "O": "string", "M": "datetime"}


def from_mlflow(doc: dict[str, Any] | None) -> Signature | None:
    """Our signature from an MLmodel file's ``signature`` (its ``inputs``/``outputs`` are JSON text).

    Named columns map type by type; MLflow's ``required`` is about a column being present, not
    about missing values, so every column stays nullable as in MLflow. A tensor-based input, an
    unnamed column or a type we cannot describe (``binary``, arrays, objects) gives None: the
    version then has no signature, as one registered without ``model.train``.
    """
    import json

    if not doc or not doc.get("inputs"):
        return None
    try:
        inputs = json.loads(doc["inputs"]) if isinstance(doc["inputs"], str) else doc["inputs"]
        raw_out = doc.get("outputs")
        outputs = (json.loads(raw_out) if isinstance(raw_out, str) else raw_out) or []
    except (TypeError, ValueError) as exc:
        raise InputError(f"MLmodel signature is not valid JSON: {exc}") from exc
    columns = []
    for spec in inputs:
        kind = _MLFLOW_TYPES.get(spec.get("type")) if isinstance(spec, dict) else None
        if kind is None or not spec.get("name"):
            return None
        columns.append(ColumnSpec(str(spec["name"]), kind, nullable=True))
    return Signature(tuple(columns), tuple(_mlflow_output(o) for o in outputs[:1] if isinstance(o, dict)))


def _mlflow_output(spec: dict[str, Any]) -> ColumnSpec:
    if spec.get("type") == "tensor":
        import numpy as np

        try:
            kind = _NUMPY_KINDS.get(np.dtype(spec.get("tensor-spec", {}).get("dtype", "float64")).kind, "double")
        except TypeError:
            kind = "double"
        return ColumnSpec("prediction", kind)
    return ColumnSpec(str(spec.get("name") or "prediction"), _MLFLOW_TYPES.get(spec.get("type"), "string"))
