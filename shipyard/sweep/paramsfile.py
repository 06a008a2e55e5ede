"""Set values in params.yaml in place: the line of each key changes, comments and layout stay.

Only block-style mappings are edited in place (``train:`` then indented ``lr: 0.01  # comment``).
A key written another way (flow style, a list, a missing key) makes the whole file rewritten by
the YAML dumper instead, and ``set_values`` returns False so the caller can say comments were lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shipyard.dotted import set_dotted

_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]*\"|'[^']*'):(?P<rest>.*)$")


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _edit(lines: list[str], dotted: str, value: Any) -> bool:
    parts = dotted.split(".")
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    for index, line in enumerate(lines):
        match = _LINE.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        indent, key = len(match["indent"]), match["key"].strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        rest = match["rest"]
        if path == parts:
            body, _, comment = rest.partition(" #")
            if not body.strip() or body.strip()[0] in "[{|>&*":
                return False  # a nested block or flow value: not a scalar line
            lines[index] = f"{match['indent']}{match['key']}: {_scalar(value)}" + (f"  #{comment}" if comment else "")
            return True
        if not rest.strip() or rest.strip().startswith("#"):
            stack.append((indent, key))
    return False


def set_values(path: Path, values: Mapping[str, Any]) -> bool:
    """Write each dotted key's value; True when every key was edited in place."""
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    if all(_edit(lines, dotted, value) for dotted, value in values.items()):
        path.write_text("\n".join(lines) + "\n")
        return True
    data = yaml.safe_load(text) or {}
    for dotted, value in values.items():
        set_dotted(data, dotted, value)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return False
