"""Data governance that follows a model: which of its training columns are classified.

At registration the training features are classified: columns the PII scan of ``shipyard.data.pii``
recognises (e-mails, phone numbers, card numbers) are ``pii``, and ``supply.classified`` in
shipyard.yaml declares more (``{pii: [name], confidential: [salary]}``). The result is stored with
the version (``lineage.supply.classified``), shown by ``models show`` ("trained on columns
classified pii: email") and judged by the ``forbid_classified`` gate kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def classify_columns(frame: Any, declared: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """{classification: sorted columns} for the columns of a pandas or polars ``frame``."""
    import polars as pl

    from shipyard.data.pii import scan

    table = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    found: dict[str, set[str]] = {}
    for finding in scan(table):
        found.setdefault("pii", set()).add(finding.column)
    for label, columns in (declared or {}).items():
        found.setdefault(label, set()).update(c for c in columns if c in table.columns)
    return {label: sorted(cols) for label, cols in sorted(found.items()) if cols}
