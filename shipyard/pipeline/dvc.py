"""Adopting DVC: run a ``dvc.yaml`` as it is, or convert it to ``shipyard.yaml``.

DVC's stage keys map one to one onto ours (cmd, deps, params, outs, metrics, plots, wdir, frozen,
always_changed, desc, foreach/do, matrix). Keys with no meaning here (``meta``, and the out options
``remote``, ``push``, plot axes) are dropped, and ``convert`` reports each one it dropped. ``vars``
(extra params files or inline values) feed templating when running; an import writes inline
``vars`` values into a note, since shipyard.yaml templates from params files only.

The top-level sections map too. ``metrics:`` and ``plots:`` name files that usually lie inside a
stage's outs (dvclive's ``eval/metrics.json`` inside the out ``eval``): when running dvc.yaml they
become that stage's ``reports``, logged as the stage run's metrics and drawn in the CI report.
``artifacts:`` of ``type: model`` become the ``model:`` section (what ``shipyard run`` registers).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError
from shipyard.pipeline.dag import Dag

_KEPT = ("cmd", "wdir", "deps", "params", "outs", "metrics", "plots", "frozen", "always_changed", "desc", "env")
_OUT_KEPT = ("cache", "persist", "desc")


def _convert_outs(entries: Any, stage: str, key: str, dropped: list[str]) -> list[Any]:
    out: list[Any] = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            for path, opts in entry.items():
                opts = dict(opts or {})
                extra = sorted(k for k in opts if k not in _OUT_KEPT)
                if extra:
                    dropped.append(f"stages.{stage}.{key}.{path}: {', '.join(extra)}")
                kept = {k: opts[k] for k in _OUT_KEPT if k in opts}
                out.append({path: kept} if kept else path)
        else:
            out.append(entry)
    return out


def _convert_body(body: Mapping[str, Any], stage: str, dropped: list[str]) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ConfigError(f"dvc.yaml: stages.{stage}: expected a mapping")
    converted: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("outs", "metrics", "plots"):
            converted[key] = _convert_outs(value, stage, key, dropped)
        elif key in _KEPT or key in ("foreach", "matrix"):
            converted[key] = value
        elif key == "do":
            converted["do"] = _convert_body(value, stage, dropped)
        else:
            dropped.append(f"stages.{stage}.{key}")
    return converted


def convert(doc: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """dvc.yaml (parsed) -> (our raw stages, keys that were dropped)."""
    stages = doc.get("stages") or {}
    if not isinstance(stages, Mapping):
        raise ConfigError("dvc.yaml: 'stages' must be a mapping of stage names to stages")
    dropped: list[str] = []
    return {str(name): _convert_body(body, str(name), dropped) for name, body in stages.items()}, dropped


def _read(root: Path) -> Mapping[str, Any]:
    """dvc.yaml with libyaml; only a malformed file goes through load_yaml (which parses twice to
    keep positions) to name the line and column."""
    import yaml

    try:
        data = yaml.load((root / "dvc.yaml").read_text(encoding="utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ConfigError(f"cannot read {root / 'dvc.yaml'}: {exc.strerror}") from None
    except yaml.YAMLError:
        from shipyard.yaml_positions import load_yaml

        data = load_yaml(root / "dvc.yaml").data  # raises ConfigError with file, line and column
    if not isinstance(data, Mapping):
        raise ConfigError("dvc.yaml: expected a mapping at the top")
    return data


@dataclass(frozen=True)
class PlotDef:
    """One entry of dvc.yaml's top-level ``plots:``: its files and, for data plots, the axes."""

    title: str
    files: tuple[str, ...]
    x: str | None = None
    y: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # file -> fields drawn
    template: str = "linear"


def _norm(path: Any) -> str:
    return posixpath.normpath(str(path).strip().rstrip("/"))


def _fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


def _plot_def(name: str, props: Any) -> PlotDef:
    props = props if isinstance(props, Mapping) else {}
    x = props.get("x")
    x_field = next(iter(x.values()), None) if isinstance(x, Mapping) else x
    y = props.get("y")
    if isinstance(y, Mapping):  # {file: field(s)}: the plot's name is only a title
        files = {_norm(f): _fields(v) for f, v in y.items()}
    else:  # the name is the file itself
        files = {_norm(name): _fields(y)}
    return PlotDef(str(props.get("title") or name), tuple(files), None if x_field is None else str(x_field),
                   files, str(props.get("template") or "linear"))


def top_level_plots(doc: Mapping[str, Any]) -> list[PlotDef]:
    """dvc.yaml's top-level ``plots:`` (a list of paths or ``{name: {x, y, template}}`` entries)."""
    plots: list[PlotDef] = []
    for entry in doc.get("plots") or []:
        if isinstance(entry, Mapping):
            plots += [_plot_def(str(name), props) for name, props in entry.items()]
        else:
            plots.append(_plot_def(str(entry), None))
    return plots


def top_level_metrics(doc: Mapping[str, Any]) -> list[str]:
    """dvc.yaml's top-level ``metrics:`` paths."""
    entries = doc.get("metrics") or []
    return [_norm(e) for e in (entries if isinstance(entries, list) else [entries]) if isinstance(e, str | Path)]


def _owner(dag: Dag, path: str) -> str | None:
    """The stage whose outs hold ``path`` (the out itself or a folder above it)."""
    for out, stage in dag.producers.items():
        if path == out or path.startswith(out + "/"):
            return stage
    return None


def attach_reports(dag: Dag, doc: Mapping[str, Any]) -> tuple[Dag, list[str]]:
    """Give each stage the top-level metrics and plots files its outs hold; returns the new graph
    and the files no stage writes (read from the working tree by the report only)."""
    found: dict[str, list[tuple[str, str]]] = {}
    loose: list[str] = []
    wanted = [("metrics", p) for p in top_level_metrics(doc)]
    wanted += [("plots", f) for plot in top_level_plots(doc) for f in plot.files]
    for kind, path in dict.fromkeys(wanted):
        stage = _owner(dag, path)
        if stage is None:
            loose.append(path)
        else:
            found.setdefault(stage, []).append((kind, path))
    if not found:
        return dag, loose
    stages = {name: replace(spec, reports=tuple(found.get(name, ()))) if name in found else spec
              for name, spec in dag.stages.items()}
    return Dag(stages=stages, upstream=dag.upstream, order=dag.order, producers=dag.producers), loose


def read_doc(root: Path) -> Mapping[str, Any]:
    """dvc.yaml parsed (a ConfigError names the file, line and column of a syntax error)."""
    return _read(root)


MODEL_FLAVORS = {".onnx": "onnx", ".skops": "sklearn", ".ubj": "xgboost", ".xgb": "xgboost", ".lgb": "lightgbm"}
UNSAFE_NOTE = ("is a pickle (loading it runs code), so 'shipyard run' does not register it by itself: "
               "register it once you trust it with 'shipyard models register {name} --path {path} --flavor pickle --trust'")


def model_section(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``model:`` section (raw) for the first ``artifacts:`` entry of type model, and notes on
    the artifacts that were not mapped. A pickle (.pkl, .joblib, anything not in MODEL_FLAVORS)
    maps to flavor pickle with ``register: manual``: loading it runs code, which needs ``--trust``."""
    artifacts = doc.get("artifacts") or {}
    if not isinstance(artifacts, Mapping):
        return None, ["artifacts: expected a mapping of names to artifacts; not converted"]
    model: dict[str, Any] | None = None
    notes: list[str] = []
    for name, spec in artifacts.items():
        spec = spec if isinstance(spec, Mapping) else {}
        if spec.get("type") != "model" or not spec.get("path"):
            notes.append(f"artifacts.{name}: type {spec.get('type')!r} is not a model; not converted")
        elif model is not None:
            notes.append(f"artifacts.{name}: only one model per project (kept {model['name']}); not converted")
        else:
            path = str(spec["path"])
            flavor = MODEL_FLAVORS.get(Path(path).suffix.lower(), "pickle")
            model = {"name": str(name), "path": path, "flavor": flavor}
            if flavor == "pickle":
                model["register"] = "manual"
                notes.append(f"artifacts.{name}: {path} " + UNSAFE_NOTE.format(name=name, path=path))
            extra = sorted(k for k in spec if k not in ("path", "type"))
            if extra:
                notes.append(f"artifacts.{name}: {', '.join(extra)} dropped (no meaning in Shipyard)")
    return model, notes


def dvc_config(root: Path, base: Any = None) -> Any:
    """A ``ShipyardConfig`` for a project run from dvc.yaml: its stages (with the top-level metrics
    and plots files listed under the stage that writes them), and ``model:`` from ``artifacts:``
    unless ``base`` (a shipyard.yaml without stages) has its own. For the CI report and registration."""
    from shipyard.config import ModelSection, Pipeline, ShipyardConfig

    doc = _read(root)
    raw, _dropped = convert(doc)
    owners = {o: name for name, body in raw.items() for key in ("outs", "metrics", "plots")
              for o in _out_names(body.get(key))}
    for kind, paths in (("metrics", top_level_metrics(doc)), ("plots", [f for p in top_level_plots(doc) for f in p.files])):
        for path in paths:
            owner = next((s for o, s in owners.items() if path == o or path.startswith(o + "/")), None)
            if owner is not None and path not in _out_names(raw[owner].get(kind)):
                raw[owner][kind] = [*raw[owner].get(kind, []), path]
    base = base if base is not None else ShipyardConfig()
    update: dict[str, Any] = {"pipeline": Pipeline.model_validate({
        "stages": raw, "executor": base.pipeline.executor, "environment": list(base.pipeline.environment)})}
    model, _notes = model_section(doc)
    if model is not None and base.model is None:
        update["model"] = ModelSection.model_validate(model)
    return base.model_copy(update=update)


def _out_names(entries: Any) -> list[str]:
    names: list[str] = []
    for entry in entries or []:
        names += [_norm(k) for k in entry] if isinstance(entry, Mapping) else [_norm(entry)]
    return names


def _top_level_import(doc: Mapping[str, Any], raw: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Move top-level metrics and plots that are a stage's out into that stage's ``metrics:`` or
    ``plots:``; returns (converted, not converted) lines."""
    done: list[str] = []
    missed: list[str] = []
    plots = [f for p in top_level_plots(doc) for f in p.files]
    for kind, paths in (("metrics", top_level_metrics(doc)), ("plots", plots)):
        for path in dict.fromkeys(paths):
            stage = next((n for n, b in raw.items() if path in _out_names(b.get("outs"))), None)
            inside = next((n for n, b in raw.items() for o in _out_names(b.get("outs")) if path.startswith(o + "/")), None)
            if stage is not None:
                body = raw[stage]
                body["outs"] = [e for e in body["outs"] if path not in _out_names([e])]
                body[kind] = [*body.get(kind, []), path]
                done.append(f"{kind}: {path} -> stages.{stage}.{kind}")
            elif inside is not None:
                missed.append(f"{kind}: {path} lies inside an out of stage {inside!r}, and shipyard.yaml outs may not "
                              "overlap: its values are not logged (run dvc.yaml itself to keep them: delete shipyard.yaml)")
            else:
                missed.append(f"{kind}: {path} is written by no stage: not converted")
    if any(p.x or any(p.y.values()) for p in top_level_plots(doc)):
        missed.append("plots: axes and templates (x, y fields, template) are not carried over")
    return done, missed


def import_dvc(root: Path, *, force: bool = False) -> tuple[Path, list[str], list[str]]:
    """Write shipyard.yaml from dvc.yaml; returns its path, what was converted and what was not."""
    import yaml

    target = root / "shipyard.yaml"
    if not (root / "dvc.yaml").is_file():
        raise ConfigError(f"no dvc.yaml in {root}", hint="run 'shipyard import dvc' in the DVC project's root")
    doc = _read(root)
    raw, dropped = convert(doc)
    existing: dict[str, Any] = {}
    if target.exists():
        from shipyard.yaml_positions import load_yaml

        existing = dict(load_yaml(target).data or {})
        if (existing.get("pipeline") or {}).get("stages") and not force:
            from shipyard.errors import AlreadyExists

            raise AlreadyExists(f"{target} already has pipeline stages; nothing was changed",
                                hint="use --force to replace them with the stages of dvc.yaml")
    converted = [f"stages: {', '.join(raw) or '(none)'}"]
    missed = [f"dropped (no meaning in Shipyard): {d}" for d in dropped]
    if doc.get("vars"):
        missed.append("vars: not carried over: shipyard.yaml templates from params.yaml; move inline values there")
    done, not_done = _top_level_import(doc, raw)
    converted += done
    missed += not_done
    model, notes = model_section(doc)
    missed += notes
    if model is not None and existing.get("model"):
        missed.append(f"artifacts.{model['name']}: shipyard.yaml already has a model section; kept it")
    elif model is not None:
        existing["model"] = model
        converted.append(f"artifacts.{model['name']} -> model: (path {model['path']}, flavor {model['flavor']})")
    existing["pipeline"] = {**(existing.get("pipeline") or {}), "stages": raw}
    text = "# Converted from dvc.yaml by 'shipyard import dvc'.\n" + yaml.safe_dump(
        existing, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    tmp = target.with_name(".shipyard.yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target, converted, missed
