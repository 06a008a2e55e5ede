"""Model cards in Markdown: data versions, params, metrics, gate verdicts, fairness, signature."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipyard.registry.core import ModelVersion
from shipyard.registry.lineage import datasets_of


def render_card(mv: ModelVersion, tree: dict[str, Any], metrics: dict[str, float]) -> str:
    made = datetime.fromtimestamp(mv.created_at / 1000, UTC).isoformat(timespec="seconds") if mv.created_at else "?"
    lines = [f"# Model card: {mv.ref}", ""]
    if mv.description:
        lines += [mv.description, ""]
    lines += [
        "| field | value |", "|---|---|",
        f"| flavor | {mv.flavor}{' (runs code on load: trusted)' if mv.trusted else ''} |",
        f"| model object | `{mv.model_oid}` |",
        f"| size | {mv.size_bytes:,} bytes |",
        f"| aliases | {', '.join(mv.aliases) or 'none'} |",
        f"| registered | {made} by {mv.user or '?'} |",
        f"| run | {mv.run_id or 'none'} |",
    ]
    run = tree.get("run") or {}
    commit = run.get("git_commit") or (tree.get("pipeline") or {}).get("git_commit")
    lines.append(f"| git commit | {commit or 'unknown'} |")
    for key, value in sorted(mv.tags.items()):
        lines.append(f"| tag {key} | {value} |")
    lines += ["", "## Data", ""]
    data = datasets_of(tree)
    if data:
        lines += ["| dataset | version | context |", "|---|---|---|"]
        lines += [f"| {d['name']} | `{d['digest']}` | {d.get('context') or ''} |" for d in data]
    else:
        lines.append("No dataset versions recorded.")
    if mv.profile:
        cols = mv.profile.get("columns") or {}
        lines += ["", f"Reference profile of the training data stored (`{mv.profile_oid}`), {len(cols)} columns."]
    lines += ["", "## Parameters", ""]
    params = run.get("params") or {}
    if params:
        lines += ["| param | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(params.items())]
    else:
        lines.append("No parameters recorded.")
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("No metrics recorded.")
    lines += ["", "## Gate verdict", ""]
    if mv.verdict:
        lines.append(mv.verdict.get("markdown") or f"passed: {mv.verdict.get('passed')}")
    else:
        lines.append(f"Not gated yet: run `shipyard gate {mv.ref}`.")
    lines += ["## Signature", ""]
    if mv.signature:
        lines += ["| input | type |", "|---|---|"] + [f"| {c.name} | {c.type} |" for c in mv.signature.inputs]
        if mv.signature.outputs:
            lines += ["", "Output: " + ", ".join(f"{c.name} ({c.type})" for c in mv.signature.outputs)]
        if mv.signature.classes is not None:
            lines += ["", "Classes: " + ", ".join(map(str, mv.signature.classes))]
    else:
        lines.append("No signature captured.")
    return "\n".join(lines) + "\n"
