"""A YAML file parsed with the position of every value, so that an error names ``file:line:col``.

Free of pydantic: the pipeline's fast paths (lock file, dvc.yaml) use it only when a file is
malformed, and the config schema and the validation explainer build on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LoadedYaml:
    """A parsed YAML document that still knows where each value came from."""

    def __init__(self, path: Path, data: Any, root_node: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root_node

    def where(self, loc: tuple[str | int, ...], at_key: bool = False) -> str:
        """``file:line:col`` of the deepest node of ``loc`` that exists (its key if ``at_key``)."""
        node = self._root
        best = node
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            node = _child(node, part, want_key=at_key and last)
            if node is None:
                break
            best = node
        if best is None:
            return str(self.path)
        mark = best.start_mark
        return f"{self.path.name}:{mark.line + 1}:{mark.column + 1}"


def _child(node: yaml.Node | None, part: str | int, want_key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                # Empty scalars have no useful position of their own: point at the key.
                empty = isinstance(value, yaml.ScalarNode) and not value.value
                return key if want_key or empty else value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def load_yaml(path: str | os.PathLike[str], *, missing_ok: bool = False) -> LoadedYaml:
    """Parse a YAML file, keeping positions; a malformed file raises ConfigError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return LoadedYaml(path, {}, None)
        raise ConfigError(f"{path}: file not found", hint="run 'shipyard init' to create it")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise ConfigError(
            f"{where}: malformed YAML: {exc.problem or exc.context}",
            hint="check indentation and quoting on that line",
        ) from exc
    if data is None:
        data = {}
    return LoadedYaml(path, data, node)


def dotted_key(loc: tuple[str | int, ...]) -> str:
    """``("pipeline", "stages", "train")`` -> ``pipeline.stages.train`` (the key an error names)."""
    return ".".join(str(p) for p in loc) or "(top level)"
