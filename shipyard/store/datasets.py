"""Dataset versions (name@version -> content id, rows, columns, schema, profile object, column
classifications) and the link table run <-> dataset version that records lineage.

A version is immutable: adding the same content under the same name again returns the existing
version instead of making a new one. Batch functions first (STYLE.md E2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import InputError, NotFound, did_you_mean
from shipyard.store.base import Base, utcnow


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text, index=True)
    format: Mapped[str] = mapped_column(String(20))
    oid: Mapped[str] = mapped_column(String(100), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[str] = mapped_column(Text)        # JSON list of {"name", "dtype"}
    schema: Mapped[str] = mapped_column(Text)         # schema YAML as inferred at add time
    profile_oid: Mapped[str | None] = mapped_column(String(100), nullable=True)
    warnings: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list
    # JSON {classification: [columns]} (e.g. {"pii": ["email"]}); they follow lineage to runs and models
    classified: Mapped[str | None] = mapped_column(Text, nullable=True)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("name", "version"),)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def column_list(self) -> list[dict[str, str]]:
        return json.loads(self.columns)

    def classification(self) -> dict[str, list[str]]:
        """{classification: sorted columns} recorded for this version (empty when none)."""
        return json.loads(self.classified or "{}")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "ref": self.ref, "path": self.path,
                "format": self.format, "oid": self.oid, "size_bytes": self.size_bytes, "rows": self.rows,
                "columns": self.column_list(), "profile_oid": self.profile_oid, "classified": self.classification(),
                "warnings": json.loads(self.warnings or "[]"), "user": self.user,
                "created_at": self.created_at.isoformat() if self.created_at else None}


class DatasetRunLink(Base):
    __tablename__ = "dataset_run_links"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"),
                                                    primary_key=True, index=True)
    context: Mapped[str] = mapped_column(String(50), default="input")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name@3`` -> ("name", 3); ``name`` or ``name@latest`` -> ("name", None)."""
    name, sep, version = ref.partition("@")
    if not name:
        raise InputError(f"{ref!r} is not a dataset reference", hint="write NAME@VERSION, e.g. penguins@1")
    if not sep or version in ("", "latest"):
        return name, None
    if not version.isdigit():
        raise InputError(f"{ref!r}: the version must be a number or 'latest'", hint="e.g. penguins@2")
    return name, int(version)


def add_version(session: Session, *, name: str, path: str, format: str, oid: str, size_bytes: int, rows: int,
                columns: Sequence[dict[str, str]], schema: str, profile_oid: str | None,
                warnings: Sequence[str] = (), user: str | None = None,
                classified: Mapping[str, Sequence[str]] | None = None) -> tuple[DatasetVersion, bool]:
    """Record a version; returns (version, created). Same name + same content -> the existing one
    (``classified`` is then added to what it records, see ``add_classified``)."""
    same = session.scalar(select(DatasetVersion).where(DatasetVersion.name == name, DatasetVersion.oid == oid)
                          .order_by(DatasetVersion.version.desc()).limit(1))
    if same is not None:
        add_classified(session, same, classified or {})
        return same, False
    newest = session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name))
    row = DatasetVersion(name=name, version=(newest or 0) + 1, path=path, format=format, oid=oid,
                         size_bytes=size_bytes, rows=rows, columns=json.dumps(list(columns)), schema=schema,
                         profile_oid=profile_oid, warnings=json.dumps(list(warnings)), user=user,
                         classified=_classes_json(merge_classes({}, classified or {})))
    session.add(row)
    session.flush()
    return row, True


def merge_classes(*parts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The union of ``{classification: columns}`` mappings, sorted, without empty classes."""
    found: dict[str, set[str]] = {}
    for part in parts:
        for label, columns in part.items():
            found.setdefault(label, set()).update(columns)
    return {label: sorted(cols) for label, cols in sorted(found.items()) if cols}


def _classes_json(classes: Mapping[str, Sequence[str]]) -> str | None:
    return json.dumps(classes, sort_keys=True) if classes else None


def add_classified(session: Session, version: DatasetVersion, classified: Mapping[str, Sequence[str]]) -> bool:
    """Add ``classified`` columns to what ``version`` records (a classification is never dropped:
    a column once found to hold personal data stays classified). Returns whether anything changed."""
    merged = merge_classes(version.classification(), classified)
    if merged == version.classification():
        return False
    version.classified = _classes_json(merged)
    session.flush()
    return True


def versions_read_by(session: Session, run_ids: Iterable[str]) -> list[DatasetVersion]:
    """The dataset versions linked to any of ``run_ids`` (what those runs read), in one query."""
    ids = sorted(set(run_ids))
    if not ids:
        return []
    return list(session.scalars(select(DatasetVersion).join(
        DatasetRunLink, DatasetRunLink.dataset_version_id == DatasetVersion.id)
        .where(DatasetRunLink.run_id.in_(ids)).distinct().order_by(DatasetVersion.name, DatasetVersion.version)))


def get_version(session: Session, ref: str) -> DatasetVersion:
    """The version ``name@V`` (or the newest for ``name`` / ``name@latest``)."""
    name, version = parse_ref(ref)
    query = select(DatasetVersion).where(DatasetVersion.name == name)
    query = query.where(DatasetVersion.version == version) if version is not None else query.order_by(DatasetVersion.version.desc())
    row = session.scalar(query.limit(1))
    if row is not None:
        return row
    known = list(session.scalars(select(DatasetVersion.version).where(DatasetVersion.name == name)))
    if known:
        raise NotFound(f"dataset {name!r} has no version {version}",
                       hint="versions: " + ", ".join(map(str, sorted(known))))
    names = list(session.scalars(select(DatasetVersion.name).distinct()))
    hint = did_you_mean(name, names) if names else "add one first: shipyard data add PATH --name NAME"
    raise NotFound(f"no dataset called {name!r}", hint=hint)


def list_versions(session: Session, name: str | None = None) -> list[DatasetVersion]:
    query = select(DatasetVersion).order_by(DatasetVersion.name, DatasetVersion.version)
    if name is not None:
        query = query.where(DatasetVersion.name == name)
    return list(session.scalars(query))


def versions_by_path_oid(session: Session, pairs: Iterable[tuple[str, str]]) -> list[DatasetVersion]:
    """Versions whose (path, content id) match any of ``pairs``, in one query."""
    pairs = list(pairs)
    if not pairs:
        return []
    oids = {oid for _, oid in pairs}
    wanted = set(pairs)
    rows = session.scalars(select(DatasetVersion).where(DatasetVersion.oid.in_(oids))
                           .order_by(DatasetVersion.name, DatasetVersion.version))
    return [r for r in rows if (r.path, r.oid) in wanted]


def link_runs(session: Session, run_id: str, version_ids: Iterable[int], context: str = "input") -> None:
    """Record that ``run_id`` read these dataset versions (idempotent)."""
    ids = sorted(set(version_ids))
    if not ids:
        return
    have = set(session.scalars(select(DatasetRunLink.dataset_version_id).where(
        DatasetRunLink.run_id == run_id, DatasetRunLink.dataset_version_id.in_(ids))))
    session.add_all(DatasetRunLink(run_id=run_id, dataset_version_id=i, context=context) for i in ids if i not in have)
    session.flush()


def runs_reading(session: Session, version_id: int) -> list[str]:
    return list(session.scalars(select(DatasetRunLink.run_id).where(DatasetRunLink.dataset_version_id == version_id)
                                .order_by(DatasetRunLink.created_at)))
