"""The CI report: what a change did to the model, as Markdown, HTML (images inline) and JSON.

``Report`` holds plain values gathered by the caller (``shipyard.ci.collect``); the renderers here
are pure. Markdown is written for a pull-request comment: verdict first, then gates with reasons,
metrics with deltas against the base branch and the champion (worse values in bold), params and
data that changed, which stages ran or came from the cache, and the plots. Plots are PNG files next
to the report; the HTML embeds them as data URIs, so nothing has to be uploaded anywhere.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = re.compile(r"(loss|error|err$|rmse|mse|mae|mape|latency|_ms$|ece|brier|log_?loss|"
                             r"perplexity|fpr|fnr|disparity|gap|difference|drift|psi|size)", re.IGNORECASE)
DASH = "\u2013"  # en dash: no value
MINUS = "\u2212"  # a real minus sign in deltas
REPORT_FILES = {"md": "report.md", "html": "report.html", "json": "report.json"}


def higher_is_better(metric: str) -> bool:
    """Direction of a metric from its name (loss, error, latency... are lower-is-better)."""
    return LOWER_IS_BETTER.search(metric) is None


@dataclass
class MetricRow:
    name: str
    value: float | None
    base: float | None = None
    champion: float | None = None
    higher_is_better: bool = True

    def delta(self, other: float | None) -> float | None:
        if self.value is None or other is None:
            return None
        return self.value - other

    def worse(self, other: float | None, tolerance: float = 1e-12) -> bool:
        delta = self.delta(other)
        if delta is None:
            return False
        return delta < -tolerance if self.higher_is_better else delta > tolerance


@dataclass
class GateRow:
    name: str
    passed: bool | None  # None: the check was skipped (the reason says why)
    value: Any = None
    threshold: Any = None
    reason: str = ""


@dataclass
class StageRow:
    name: str
    status: str  # ran, cached, skipped, failed
    seconds: float | None = None
    reason: str = ""


@dataclass
class ParamChange:
    key: str
    base: Any
    current: Any


@dataclass
class DataChange:
    path: str
    base_oid: str | None
    current_oid: str | None
    base_rows: int | None = None
    rows: int | None = None
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    dtype_changes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.base_oid is None:
            return "new"
        if self.current_oid is None:
            return "removed"
        return "changed" if self.base_oid != self.current_oid else "unchanged"


@dataclass
class ValidationRow:
    dataset: str
    passed: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class PlotRef:
    title: str
    file: str  # relative to the report folder


@dataclass
class CostRow:
    """What this change's pipeline run cost, and its base's (texts as ``Cost.text`` gives them)."""

    current: str
    base: str | None = None
    change: float | None = None  # relative: +0.2 is 20 % more than the base


@dataclass
class Report:
    """Everything the report says, as plain values."""

    project: str
    commit: str | None = None
    branch: str | None = None
    base_ref: str | None = None
    base_commit: str | None = None
    pr_number: int | None = None
    provider: str = "local"
    build_url: str | None = None
    candidate: str | None = None
    champion: str | None = None
    passed: bool | None = None  # None: no gate ran
    gates: list[GateRow] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    params: list[ParamChange] = field(default_factory=list)
    data: list[DataChange] = field(default_factory=list)
    validation: list[ValidationRow] = field(default_factory=list)
    stages: list[StageRow] = field(default_factory=list)
    plots: list[PlotRef] = field(default_factory=list)
    cost: CostRow | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything that ran passed: gates, validation, stages, and no step failed."""
        return (self.passed is not False and not self.errors
                and all(v.passed for v in self.validation)
                and all(s.status != "failed" for s in self.stages))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        for row, data in zip(self.data, out["data"], strict=True):
            data["status"] = row.status
        for row, data in zip(self.metrics, out["metrics"], strict=True):
            data["delta_base"] = row.delta(row.base)
            data["delta_champion"] = row.delta(row.champion)
        return out


# -- formatting helpers -------------------------------------------------------------------------

def _num(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items())
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _delta(row: MetricRow, other: float | None) -> tuple[str, bool]:
    delta = row.delta(other)
    if delta is None:
        return DASH, False
    if abs(delta) < 1e-12:
        return "0", False
    text = f"{delta:+.4f}".rstrip("0").rstrip(".") if abs(delta) >= 1e-3 else f"{delta:+.2g}"
    text = text.replace("-", MINUS)
    return text, row.worse(other)


def _short(commit: str | None) -> str:
    return commit[:7] if commit else "?"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


STATUS_ICON = {"ran": "▶ ran", "cached": "♻ cache", "up-to-date": "✓ up to date", "skipped": DASH + " skipped",
               "failed": "✖ failed"}


GATE_ICON = {True: "✅", False: "❌", None: "⏭️"}
GATE_WORD = {True: "pass", False: "FAIL", None: "skipped"}
GATE_CLASS = {True: "pass", False: "fail", None: "skip"}


def _gate_order(gate: GateRow) -> int:
    return {False: 0, None: 1, True: 2}[gate.passed]


def headline(report: Report) -> str:
    subject = report.candidate or report.project
    if report.errors:
        return f"❌ Shipyard: {subject}: the CI run did not finish"
    if report.passed is None:
        state = "no gates ran" if report.ok else "checks failed"
        return f"{'⚪' if report.ok else '❌'} Shipyard: {subject}: {state}"
    failed = [g for g in report.gates if g.passed is False]
    skipped = [g for g in report.gates if g.passed is None]
    if report.passed and report.ok:
        judged = len(report.gates) - len(skipped)
        extra = f" ({len(skipped)} skipped)" if skipped else ""
        return f"✅ Shipyard: {subject} passed all {judged} gates{extra}"
    if report.passed:
        return f"❌ Shipyard: {subject} passed its gates, but other checks failed"
    return f"❌ Shipyard: {subject} failed {len(failed)} of {len(report.gates) - len(skipped)} gates"


def _context_line(report: Report) -> str:
    parts = [f"`{report.branch or 'HEAD'}` @ `{_short(report.commit)}`"]
    if report.base_commit:
        parts.append(f"vs `{report.base_ref}` @ `{_short(report.base_commit)}`")
    elif report.base_ref:
        parts.append(f"vs `{report.base_ref}` (not available)")
    if report.champion:
        parts.append(f"champion `{report.champion}`")
    if report.pr_number is not None:
        parts.append(f"PR #{report.pr_number}")
    if report.build_url:
        parts.append(f"[build]({report.build_url})")
    return " · ".join(parts)


# -- Markdown -----------------------------------------------------------------------------------

def to_markdown(report: Report, *, images: str = "link", image_base: str | None = None,
                html_ok: bool = True) -> str:
    """Markdown for a file or a comment.

    ``images``: "link" embeds ``![](plots/x.png)`` (works next to the PNGs, or under ``image_base``
    when given); "list" names the plots only, for comments on forges that cannot see local files.
    ``html_ok=False`` avoids inline HTML (Bitbucket shows it as text).
    """
    out = [f"## {headline(report)}", "", _context_line(report), ""]
    for note in report.notes:
        out.append(f"> ⚠️ {note}")
    for error in report.errors:
        out.append(f"> ❌ {error}")
    if report.notes or report.errors:
        out.append("")
    # Each section is empty when the report has nothing for it.
    for section in (_md_gates, _md_metrics, _md_params, _md_data, _md_validation, _md_stages):
        out += section(report)
    out += _md_plots(report, images, image_base)
    footer = "Generated by `shipyard ci`. Reports and plots stay on your CI machines."
    out.append(f"<sub>{footer}</sub>" if html_ok else f"_{footer}_")
    return "\n".join(out).rstrip() + "\n"


def _md_gates(report: Report) -> list[str]:
    if not report.gates:
        return []
    out = ["### Gates", "", "| | check | value | threshold | reason |", "|---|---|---|---|---|"]
    for gate in sorted(report.gates, key=_gate_order):
        out.append(f"| {GATE_ICON[gate.passed]} | {_md_cell(gate.name)} | {_md_cell(_num(gate.value))} | "
                   f"{_md_cell(_num(gate.threshold))} | {_md_cell(gate.reason)} |")
    return [*out, ""]


def _md_metrics(report: Report) -> list[str]:
    if not report.metrics:
        return []
    base_label = f"{report.base_ref or 'base'}" + (f" `{_short(report.base_commit)}`" if report.base_commit else "")
    champ_label = report.champion or "champion"
    has_base = any(m.base is not None for m in report.metrics)
    has_champ = any(m.champion is not None for m in report.metrics)
    head = ["metric", "this change"]
    if has_base:
        head += [base_label, "Δ base"]
    if has_champ:
        head += [champ_label, "Δ champion"]
    out = ["### Metrics", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.metrics:
        cells = [_md_cell(row.name) + ("" if row.higher_is_better else " ↓"), _num(row.value)]
        for present, other in ((has_base, row.base), (has_champ, row.champion)):
            if present:
                text, worse = _delta(row, other)
                cells += [_num(other), f"**{text}**" if worse else text]
        out.append("| " + " | ".join(cells) + " |")
    return [*out, "", "_Deltas that make the model worse are in **bold**; ↓ marks lower-is-better metrics._", ""]


def _md_params(report: Report) -> list[str]:
    if not report.params:
        return []
    out = ["### Params changed", "", f"| param | {report.base_ref or 'base'} | this change |", "|---|---|---|"]
    for change in report.params:
        out.append(f"| `{_md_cell(change.key)}` | {_md_cell(_fmt_param(change.base))} | "
                   f"{_md_cell(_fmt_param(change.current))} |")
    return [*out, ""]


def _md_data(report: Report) -> list[str]:
    changed_data = [d for d in report.data if d.status != "unchanged"]
    if not changed_data:
        return []
    out = ["### Data changed", "", "| dataset | change | rows | schema |", "|---|---|---|---|"]
    for d in changed_data:
        schema = "; ".join(
            [f"+{c}" for c in d.columns_added] + [MINUS + c for c in d.columns_removed] + d.dtype_changes
        ) or "same columns"
        out.append(f"| `{_md_cell(d.path)}` | {d.status} | {_rows(d)} | {_md_cell(schema)} |")
    return [*out, ""]


def _md_validation(report: Report) -> list[str]:
    if not report.validation:
        return []
    out = ["### Data validation", ""]
    for v in report.validation:
        if v.passed:
            out.append(f"- ✅ `{v.dataset}`: all checks passed")
            continue
        out.append(f"- ❌ `{v.dataset}`: {len(v.failures)} failed")
        out += [f"  - {_md_cell(f)}" for f in v.failures[:10]]
        if len(v.failures) > 10:
            out.append(f"  - … and {len(v.failures) - 10} more")
    return [*out, ""]


def _cost_line(cost: CostRow) -> str:
    line = f"Cost of this run: {cost.current}"
    if cost.base is not None:
        line += f"; base: {cost.base}"
        if cost.change is not None:
            line += f" ({cost.change:+.0%})"
    return line + "."


def _md_stages(report: Report) -> list[str]:
    if not report.stages:
        return []
    ran = [s for s in report.stages if s.status == "ran"]
    cached = [s for s in report.stages if s.status == "cached"]
    current = [s for s in report.stages if s.status == "up-to-date"]
    total = sum(s.seconds or 0 for s in report.stages)
    summary = f"{len(ran)} of {len(report.stages)} stages ran, {len(cached)} came from the cache"
    if current:
        summary += f", {len(current)} were already up to date"
    out = ["### Pipeline", "", f"{summary} ({_seconds(total)} in stages).", ""]
    if report.cost is not None:
        out += [_cost_line(report.cost), ""]
    out += ["| stage | | time | why |", "|---|---|---|---|"]
    for s in report.stages:
        out.append(f"| {_md_cell(s.name)} | {STATUS_ICON.get(s.status, s.status)} | {_seconds(s.seconds)} | "
                   f"{_md_cell(s.reason)} |")
    return [*out, ""]


def _md_plots(report: Report, images: str, image_base: str | None) -> list[str]:
    if not report.plots:
        return []
    out = ["### Plots", ""]
    if images == "list":
        names = ", ".join(f"`{p.file}`" for p in report.plots)
        where = f" ([build]({report.build_url}))" if report.build_url else ""
        out.append(f"{len(report.plots)} plots are in the job's `shipyard-report/` artifact{where}: {names}. "
                   "Open `report.html` there to see them inline.")
    else:
        for plot in report.plots:
            src = f"{image_base.rstrip('/')}/{plot.file}" if image_base else plot.file
            out += [f"**{plot.title}**", "", f"![{plot.title}]({src})", ""]
    return [*out, ""]


def _rows(d: DataChange) -> str:
    if d.rows is None:
        return DASH
    if d.base_rows is None or d.base_rows == d.rows:
        return str(d.rows)
    return f"{d.base_rows} → {d.rows} ({d.rows - d.base_rows:+d})"


def _fmt_param(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1080px;margin:2em auto;color:#1f2328;padding:0 1em}
h1{font-size:1.5em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.pass{color:#1a7f37}.fail{color:#cf222e}.skip{color:#6e7781}.worse{font-weight:bold;color:#cf222e}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:6px 10px;margin:4px 0}
.err{background:#ffebe9;border-left:4px solid #cf222e;padding:6px 10px;margin:4px 0}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:bold;margin-bottom:4px}
img{max-width:100%;border:1px solid #d0d7de}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
"""


def to_html(report: Report, folder: Path) -> str:
    """A standalone HTML page; PNGs under ``folder`` are embedded as data URIs."""
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{e(headline(report))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(headline(report))}</h1>", f"<p>{_html_context(report)}</p>"]
    parts += [f"<div class='note'>{e(n)}</div>" for n in report.notes]
    parts += [f"<div class='err'>{e(n)}</div>" for n in report.errors]

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{h}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    if report.gates:
        rows = [[f"<span class='{GATE_CLASS[g.passed]}'>{GATE_WORD[g.passed]}</span>",
                 e(g.name), e(_num(g.value)), e(_num(g.threshold)), e(g.reason)]
                for g in sorted(report.gates, key=_gate_order)]
        parts += ["<h2>Gates</h2>", table(["", "check", "value", "threshold", "reason"], rows)]
    if report.metrics:
        has_base = any(m.base is not None for m in report.metrics)
        has_champ = any(m.champion is not None for m in report.metrics)
        head = ["metric", "this change"] + ([e(report.base_ref or "base"), "Δ base"] if has_base else []) + \
            ([e(report.champion or "champion"), "Δ champion"] if has_champ else [])
        rows = []
        for m in report.metrics:
            row = [e(m.name) + ("" if m.higher_is_better else " ↓"), e(_num(m.value))]
            for other, shown in ((m.base, has_base), (m.champion, has_champ)):
                if shown:
                    text, worse = _delta(m, other)
                    row += [e(_num(other)), f"<span class='worse'>{e(text)}</span>" if worse else e(text)]
            rows.append(row)
        parts += ["<h2>Metrics</h2>", table(head, rows)]
    if report.params:
        parts += ["<h2>Params changed</h2>", table(
            ["param", e(report.base_ref or "base"), "this change"],
            [[f"<code>{e(p.key)}</code>", e(_fmt_param(p.base)), e(_fmt_param(p.current))] for p in report.params])]
    changed = [d for d in report.data if d.status != "unchanged"]
    if changed:
        parts += ["<h2>Data changed</h2>", table(
            ["dataset", "change", "rows", "schema"],
            [[f"<code>{e(d.path)}</code>", e(d.status), e(_rows(d)),
              e("; ".join([f"+{c}" for c in d.columns_added] + [MINUS + c for c in d.columns_removed]
                          + d.dtype_changes) or "same columns")] for d in changed])]
    if report.validation:
        items = "".join(
            f"<li class='{'pass' if v.passed else 'fail'}'><code>{e(v.dataset)}</code>: "
            + ("all checks passed" if v.passed else "<ul>" + "".join(f"<li>{e(f)}</li>" for f in v.failures) + "</ul>")
            + "</li>" for v in report.validation)
        parts += ["<h2>Data validation</h2>", f"<ul>{items}</ul>"]
    if report.stages:
        parts.append("<h2>Pipeline</h2>")
        if report.cost is not None:
            parts.append(f"<p>{e(_cost_line(report.cost))}</p>")
        parts += [table(
            ["stage", "", "time", "why"],
            [[e(s.name), e(STATUS_ICON.get(s.status, s.status)), e(_seconds(s.seconds)), e(s.reason)]
             for s in report.stages])]
    if report.plots:
        parts.append("<h2>Plots</h2>")
        for plot in report.plots:
            png = folder / plot.file
            if png.is_file():
                data = base64.b64encode(png.read_bytes()).decode()
                parts.append(f"<figure><figcaption>{e(plot.title)}</figcaption>"
                             f"<img alt='{e(plot.title)}' src='data:image/png;base64,{data}'></figure>")
    parts.append("<p><small>Generated by <code>shipyard ci</code>.</small></p></body></html>")
    return "\n".join(parts)


def _html_context(report: Report) -> str:
    e = html.escape
    text = f"<code>{e(report.branch or 'HEAD')}</code> @ <code>{e(_short(report.commit))}</code>"
    if report.base_commit:
        text += f" vs <code>{e(report.base_ref or '')}</code> @ <code>{e(_short(report.base_commit))}</code>"
    if report.champion:
        text += f" · champion <code>{e(report.champion)}</code>"
    if report.pr_number is not None:
        text += f" · PR #{report.pr_number}"
    if report.build_url:
        text += f" · <a href='{e(report.build_url)}'>build</a>"
    return text


# -- files --------------------------------------------------------------------------------------

def write(report: Report, folder: Path) -> dict[str, Path]:
    """Write report.md, report.html and report.json into ``folder`` (plots are already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        "md": to_markdown(report),
        "html": to_html(report, folder),
        "json": json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False) + "\n",
    }
    paths = {}
    for kind, text in outputs.items():
        path = folder / REPORT_FILES[kind]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        paths[kind] = path
    return paths


def load(folder: Path) -> Report:
    """Read a report written by ``write`` back (for ``shipyard ci comment``)."""
    from shipyard.errors import NotFound

    path = folder / REPORT_FILES["json"]
    if not path.is_file():
        raise NotFound(f"no report in {folder} ({REPORT_FILES['json']} is missing)",
                       hint="run 'shipyard ci' (or 'shipyard report') first")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("ok", None)
    for row in data.get("data", []):
        row.pop("status", None)
    for row in data.get("metrics", []):
        row.pop("delta_base", None)
        row.pop("delta_champion", None)
    return Report(
        **{k: v for k, v in data.items()
           if k not in {"gates", "metrics", "params", "data", "validation", "stages", "plots", "cost"}},
        cost=CostRow(**data["cost"]) if data.get("cost") else None,
        gates=[GateRow(**g) for g in data.get("gates", [])],
        metrics=[MetricRow(**m) for m in data.get("metrics", [])],
        params=[ParamChange(**p) for p in data.get("params", [])],
        data=[DataChange(**d) for d in data.get("data", [])],
        validation=[ValidationRow(**v) for v in data.get("validation", [])],
        stages=[StageRow(**s) for s in data.get("stages", [])],
        plots=[PlotRef(**p) for p in data.get("plots", [])],
    )
