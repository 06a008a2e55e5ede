"""Validate a table against a schema with polars expressions: every failed check, its count, and up
to ``EXAMPLES`` example rows.

All row-level checks are summed in one ``select`` (polars runs them in parallel over an eager
DataFrame, so no check is skipped the way a lazy plan can skip them); only failed checks pay for a
second pass that fetches their example rows. Rows are numbered from 1 (data rows; in a CSV with a
header, row N is line N + 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data.schema import ColumnSchema, LoadedSchema, Schema, dtype_name, load_schema
from shipyard.errors import ConfigError, InputError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from shipyard.data.pii import PiiFinding

EXAMPLES = 5


@dataclass
class CheckResult:
    check: str
    column: str | None
    passed: bool
    failed: int
    total: int
    message: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "column": self.column, "passed": self.passed, "failed": self.failed,
                "total": self.total, "message": self.message, "examples": self.examples, "where": self.where}


@dataclass
class ValidationReport:
    source: str
    rows: int
    checks: list[CheckResult]
    warnings: list[str] = field(default_factory=list)
    pii: list[PiiFinding] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.pii

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "passed": self.passed, "rows": self.rows,
                "checks_run": len(self.checks), "checks_failed": len(self.failures),
                "failures": [c.to_dict() for c in self.failures], "warnings": self.warnings,
                "pii": [p.to_dict() for p in self.pii]}

    def summary(self) -> str:
        if self.passed:
            return f"{self.source}: all {len(self.checks)} checks passed ({self.rows} rows)"
        parts = []
        if self.failures:
            parts.append(f"{len(self.failures)} of {len(self.checks)} checks failed")
        if self.pii:
            parts.append(f"{len(self.pii)} column(s) look like personal data")
        return f"{self.source}: " + ", ".join(parts) + f" ({self.rows} rows)"

    def rows_for_table(self) -> list[list[str]]:
        out = [[c.check, c.column or "(table)", str(c.failed), c.message, _examples_text(c.examples)]
               for c in self.failures]
        for p in self.pii:
            out.append([f"pii.{p.kind}", p.column, f"{p.share:.0%}", f"looks like {p.kind.replace('_', ' ')}s",
                        ", ".join(d for d in p.to_dict()["examples"])])
        return out

    def to_markdown(self) -> str:
        icon = "✅" if self.passed else "❌"
        lines = [f"### {icon} Data validation: {self.summary()}", ""]
        if self.failures or self.pii:
            lines += ["| check | column | failed | message | examples (row: value) |", "|---|---|---|---|---|"]
            for row in self.rows_for_table():
                lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        if self.warnings:
            lines += ["", *[f"- warning: {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"


def _examples_text(examples: list[dict[str, Any]]) -> str:
    parts = []
    for ex in examples:
        values = {k: v for k, v in ex.items() if k != "row"}
        shown = ", ".join(f"{v!r}" if len(values) == 1 else f"{k}={v!r}" for k, v in values.items())
        parts.append(f"{ex['row']}: {shown}")
    return "; ".join(parts)


_ACCEPTS = {
    "int": lambda t: t.is_integer(),
    "float": lambda t: t.is_numeric() and str(t) != "Boolean",
    "string": lambda t: str(t) == "String" or str(t).startswith(("Categorical", "Enum")),
    "bool": lambda t: str(t) == "Boolean",
    "date": lambda t: str(t) == "Date",
    "datetime": lambda t: str(t).startswith("Datetime"),
}


def _target(kind: str) -> pl.DataType:
    import polars as pl

    return {"int": pl.Int64, "float": pl.Float64, "string": pl.String, "bool": pl.Boolean,
            "date": pl.Date, "datetime": pl.Datetime}[kind]


def _parse(col: pl.Expr, kind: str) -> pl.Expr:
    """Parse text into ``kind`` (null where a value does not parse)."""
    import polars as pl

    text = col.str.strip_chars()
    if kind == "bool":
        low = text.str.to_lowercase()
        return pl.when(low.is_in(["true", "1", "yes"])).then(True).when(low.is_in(["false", "0", "no"])).then(False).otherwise(None)
    if kind == "date":
        return text.str.to_date(strict=False)
    if kind == "datetime":
        return text.str.to_datetime(strict=False)
    if kind == "int":
        as_float = text.cast(pl.Float64, strict=False)
        return pl.when(as_float == as_float.round(0)).then(as_float.cast(pl.Int64, strict=False)).otherwise(None)
    return text.cast(pl.Float64, strict=False)


def validate(frame_or_path: pl.DataFrame | str | os.PathLike[str], schema: Schema | LoadedSchema | str | os.PathLike[str],
             *, pii: bool = False, source: str | None = None) -> ValidationReport:
    """Check a DataFrame (or a data file) against a schema (object or YAML path)."""
    df, warnings, source = _read_input(frame_or_path, source)
    if isinstance(schema, LoadedSchema):
        loaded_schema = schema
    elif isinstance(schema, Schema):
        loaded_schema = LoadedSchema(schema, None, {})
    else:
        loaded_schema = load_schema(schema)
    spec = loaded_schema.schema
    checks: list[CheckResult] = []
    _table_checks(df, spec, loaded_schema, checks, source)
    if df.height == 0:
        warnings.append(f"{source}: has a header but no data rows")
    row_checks = _column_checks(df, spec, loaded_schema, checks, source)
    if row_checks:
        checks += _run_row_checks(df, row_checks, loaded_schema)
    findings = []
    if pii:
        from shipyard.data.pii import scan

        findings = scan(df, skip={n for n, c in spec.columns.items() if c.pii})
    return ValidationReport(source, df.height, checks, warnings, findings)


def _read_input(frame_or_path: Any, source: str | None) -> tuple[pl.DataFrame, list[str], str]:
    """The frame to check, the reader's warnings and the name reports give it."""
    import polars as pl

    if isinstance(frame_or_path, pl.LazyFrame):
        raise InputError("validate needs a DataFrame, not a LazyFrame",
                         hint="call .collect() first: a lazy plan can skip value checks")
    if isinstance(frame_or_path, pl.DataFrame):
        return frame_or_path, [], source or "DataFrame"
    from shipyard.data.readers import read_frame

    loaded = read_frame(frame_or_path)
    return loaded.frame, list(loaded.warnings), source or str(frame_or_path)


# A row-level check: (name, column, bad-row expression, message, columns shown in examples, quick test)
RowCheck = tuple[str, "str | None", "pl.Expr", str, list[str], "pl.Expr | None"]


def _column_checks(df: pl.DataFrame, spec: Schema, loaded_schema: LoadedSchema, checks: list[CheckResult],
                   source: str) -> list[RowCheck]:
    """Append the column-level results to ``checks``; return the row-level checks still to count."""
    import polars as pl

    row_checks: list[RowCheck] = []
    casts: dict[str, pl.Expr] = {}
    for name, col_spec in spec.columns.items():
        if name not in df.columns:
            continue
        actual = df.schema[name]
        col = pl.col(name)
        kind = col_spec.dtype
        value_ok = True
        if kind is not None and not _ACCEPTS[kind](actual):
            if actual == pl.String and kind != "string":
                parsed = _parse(col, kind)
                casts[name] = parsed
                row_checks.append(("dtype", name, col.is_not_null() & parsed.is_null(),
                                   f"expected {kind}; these values are not", [name], None))
            else:
                checks.append(CheckResult("dtype", name, False, df.height - df[name].null_count(), df.height,
                                          f"expected {kind}, the column is {dtype_name(actual)} ({actual})",
                                          _head_examples(df, name), loaded_schema.where(name)))
                value_ok = False
        else:
            checks.append(CheckResult("dtype", name, True, 0, df.height, f"is {kind or dtype_name(actual)}",
                                      where=loaded_schema.where(name)))
        missing = col.is_null()
        if actual.is_float():
            missing = missing | col.is_nan()
        if not col_spec.nullable:
            quick = col.null_count() > 0
            if actual.is_float():
                quick = quick | col.is_nan().any()
            row_checks.append(("not_null", name, missing, "null or empty values in a non-nullable column", [name], quick))
        if value_ok:
            row_checks += _value_checks(name, col_spec, casts.get(name, col), kind or dtype_name(actual), source)
    for key in [spec.table.unique] if spec.table.unique else []:
        if all(k in df.columns for k in key):
            row_checks.append(("table.unique", ",".join(key), pl.struct(key).is_duplicated(),
                               f"duplicate keys ({', '.join(key)})", list(key), None))
    return row_checks


def _run_row_checks(df: pl.DataFrame, row_checks: list[RowCheck], loaded_schema: LoadedSchema) -> list[CheckResult]:
    """Count each row-level check's failures in one pass, with examples of the failing rows."""
    import polars as pl

    try:
        counts = _count_failures(df, row_checks)
    except pl.exceptions.ComputeError as exc:
        raise ConfigError(f"{loaded_schema.path or 'schema'}: a check cannot run: {str(exc).splitlines()[0]}",
                          hint="regular expressions use Rust regex syntax (no look-around)") from exc
    results = []
    for (check, column, expr, message, shown, _), count in zip(row_checks, counts, strict=True):
        examples = _examples(df, expr, shown) if count else []
        where = loaded_schema.where(column) if column in loaded_schema.schema.columns else None
        results.append(CheckResult(check, column, count == 0, int(count), df.height, message, examples, where))
    return results


def _quick(check: str, bad: pl.Expr, spec_value: float | None, col: pl.Expr) -> pl.Expr | None:
    """A cheap aggregate that is False only when the check certainly passes (min/max first)."""
    if check == "min" and spec_value is not None:
        return (col.min() < spec_value).fill_null(False)
    if check == "max" and spec_value is not None:
        return (col.max() > spec_value).fill_null(False)
    return None


def _count_failures(df: pl.DataFrame, row_checks: list) -> list[int]:
    """Failed-row counts: range checks first as min/max aggregates (one pass, no masks), then a
    masked count only for the checks that can fail; everything in as few ``select`` calls as possible."""
    quick = [(i, q) for i, (_, _, _, _, _, q) in enumerate(row_checks) if q is not None]
    maybe = set(range(len(row_checks))) - {i for i, _ in quick}
    if quick:
        flags = df.select([q.alias(str(i)) for i, q in quick]).row(0)
        maybe |= {i for (i, _), flag in zip(quick, flags, strict=True) if flag}
    counts = [0] * len(row_checks)
    todo = sorted(maybe)
    if todo:
        values = df.select([row_checks[i][2].fill_null(False).sum().alias(str(i)) for i in todo]).row(0)
        for i, v in zip(todo, values, strict=True):
            counts[i] = int(v)
    return counts


def _value_checks(name: str, spec: ColumnSchema, col: pl.Expr, kind: str, source: str) -> list[tuple]:
    checks = _value_checks_plain(name, spec, col, kind)
    limits = {"min": spec.min, "max": spec.max}
    return [(c, n, bad, msg, shown, _quick(c, bad, limits.get(c), col)) for c, n, bad, msg, shown in checks]


def _value_checks_plain(name: str, spec: ColumnSchema, col: pl.Expr, kind: str) -> list[tuple[str, str, pl.Expr, str, list[str]]]:
    import polars as pl

    out: list[tuple[str, str, pl.Expr, str, list[str]]] = []
    numeric = kind in ("int", "float")
    if spec.min is not None and numeric:
        out.append(("min", name, col < spec.min, f"values below the minimum {spec.min:g}", [name]))
    if spec.max is not None and numeric:
        out.append(("max", name, col > spec.max, f"values above the maximum {spec.max:g}", [name]))
    if spec.allowed is not None:
        allowed = [str(v) for v in spec.allowed] if kind == "string" else spec.allowed
        target = col.cast(pl.String) if kind == "string" else col
        shown = ", ".join(map(str, allowed[:10])) + (" ..." if len(allowed) > 10 else "")
        out.append(("allowed", name, target.is_not_null() & ~target.is_in(allowed),
                    f"values outside the allowed set [{shown}]", [name]))
    if spec.regex is not None:
        text = col.cast(pl.String)
        out.append(("regex", name, text.is_not_null() & ~text.str.contains(f"^(?:{spec.regex})$"),
                    f"values not matching /{spec.regex}/", [name]))
    if spec.unique:
        out.append(("unique", name, col.is_not_null() & col.is_duplicated(), "duplicate values in a unique column", [name]))
    if spec.min_length is not None or spec.max_length is not None:
        length = col.cast(pl.String).str.len_chars()
        if spec.min_length is not None:
            out.append(("min_length", name, length < spec.min_length, f"strings shorter than {spec.min_length}", [name]))
        if spec.max_length is not None:
            out.append(("max_length", name, length > spec.max_length, f"strings longer than {spec.max_length}", [name]))
    return out


def _examples(df: pl.DataFrame, bad: pl.Expr, shown: list[str]) -> list[dict[str, Any]]:

    hits = df.with_row_index("__row", offset=1).filter(bad.fill_null(False)).head(EXAMPLES).select(["__row", *shown])
    return [{"row": r["__row"], **{k: _jsonable(r[k]) for k in shown}} for r in hits.iter_rows(named=True)] if hits.height else []


def _head_examples(df: pl.DataFrame, name: str) -> list[dict[str, Any]]:
    hits = df.with_row_index("__row", offset=1).filter(df[name].is_not_null()).head(EXAMPLES)
    return [{"row": r["__row"], name: _jsonable(r[name])} for r in hits.iter_rows(named=True)]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return "NaN"
    if v is None or isinstance(v, (int, float, str, bool)):
        return v
    return str(v)


def _table_checks(df: pl.DataFrame, spec: Schema, loaded: LoadedSchema, checks: list[CheckResult], source: str) -> None:
    present = list(df.columns)
    for name in spec.columns:
        if name not in present:
            hint = did_you_mean(name, present)
            checks.append(CheckResult("column.present", name, False, 1, 1,
                                      f"column {name!r} (declared at {loaded.where(name)}) is missing from {source}"
                                      + (f"; {hint}" if hint else f"; columns are: {', '.join(present)}"),
                                      where=loaded.where(name)))
        else:
            checks.append(CheckResult("column.present", name, True, 0, 1, "present", where=loaded.where(name)))
    strict = spec.table.strict
    if strict:
        extra = [c for c in present if c not in spec.columns]
        checks.append(CheckResult("table.columns", None, not extra, len(extra), len(present),
                                  f"columns not in the schema: {', '.join(extra)}" if extra else "no extra columns"))
    if strict == "ordered":
        expected = [c for c in spec.columns if c in present]
        actual = [c for c in present if c in spec.columns]
        checks.append(CheckResult("table.order", None, expected == actual, int(expected != actual), 1,
                                  f"column order is {actual}, the schema says {expected}" if expected != actual
                                  else "columns in schema order"))
    rows = df.height
    lo = spec.table.rows.min
    hi = spec.table.rows.max
    if lo is None and hi is None:
        lo = 1  # an empty table never passes silently; say rows: {min: 0} to allow it
    ok = (lo is None or rows >= lo) and (hi is None or rows <= hi)
    want = f"{lo if lo is not None else 0}..{hi if hi is not None else 'any'}"
    checks.append(CheckResult("table.rows", None, ok, 0 if ok else 1, 1,
                              f"{rows} rows, expected {want}" if not ok else f"{rows} rows"))


def validate_path(path: str | os.PathLike[str], schema_path: str | os.PathLike[str], *, pii: bool = False) -> ValidationReport:
    """Convenience wrapper for the CLI: names the file as given."""
    return validate(Path(path), schema_path, pii=pii, source=str(path))
