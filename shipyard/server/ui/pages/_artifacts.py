"""Artifact previews capped by size: the first bytes of a text or CSV file by a range read, JSON and
images only when small enough, a download link for everything else.

MLflow's UI hung on a 10 MB JSON preview and pulled hundreds of MB for a CSV preview
(research/web-ui.md §0.4); here a preview never reads more than ``PREVIEW_BYTES`` of an object.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import PurePosixPath
from typing import Any

from shipyard.objects.store import ObjectStore, key_of

PREVIEW_BYTES = 64 * 1024
IMAGE_BYTES = 2 * 1024 * 1024
CSV_ROWS = 50
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp", ".svg": "image/svg+xml"}
TEXT = {".txt", ".log", ".md", ".yaml", ".yml", ".py", ".toml", ".cfg", ".ini", ".html", ".xml", ".sh", ".jsonl",
        ".out", ".err", ".rst", ".sql", ".r", ".ipynb", ""}


def read_head(objects: ObjectStore, oid: str, size: int, cap: int) -> bytes | None:
    """The first ``cap`` bytes of an object: a range read on a local store, the whole object when it
    is no larger than ``cap``, None when neither is possible (a large object on a remote store)."""
    local = objects.backend.local_path(key_of(oid))
    if local is not None:
        with open(local, "rb") as handle:
            return handle.read(cap)
    if size <= cap:
        return objects.get_bytes(oid)
    return None


def media_type(path: str) -> str:
    """What a download is served as: an image type for images, bytes for everything else."""
    return IMAGES.get(PurePosixPath(path).suffix.lower(), "application/octet-stream")


def preview(objects: ObjectStore, path: str, oid: str, size: int) -> dict[str, Any]:
    """What the preview shows: {"kind": image|json|csv|text|none, ...} and whether it is cut short."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in IMAGES:
        return {"kind": "image"} if size <= IMAGE_BYTES else {"kind": "none", "why": f"larger than {IMAGE_BYTES // 1024} KB"}
    if suffix == ".json" and size > PREVIEW_BYTES:
        return {"kind": "none", "why": f"JSON larger than {PREVIEW_BYTES // 1024} KB"}
    if suffix not in TEXT | {".json", ".csv", ".tsv"}:
        return {"kind": "none", "why": "no preview for this kind of file"}
    head = read_head(objects, oid, size, PREVIEW_BYTES)
    if head is None:
        return {"kind": "none", "why": f"larger than {PREVIEW_BYTES // 1024} KB on a remote store"}
    text = head.decode("utf-8", errors="replace")
    cut = size > len(head)
    if suffix == ".json":
        try:
            return {"kind": "json", "text": json.dumps(json.loads(text), indent=2)[:PREVIEW_BYTES], "cut": False}
        except ValueError:
            return {"kind": "text", "text": text, "cut": cut}
    if suffix in (".csv", ".tsv"):
        lines = text.splitlines()[:-1] if cut else text.splitlines()  # a cut read ends in a partial line
        shown = lines[:CSV_ROWS + 1]
        rows = list(csv.reader(io.StringIO("\n".join(shown)), delimiter="\t" if suffix == ".tsv" else ","))
        return {"kind": "csv", "header": rows[0] if rows else [], "rows": rows[1:], "cut": cut or len(lines) > len(shown)}
    if "\x00" in text:
        return {"kind": "none", "why": "binary file"}
    return {"kind": "text", "text": text, "cut": cut}
