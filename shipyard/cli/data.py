"""``shipyard data``: dataset versions, schema inference and validation, profiles, drift, lineage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.cli import output
from shipyard.cli.output import print_json
from shipyard.errors import CheckFailed, InputError, UsageError

if TYPE_CHECKING:
    from shipyard.data.profile import Profile
    from shipyard.workspace import Workspace

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Version, validate, profile and compare datasets.")

JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def echo(message: str = "", *, err: bool = False) -> None:
    """Print data-derived text literally (values like [a, b] are not rich markup)."""
    from rich.markup import escape

    output.echo(escape(message), err=err)


def table(columns: list[str], rows, title: str | None = None) -> None:  # type: ignore[no-untyped-def]
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    if not output.plain():
        from rich.markup import escape

        rows = [[escape(v) for v in row] for row in rows]
    output.table(columns, rows, title=title)


def _ws() -> Workspace:
    from shipyard.workspace import Workspace

    return Workspace.discover()


def _one_format(json_out: bool, md: bool, html: bool = False) -> None:
    if sum([json_out, md, html]) > 1:
        raise UsageError("choose one of --json, --md" + (", --html" if html else ""))


def _warn(lines: list[str]) -> None:
    for line in lines:
        echo(f"warning: {line}", err=True)


@app.command()
def add(
    path: Path = typer.Argument(..., help="A CSV, Parquet or JSON Lines file, or a folder of them."),
    name: str | None = typer.Option(None, "--name", "-n", help="Dataset name (default: the file's stem)."),
    json_out: bool = JSON,
) -> None:
    """Version a dataset: content hash, rows, columns, inferred schema and a reference profile.

    Adding unchanged content again keeps the existing version.

    Example: shipyard data add data/raw.csv --name penguins
    """
    from shipyard.data.versions import add_dataset

    ws = _ws()
    rel = ws.project.relative(os.path.relpath(path.resolve(), ws.project.root.resolve())) if path.is_absolute() or Path.cwd() != ws.project.root else ws.project.relative(path)
    added = add_dataset(ws.store, ws.objects, ws.hasher, rel, name=name)
    v = added.version
    if json_out:
        print_json({**v.to_dict(), "created": added.created})
        return
    _warn(added.warnings)
    if added.created:
        echo(f"added {v.ref}: {rel} ({v.rows} rows, {len(v.column_list())} columns, {v.oid})")
    else:
        echo(f"unchanged: {rel} is already {v.ref} ({v.oid})")


@app.command("list")
def list_(name: str | None = typer.Argument(None, help="Only versions of this dataset."), json_out: bool = JSON) -> None:
    """List dataset versions.

    Example: shipyard data list penguins
    """
    from shipyard.store.datasets import list_versions

    with _ws().store.read() as session:
        rows = list_versions(session, name)
        if json_out:
            print_json([r.to_dict() for r in rows])
            return
        table(["dataset", "path", "rows", "columns", "classified", "oid", "created"],
              [(r.ref, r.path, r.rows, len(r.column_list()),
                _classes_text(r.classification()),
                r.oid[:22], r.created_at.isoformat(timespec="seconds")) for r in rows])


@app.command()
def show(ref: str = typer.Argument(..., help="NAME@VERSION (or NAME for the newest)."), json_out: bool = JSON) -> None:
    """Show a dataset version: columns, schema and profile summary.

    Example: shipyard data show penguins@1
    """
    from shipyard.data.versions import load_profile
    from shipyard.store.datasets import get_version

    ws = _ws()
    with ws.store.read() as session:
        v = get_version(session, ref)
    profile = load_profile(ws.objects, v)
    if json_out:
        print_json({**v.to_dict(), "schema": v.schema, "profile": _profile_summary(profile)})
        return
    echo(f"{v.ref}  {v.path}  {v.rows} rows  {v.oid}")
    echo(f"created {v.created_at.isoformat(timespec='seconds')} by {v.user or '?'}")
    for label, columns in v.classification().items():
        echo(f"columns classified {label}: {', '.join(columns)}")
    _print_profile(profile)
    echo("")
    echo("inferred schema:")
    typer.echo(v.schema.rstrip())


def _profile_summary(profile: Profile) -> list[dict[str, object]]:
    from shipyard.data.profile import NumericColumn

    out = []
    for name, col in profile.columns.items():
        row: dict[str, object] = {"column": name, "kind": col.kind, "dtype": col.dtype,
                                  "null_rate": round(col.null_rate, 4), "count": col.count}
        if isinstance(col, NumericColumn):
            row.update(mean=col.mean, std=col.std, min=col.min, p50=col.quantile(0.5), max=col.max)
        else:
            row.update(n_unique=col.n_unique, top=list(col.top.items())[:5])
        out.append(row)
    return out


def _print_profile(profile: Profile) -> None:
    rows = []
    for r in _profile_summary(profile):
        if r["kind"] == "numeric":
            detail = (f"mean {r['mean']:.4g} std {r['std']:.4g} min {r['min']:.4g} "
                      f"median {r['p50']:.4g} max {r['max']:.4g}") if r["count"] else "no values"
        else:
            detail = f"{r['n_unique']} distinct; top " + ", ".join(f"{k} ({v})" for k, v in r["top"])  # type: ignore[union-attr]
        rows.append((r["column"], r["dtype"], f"{r['null_rate']:.1%}", detail))
    table(["column", "dtype", "nulls", "distribution"], rows)
    _warn(profile.warnings)


@app.command()
def diff(a: str = typer.Argument(..., help="NAME@V1"), b: str = typer.Argument(..., help="NAME@V2"),
         json_out: bool = JSON) -> None:
    """Compare two dataset versions: schema changes, row counts, per-column distribution shift.

    Example: shipyard data diff penguins@1 penguins@2
    """
    from shipyard.data.versions import diff_versions
    from shipyard.store.datasets import get_version

    ws = _ws()
    with ws.store.read() as session:
        va, vb = get_version(session, a), get_version(session, b)
    result = diff_versions(ws.objects, va, vb)
    if json_out:
        print_json(result)
        return
    rows = result["rows"]
    echo(f"{result['from']} -> {result['to']}: rows {rows['from']} -> {rows['to']} ({rows['change']:+d})"
         + ("  (same content)" if result["same_content"] else ""))
    if result["schema_changes"]:
        table(["column", "change", "from", "to"],
              [(c["column"], c["change"], c["from"], c["to"]) for c in result["schema_changes"]], title="schema changes")
    else:
        echo("schema: no column added, removed or retyped")
    table(["column", "statistic", "value", "threshold", "verdict"],
          [(c["column"], c["statistic"], c["value"], c["threshold"], c["verdict"]) for c in result["columns"]],
          title="distribution shift")


@app.command()
def infer(path: Path = typer.Argument(..., help="A data file or folder."),
          margin: float = typer.Option(0.1, help="Widen ranges by this share of the 0.1-99.9 % quantile range."),
          max_domain: int = typer.Option(20, help="Write 'allowed' only for text columns with at most this many values.")) -> None:
    """Print a tolerant schema for a data file (ranges from quantiles with a margin).

    Example: shipyard data infer data/raw.csv > data/schema.yaml
    """
    from shipyard.data.readers import read_frame
    from shipyard.data.schema import infer_schema

    loaded = read_frame(path)
    _warn(loaded.warnings)
    if loaded.frame.height == 0:
        raise InputError(f"{path}: has a header but no data rows", hint="a schema is inferred from at least one row")
    schema = infer_schema(loaded.frame, margin=margin, max_domain=max_domain)
    typer.echo(schema.to_yaml(f"Schema of {path} inferred by shipyard data infer ({loaded.frame.height} rows).\n"
                              "Review the ranges and allowed values before you commit it."), nl=False)


@app.command()
def validate(
    path: Path = typer.Argument(..., help="A data file or folder."),
    schema: Path = typer.Option(..., "--schema", "-s", help="The schema YAML."),
    pii: bool = typer.Option(False, "--pii", help="Also flag columns that look like e-mails, phones or card numbers."),
    json_out: bool = JSON,
    md: bool = typer.Option(False, "--md", help="Print a Markdown report (for a pull-request comment)."),
) -> None:
    """Check a data file against a schema. Exit 0 if every check passes, 1 if any fails.

    Every failed check is listed with its count and up to 5 example rows.

    Example: shipyard data validate data/raw.csv --schema data/schema.yaml
    """
    from shipyard.data.validate import validate_path

    _one_format(json_out, md)
    report = validate_path(path, schema, pii=pii)
    _record_classes(path, schema, [p.column for p in report.pii])
    if json_out:
        print_json(report.to_dict())
    elif md:
        typer.echo(report.to_markdown(), nl=False)
    else:
        _warn(report.warnings)
        if not report.passed:
            table(["check", "column", "failed", "message", "examples (row: value)"], report.rows_for_table())
        echo(report.summary())
    if not report.passed:
        raise CheckFailed(report.summary(), hint="fix the data, or the schema if the data is right")


def _classes_text(classes: dict[str, list[str]]) -> str:
    """``pii: email, phone; confidential: salary``."""
    return "; ".join(f"{label}: {', '.join(columns)}" for label, columns in classes.items())


def _record_classes(path: Path, schema: Path, pii_columns: list[str]) -> None:
    """Store what the validation classified with the dataset versions of this content, if any
    (they follow lineage to runs and models: docs/guide/security.md)."""
    from shipyard.data.versions import record_classified, validation_classes
    from shipyard.errors import ShipyardError

    classes = validation_classes(schema, pii_columns)
    if not classes:
        return
    try:
        ws = _ws()
        rel = ws.project.relative(os.path.relpath(path.resolve(), ws.project.root.resolve()))
    except ShipyardError:
        return   # outside a project, or a file outside it: no dataset version to classify
    for ref in record_classified(ws.store, ws.hasher, rel, classes):
        echo(f"{ref}: columns classified {_classes_text(classes)}", err=True)


@app.command()
def profile(
    path: Path = typer.Argument(..., help="A data file or folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the full profile JSON here."),
    json_out: bool = JSON,
) -> None:
    """Profile a data file in a stream: per column nulls, mean, std, quantiles or top values.

    Example: shipyard data profile data/raw.csv --out reference.json
    """
    from shipyard.data.profile import profile_path

    prof = profile_path(path, calibrate=out is not None)
    if out is not None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(prof.to_json())
        os.replace(tmp, out)
    if json_out:
        print_json({"rows": prof.rows, "columns": _profile_summary(prof), "warnings": prof.warnings})
        return
    echo(f"{path}: {prof.rows} rows, {len(prof.columns)} columns")
    _print_profile(prof)
    if out is not None:
        echo(f"profile written to {out}")


def _reference(ref: str) -> tuple[Profile, str]:
    """A reference profile from NAME@V, a profile JSON file, or a data file."""
    from shipyard.data.profile import Profile, profile_path

    candidate = Path(ref)
    if candidate.exists():
        if candidate.suffix.lower() == ".json":
            return Profile.from_json(candidate.read_bytes()), str(candidate)
        return profile_path(candidate, calibrate=True), str(candidate)
    if "@" not in ref and "/" in ref:
        raise InputError(f"{ref}: no such file", hint="give NAME@VERSION, a profile .json or a data file")
    from shipyard.data.versions import load_profile
    from shipyard.store.datasets import get_version

    ws = _ws()
    with ws.store.read() as session:
        version = get_version(session, ref)
    return load_profile(ws.objects, version), version.ref


@app.command()
def drift(
    reference: str = typer.Option(..., "--reference", "-r", help="NAME@VERSION, a profile .json, or a data file."),
    current: Path = typer.Option(..., "--current", "-c", help="The current data file or folder."),
    thresholds: str = typer.Option("auto", help="auto (max of effect size and calibrated), effect, or calibrated."),
    drift_share: float = typer.Option(0.5, help="Dataset drift when at least this share of columns drifted."),
    multivariate: str = typer.Option("pca", help="pca, classifier (needs scikit-learn), all, or none."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 1 when the dataset drifted."),
    json_out: bool = JSON,
    md: bool = typer.Option(False, "--md", help="Print a Markdown report."),
    html: bool = typer.Option(False, "--html", help="Print a standalone HTML report (redirect it to a file)."),
) -> None:
    """Compare current data with a reference profile: per-column drift, drift share, multivariate.

    Example: shipyard data drift --reference penguins@1 --current data/new.csv --html > drift.html
    """
    from shipyard.data.drift import compare
    from shipyard.data.readers import read_frame

    _one_format(json_out, md, html)
    if multivariate not in ("pca", "classifier", "all", "none"):
        raise UsageError(f"--multivariate {multivariate!r} is not one of pca, classifier, all, none")
    ref_profile, ref_name = _reference(reference)
    loaded = read_frame(current)
    report = compare(ref_profile, loaded.frame, thresholds=thresholds, drift_share=drift_share,
                     multivariate=False if multivariate == "none" else multivariate)
    report.warnings = loaded.warnings + report.warnings
    if html:
        _warn(report.warnings)
        typer.echo(report.to_html(), nl=False)
    elif json_out:
        print_json({"reference": ref_name, "current": str(current), **report.to_dict()})
    elif md:
        typer.echo(report.to_markdown(), nl=False)
    else:
        _warn(report.warnings)
        table(["column", "kind", "statistic", "value", "threshold", "verdict", "test (capped sample)", "note"],
              report.rows())
        for m in report.multivariate:
            echo(f"multivariate {m['method']}: {m['value']:.4g} (threshold {m['threshold']:.4g}) {m['verdict']} - {m['detail']}")
        echo(f"{ref_name} vs {current}: {report.summary()}")
    if fail_on_drift and report.dataset_drift:
        raise CheckFailed(f"data drift: {', '.join(report.drifted) or 'multivariate'}",
                          hint="inspect the report; retrain or fix the upstream data")


@app.command("used-by")
def used_by(ref: str = typer.Argument(..., help="NAME@VERSION"), json_out: bool = JSON) -> None:
    """List the runs that read a dataset version and the model versions trained from them.

    Example: shipyard data used-by penguins@1
    """
    from shipyard.data.versions import used_by as lineage
    from shipyard.store.datasets import get_version

    with _ws().store.read() as session:
        result = lineage(session, get_version(session, ref))
        if json_out:
            print_json(result.to_dict())
            return
        ref_str = result.version.ref
    if result.runs:
        echo(f"{ref_str} was read by {len(result.runs)} run(s): {', '.join(result.runs)}")
    if result.models is None:
        echo(f"{ref_str}: model versions unknown: {result.note}")
    elif result.models:
        table(["model version", "run"], [(m["model"], m["run_id"]) for m in result.models])
    else:
        echo(f"{ref_str}: no model version was trained from it" + (f" ({result.note})" if result.note else ""))
