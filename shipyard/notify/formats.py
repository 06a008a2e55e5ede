"""Turn an event into the body one webhook format expects: generic JSON, Slack or Microsoft Teams.

An event is a flat-ish dict with at least ``kind`` (``monitor.alert``, ``retrain.failed``,
``rollout.promoted``...); ``model``, ``severity``, ``reason`` and ``message`` are used when present.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

_SKIP = {"kind", "message", "reason", "events"}


def summary(event: dict[str, Any]) -> str:
    """One line for humans: ``[critical] monitor.alert penguins: drift_share 0.45 > 0.3``."""
    kind = str(event.get("kind", "event"))
    parts = []
    if event.get("severity"):
        parts.append(f"[{event['severity']}]")
    parts.append(kind)
    if event.get("model"):
        version = f"@{event['version']}" if event.get("version") is not None else ""
        parts.append(f"{event['model']}{version}")
    text = " ".join(parts)
    detail = event.get("message") or event.get("reason")
    if kind == "digest":
        detail = f"{event.get('count', 0)} events held back during the digest window"
    return f"{text}: {detail}" if detail else text


def _facts(event: dict[str, Any]) -> list[tuple[str, str]]:
    facts = []
    for key, value in event.items():
        if key in _SKIP or value is None or isinstance(value, dict | list):
            continue
        facts.append((str(key), str(value)))
    return facts[:10]


def render(event: dict[str, Any], fmt: str, now: float | None = None) -> bytes:
    """The request body for ``fmt`` (``json``, ``slack``, ``teams``)."""
    at = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    text = summary(event)
    if fmt == "slack":
        body: dict[str, Any] = {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _facts(event)]},
            ] if _facts(event) else [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}],
        }
        if event.get("kind") == "digest":
            lines = "\n".join(f"• {summary(e)}" for e in event.get("events", [])[:50])
            body["blocks"].append({"type": "section", "text": {"type": "mrkdwn", "text": lines or "(none)"}})
    elif fmt == "teams":
        items: list[dict[str, Any]] = [{"type": "TextBlock", "text": text, "weight": "Bolder", "wrap": True}]
        facts = _facts(event)
        if facts:
            items.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
        for inner in event.get("events", [])[:50] if event.get("kind") == "digest" else []:
            items.append({"type": "TextBlock", "text": summary(inner), "wrap": True})
        body = {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                        "version": "1.4", "body": items}}]}
    else:
        body = {"source": "shipyard", "kind": event.get("kind", "event"), "at": at.isoformat(), "summary": text,
                "event": event}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
