"""Adopting DVC: run a ``dvc.yaml`` as it is, or convert it to ``shipyard.yaml``.

DVC's stage keys map one to one onto ours (cmd, deps, params, outs, metrics, plots, wdir, frozen,
always_changed, desc, foreach/do, matrix). Keys with no meaning here (``meta``, and the out options
``remote``, ``push``, plot axes) are dropped, and ``convert`` reports each one it dropped. ``vars``
(extra params files or inline values) feed templating when running; an import writes inline
``vars`` values into a note, since shipyard.yaml templates from params files only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError
from shipyard.pipeline.dag import DEFAULT_PARAMS

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
    from shipyard.config import load_yaml

    loaded = load_yaml(root / "dvc.yaml")
    if not isinstance(loaded.data, Mapping):
        raise ConfigError("dvc.yaml: expected a mapping at the top")
    return loaded.data


def load_dvc(root: Path, files: Any) -> Any:
    """Run a dvc.yaml as our pipeline (``files`` is the loader's tracker of params files)."""
    from shipyard.pipeline.loader import DVC_NAME, build_from_raw

    files.track(DVC_NAME)
    doc = _read(root)
    raw, _dropped = convert(doc)
    context = dict(files.optional(DEFAULT_PARAMS))
    for entry in doc.get("vars") or []:
        if isinstance(entry, Mapping):
            context.update(entry)
        else:
            path, _, keys = str(entry).partition(":")
            values = files.params(path)
            if keys:
                values = {k: values[k] for k in keys.split(",") if k in values}
            context.update(values)
    return build_from_raw(root, files, raw, context, DVC_NAME)


def import_dvc(root: Path, *, force: bool = False) -> tuple[Path, list[str]]:
    """Write shipyard.yaml from dvc.yaml; returns its path and notes about what was not carried over."""
    import yaml

    target = root / "shipyard.yaml"
    if not (root / "dvc.yaml").is_file():
        raise ConfigError(f"no dvc.yaml in {root}", hint="run 'shipyard import dvc' in the DVC project's root")
    doc = _read(root)
    raw, dropped = convert(doc)
    existing: dict[str, Any] = {}
    if target.exists():
        from shipyard.config import load_yaml

        existing = dict(load_yaml(target).data or {})
        if (existing.get("pipeline") or {}).get("stages") and not force:
            from shipyard.errors import AlreadyExists

            raise AlreadyExists(f"{target} already has pipeline stages; nothing was changed",
                                hint="use --force to replace them with the stages of dvc.yaml")
    notes = [f"dropped (no meaning in Shipyard): {d}" for d in dropped]
    if doc.get("vars"):
        notes.append("dvc.yaml 'vars' are not carried over: shipyard.yaml templates from params.yaml; "
                     "move inline values there")
    existing["pipeline"] = {**(existing.get("pipeline") or {}), "stages": raw}
    text = "# Converted from dvc.yaml by 'shipyard import dvc'.\n" + yaml.safe_dump(
        existing, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    tmp = target.with_name(".shipyard.yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target, notes
