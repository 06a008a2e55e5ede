"""Columns that look like personal data: e-mail addresses, phone numbers, payment card numbers.

A column is flagged when at least ``MIN_SHARE`` of a sample of its values match. Card numbers must
have 13 to 19 digits and pass the Luhn checksum, so ordinary ids are not mistaken for cards.

``classify_columns`` turns findings and declared classes into ``{classification: columns}``: what
dataset versions and model versions record, and the ``forbid_classified`` gate judges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

SAMPLE = 10_000
MIN_SHARE = 0.3
EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
PHONE = r"^\+?[0-9][0-9 ().-]{5,22}[0-9]$"
CARD = r"^[0-9]{4}([ -]?[0-9]{2,7}){2,5}$"
_NON_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class PiiFinding:
    column: str
    kind: str        # email, phone, card_number
    share: float     # of the sampled non-null values
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "share": round(self.share, 4),
                "examples": [mask(e) for e in self.examples]}


def mask(value: str) -> str:
    """Keep the shape of a value, hide most of it (reports must not leak what they flag)."""
    if len(value) <= 4:
        return "*" * len(value)
    return value[:2] + re.sub(r"[A-Za-z0-9]", "*", value[2:-2]) + value[-2:]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def scan(df: pl.DataFrame, skip: set[str] | None = None) -> list[PiiFinding]:
    """Personal-data findings for every text or integer column not in ``skip``."""
    import polars as pl

    findings = []
    for name, dtype in df.schema.items():
        if skip and name in skip:
            continue
        if not (dtype == pl.String or dtype.is_integer()):
            continue
        values = df[name].drop_nulls()
        if values.len() == 0:
            continue
        if values.len() > SAMPLE:
            values = values.sample(n=SAMPLE, seed=0)
        text = values.cast(pl.String).str.strip_chars()
        n = text.len()
        if dtype == pl.String:
            emails = text.filter(text.str.contains(EMAIL))
            if emails.len() / n >= MIN_SHARE:
                findings.append(PiiFinding(name, "email", emails.len() / n, tuple(emails.head(3).to_list())))
                continue
        candidates = text.filter(text.str.contains(CARD)).to_list()
        cards = [v for v in candidates if 13 <= len(_NON_DIGIT.sub("", v)) <= 19 and luhn_ok(_NON_DIGIT.sub("", v))]
        if len(cards) / n >= MIN_SHARE:
            findings.append(PiiFinding(name, "card_number", len(cards) / n, tuple(cards[:3])))
            continue
        if dtype == pl.String:
            phones = text.filter(text.str.contains(PHONE))
            phones = phones.filter(phones.str.replace_all(r"\D", "").str.len_chars().is_between(7, 15))
            if phones.len() / n >= MIN_SHARE:
                findings.append(PiiFinding(name, "phone", phones.len() / n, tuple(phones.head(3).to_list())))
    return findings


def classify_columns(frame: Any, declared: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """{classification: sorted columns} for the columns of a pandas or polars ``frame``: ``pii`` for
    the columns ``scan`` flags, plus the ``declared`` classes of columns the frame has."""
    import polars as pl

    table = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    found: dict[str, set[str]] = {}
    for finding in scan(table):
        found.setdefault("pii", set()).add(finding.column)
    for label, columns in (declared or {}).items():
        found.setdefault(label, set()).update(c for c in columns if c in table.columns)
    return {label: sorted(cols) for label, cols in sorted(found.items()) if cols}
