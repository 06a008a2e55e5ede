"""Table schemas in YAML: the model, loading with file:line errors, and tolerant inference.

```yaml
columns:
  species: {dtype: string, nullable: false, allowed: [Adelie, Chinstrap, Gentoo]}
  bill_length_mm: {dtype: float, min: 25, max: 70}
  email: {dtype: string, regex: '[^@]+@[^@]+', unique: true, max_length: 200, pii: true}
table:
  rows: {min: 300, max: 100000}
  unique: [id]            # key columns whose combination must be unique
  strict: false           # false: extra columns allowed; true: exactly these; ordered: and in this order
```

Dtypes: ``int``, ``float`` (ints are accepted too), ``string``, ``bool``, ``date``, ``datetime``.
``infer_schema`` is tolerant on purpose: ranges come from the 0.1 % and 99.9 % quantiles widened by
a margin, not the observed min/max, and ``allowed`` is written only for small domains.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

DTYPES = ("int", "float", "string", "bool", "date", "datetime")
MAX_DOMAIN = 20          # infer ``allowed`` only when a text column has at most this many values
DOMAIN_MAX_SHARE = 0.5   # ... and they are few compared with the rows
RANGE_MARGIN = 0.1       # widen inferred ranges by this share of the inner quantile range


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSchema(Strict):
    dtype: Literal["int", "float", "string", "bool", "date", "datetime"] | None = None
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    regex: str | None = None
    unique: bool = False
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    pii: bool = False  # acknowledged personal data: --pii does not flag it

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _ranges(self) -> ColumnSchema:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is greater than max_length ({self.max_length})")
        return self


class RowRange(Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class TableSchema(Strict):
    rows: RowRange = Field(default_factory=RowRange)
    unique: list[str] = Field(default_factory=list)
    strict: bool | Literal["ordered"] = False


class Schema(Strict):
    columns: dict[str, ColumnSchema]
    table: TableSchema = Field(default_factory=TableSchema)

    @model_validator(mode="after")
    def _keys_exist(self) -> Schema:
        unknown = [c for c in self.table.unique if c not in self.columns]
        if unknown:
            raise ValueError(f"table.unique names columns the schema does not define: {', '.join(unknown)}")
        return self

    def to_yaml(self, header: str | None = None) -> str:
        """YAML with one flow mapping per column (compact, diff-friendly)."""
        import yaml

        lines = [f"# {line}" for line in (header or "").splitlines()]
        lines.append("columns:")
        for name, col in self.columns.items():
            data = col.model_dump(exclude_defaults=True)
            if "nullable" not in data:
                data = {"dtype": data.pop("dtype", None), "nullable": True, **data} if col.dtype else {"nullable": True, **data}
            else:
                data = {"dtype": data.pop("dtype", None), **data}
            data = {k: _plain(v) for k, v in data.items() if v is not None}
            body = yaml.safe_dump(data, default_flow_style=True, width=10_000, sort_keys=False).strip()
            lines.append(f"  {_yaml_key(name)}: {body}")
        table = self.table.model_dump(exclude_defaults=True)
        if table:
            lines.append("table:")
            for key, value in table.items():
                body = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
                lines.append(f"  {key}: {body}")
        return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    """Integral floats print as ints (2007, not 2007.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _yaml_key(name: str) -> str:
    import yaml

    dumped = yaml.safe_dump({name: 0}, default_flow_style=True).strip()
    return dumped[1:dumped.rindex(":")]


class LoadedSchema:
    """A schema plus where each column came from (``schema.yaml:LINE``)."""

    def __init__(self, schema: Schema, path: Path | None, lines: dict[str, str]) -> None:
        self.schema = schema
        self.path = path
        self.lines = lines

    def where(self, column: str) -> str:
        return self.lines.get(column, str(self.path) if self.path else "schema")


def load_schema(path: str | os.PathLike[str]) -> LoadedSchema:
    """Load and check a schema file; errors name ``file:line:col`` and the key."""
    from shipyard.validation_errors import explain_validation
    from shipyard.yaml_positions import load_yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: schema file not found",
                          hint=f"infer one: shipyard data infer DATA_FILE > {path}")
    loaded = load_yaml(path)
    if not isinstance(loaded.data, dict) or "columns" not in loaded.data:
        raise ConfigError(f"{loaded.where(())}: a schema needs a 'columns:' mapping",
                          hint="see docs/guide/data.md#schema, or infer one: shipyard data infer DATA_FILE")
    data = dict(loaded.data)
    if isinstance(data.get("columns"), dict):
        data["columns"] = {str(k): ({} if v is None else v) for k, v in data["columns"].items()}
    try:
        schema = Schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain_validation(exc, loaded, Schema),
                          hint="see docs/guide/data.md#schema for every key") from None
    lines = {name: loaded.where(("columns", name), at_key=True) for name in schema.columns}
    return LoadedSchema(schema, path, lines)


def dtype_name(dtype: pl.DataType) -> str:
    """The schema dtype word for a polars dtype."""
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Date:
        return "date"
    if dtype.is_temporal():
        return "datetime"
    return "string"


def _nice(x: float, down: bool, step: float) -> float:
    """Round outwards to the first significant digit of ``step`` so the YAML stays readable."""
    if not math.isfinite(x) or step <= 0:
        return x
    digits = -math.floor(math.log10(step))
    scale = 10.0 ** digits
    value = (math.floor if down else math.ceil)(round(x * scale, 6)) / scale
    return round(value, max(digits, 0))


def infer_schema(df: pl.DataFrame, *, margin: float = RANGE_MARGIN, max_domain: int = MAX_DOMAIN) -> Schema:
    """A tolerant schema for ``df`` (see the module docstring)."""
    import polars as pl

    columns: dict[str, ColumnSchema] = {}
    rows = df.height
    for name, dtype in df.schema.items():
        series = df[name]
        kind = dtype_name(dtype)
        spec: dict[str, Any] = {"dtype": kind, "nullable": series.null_count() > 0 or rows == 0}
        present = series.drop_nulls()
        if kind in ("int", "float") and present.len():
            values = present.cast(pl.Float64)
            values = values.filter(values.is_finite())
            if values.len():
                lo, hi = values.quantile(0.001, "linear"), values.quantile(0.999, "linear")
                span = (hi - lo) or max(abs(hi), 1.0)
                # never narrower than what was seen: the data a schema is inferred from passes it
                low = min(lo - margin * span, values.min())  # type: ignore[type-var]
                high = max(hi + margin * span, values.max())  # type: ignore[type-var]
                if values.min() >= 0 and low < 0:
                    low = 0.0  # a non-negative column stays non-negative
                spec["min"], spec["max"] = _nice(low, True, margin * span), _nice(high, False, margin * span)
                if kind == "int":
                    spec["min"], spec["max"] = math.floor(spec["min"]), math.ceil(spec["max"])
        elif kind == "string" and present.len():
            n_unique = present.n_unique()
            if n_unique <= max_domain and n_unique <= max(2, DOMAIN_MAX_SHARE * present.len()):
                spec["allowed"] = sorted(present.unique().to_list())
            else:
                lengths = present.str.len_chars()
                spec["max_length"] = int(max(lengths.max() * 2, 10))  # type: ignore[operator]
                if n_unique == present.len() and present.len() >= 20:
                    spec["unique"] = True
        columns[name] = ColumnSchema(**spec)
    table = TableSchema(rows=RowRange(min=1 if rows else 0))
    return Schema(columns=columns, table=table)
