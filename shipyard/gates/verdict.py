"""A gate's verdict: every check with its value, threshold and reason; JSON and Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Check:
    """One check's outcome. ``passed`` is None when it was skipped (with the reason)."""

    name: str
    kind: str
    passed: bool | None
    value: Any = None
    threshold: Any = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "skipped" if self.passed is None else ("pass" if self.passed else "FAIL")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "passed": self.passed, "status": self.status,
                "value": self.value, "threshold": self.threshold, "reason": self.reason, "details": self.details}


@dataclass(frozen=True)
class Verdict:
    """All checks of one gate run; it passes when no check failed."""

    candidate: str
    champion: str | None
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def to_dict(self) -> dict[str, Any]:
        champion = None
        if self.champion:
            _, _, version = self.champion.partition("@")
            champion = {"ref": self.champion, "version": int(version) if version.isdigit() else None}
        return {"candidate": self.candidate, "champion": champion, "passed": self.passed,
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes),
                "created_at": self.created_at}

    def to_markdown(self) -> str:
        head = "PASSED" if self.passed else "FAILED"
        lines = [f"## Gate verdict for {self.candidate}: **{head}**", ""]
        lines.append(f"Compared with champion {self.champion}." if self.champion
                     else "No champion to compare with.")
        for note in self.notes:
            lines.append(f"> {note}")
        lines += ["", "| check | result | value | threshold | reason |", "|---|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.status} | {_fmt(c.value)} | {_fmt(c.threshold)} | {c.reason.replace('|', '/')} |")
        fair = list({c.details.get("group"): c for c in reversed(self.checks)
                     if c.kind == "fairness" and c.details.get("groups")}.values())[::-1]
        for c in fair:
            lines += ["", f"### Fairness by {c.details.get('group')}", "", "| group | rows | accuracy | selection rate |",
                      "|---|---|---|---|"]
            for g in c.details["groups"]:
                lines.append(f"| {g['group']} | {g['rows']} | {_fmt(g.get('accuracy'))} | {_fmt(g.get('selection_rate'))} |")
        if self.failed:
            lines += ["", "Failed: " + "; ".join(f"{c.name}: {c.reason}" for c in self.failed)]
        return "\n".join(lines) + "\n"

    def summary_lines(self) -> list[str]:
        out = []
        for c in self.checks:
            out.append(f"{c.status:<7}  {c.name}: {c.reason}")
        return out


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)
