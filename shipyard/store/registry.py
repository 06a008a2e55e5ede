"""Registered models, their versions, aliases (with history), tags and gate verdicts.

A registered model has integer versions numbered from 1. A version points at one packaged model
object (``model_oid``, a folder manifest holding the model file and ``shipyard-model.json``), the
content hash of the model file itself (``content_oid``: what decides "same model"), its flavor, the run that produced it, its signature and the reference profile of its training data.
Aliases are free-form names pointing at one version each; every move is kept in ``alias_history``.
Verdicts of gate runs are stored with the version they judged. Batch functions are the primitive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import AlreadyExists, NotFound, did_you_mean
from shipyard.store.base import Base

DELETED = "DELETED"   # status of a deleted version (kept so numbers are never reused)


def now_ms() -> int:
    return int(time.time() * 1000)


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


class RegisteredModelTag(Base):
    __tablename__ = "registered_model_tags"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    model_oid: Mapped[str] = mapped_column(String(80))
    content_oid: Mapped[str | None] = mapped_column(String(80), nullable=True)
    flavor: Mapped[str] = mapped_column(String(30))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    profile_oid: Mapped[str | None] = mapped_column(String(80), nullable=True)
    profile: Mapped[str | None] = mapped_column(Text, nullable=True)
    lineage: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(30), default="READY")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    __table_args__ = (UniqueConstraint("model_id", "version"),
                      Index("ix_model_versions_model_id_content_oid", "model_id", "content_oid"))


class ModelVersionTag(Base):
    __tablename__ = "model_version_tags"
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


class AliasHistory(Base):
    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


class VerdictRow(Base):
    __tablename__ = "model_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    champion_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    markdown: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


# -- registered models -----------------------------------------------------------------------
def create_model(session: Session, name: str, description: str | None = None,
                 tags: Mapping[str, str] | None = None) -> RegisteredModel:
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is not None:
        raise AlreadyExists(f"registered model {name!r} already exists")
    model = RegisteredModel(name=name, description=description)
    session.add(model)
    session.flush()
    if tags:
        set_model_tags(session, model.id, tags)
    return model


def get_model(session: Session, name: str, *, create: bool = False) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        if create:
            return create_model(session, name)
        known = session.scalars(select(RegisteredModel.name)).all()
        raise NotFound(f"model {name!r} is not registered",
                       hint=did_you_mean(name, known) or "register one with 'shipyard models register NAME --path model/'")
    return model


def find_model(session: Session, name: str) -> RegisteredModel | None:
    """The registered model called ``name``, or None."""
    return session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))


def list_models(session: Session, name_like: str | None = None, limit: int | None = 1000,
                offset: int = 0) -> list[RegisteredModel]:
    """Models by name (``limit=None``: all of them)."""
    query = select(RegisteredModel).order_by(RegisteredModel.name).limit(limit).offset(offset)
    if name_like:
        query = query.where(RegisteredModel.name.like(name_like))
    return list(session.scalars(query))


def delete_model(session: Session, name: str) -> None:
    model = get_model(session, name)
    ids = list(session.scalars(select(ModelVersionRow.id).where(ModelVersionRow.model_id == model.id)))
    session.execute(delete(ModelAlias).where(ModelAlias.model_id == model.id))
    session.execute(delete(AliasHistory).where(AliasHistory.model_id == model.id))
    if ids:
        session.execute(delete(VerdictRow).where(VerdictRow.version_id.in_(ids)))
        session.execute(delete(ModelVersionTag).where(ModelVersionTag.version_id.in_(ids)))
        session.execute(delete(ModelVersionRow).where(ModelVersionRow.id.in_(ids)))
    session.execute(delete(RegisteredModelTag).where(RegisteredModelTag.model_id == model.id))
    session.delete(model)
    session.flush()


def set_model_tags(session: Session, model_id: int, tags: Mapping[str, object]) -> None:
    for key, value in tags.items():
        session.merge(RegisteredModelTag(model_id=model_id, key=key, value=str(value)))
    session.flush()


def delete_model_tag(session: Session, model_id: int, key: str) -> None:
    session.execute(delete(RegisteredModelTag).where(RegisteredModelTag.model_id == model_id,
                                                     RegisteredModelTag.key == key))


def model_tags_many(session: Session, model_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in model_ids}
    if model_ids:
        for tag in session.scalars(select(RegisteredModelTag).where(RegisteredModelTag.model_id.in_(list(model_ids)))):
            out[tag.model_id][tag.key] = tag.value
    return out


# -- versions ----------------------------------------------------------------------------------
def create_version(session: Session, model: RegisteredModel, *, model_oid: str, flavor: str,
                   content_oid: str | None = None, run_id: str | None = None, source: str | None = None, signature: dict | None = None,
                   profile_oid: str | None = None, profile: dict | None = None,
                   lineage: dict | None = None, description: str | None = None, size_bytes: int = 0,
                   trusted: bool = False, user: str | None = None,
                   tags: Mapping[str, str] | None = None) -> ModelVersionRow:
    """Insert the next version of ``model`` (numbered from 1)."""
    newest = session.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id))
    row = ModelVersionRow(
        model_id=model.id, version=(newest or 0) + 1, model_oid=model_oid, content_oid=content_oid, flavor=flavor,
        run_id=run_id,
        source=source, signature=_dump(signature), profile_oid=profile_oid, profile=_dump(profile),
        lineage=_dump(lineage), description=description, size_bytes=size_bytes, trusted=trusted, user=user,
    )
    session.add(row)
    model.updated_at = now_ms()
    session.flush()
    if tags:   # a new version has no tags yet: plain inserts
        session.add_all([ModelVersionTag(version_id=row.id, key=k, value=str(v)) for k, v in tags.items()])
        session.flush()
    return row


def get_version(session: Session, model: RegisteredModel, version: int) -> ModelVersionRow:
    row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id,
                                                       ModelVersionRow.version == version, _live()))
    if row is None:
        known = session.scalars(select(ModelVersionRow.version).where(ModelVersionRow.model_id == model.id, _live())
                                .order_by(ModelVersionRow.version)).all()
        raise NotFound(f"model {model.name!r} has no version {version}",
                       hint=("versions: " + ", ".join(map(str, known))) if known else "it has no versions yet")
    return row


def models_by_id(session: Session, model_ids: Sequence[int]) -> list[RegisteredModel]:
    """The registered models with these ids."""
    if not model_ids:
        return []
    return list(session.scalars(select(RegisteredModel).where(RegisteredModel.id.in_(list(model_ids)))))


def newest_version(session: Session, model: RegisteredModel) -> ModelVersionRow | None:
    """The highest-numbered version of ``model``, or None."""
    return session.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id, _live())
                          .order_by(ModelVersionRow.version.desc()).limit(1))


def list_versions(session: Session, model_ids: Sequence[int] | None = None, run_id: str | None = None,
                  limit: int | None = 10000) -> list[ModelVersionRow]:
    """Versions by model and number (``limit=None``: all of them)."""
    query = select(ModelVersionRow).where(_live()).order_by(ModelVersionRow.model_id, ModelVersionRow.version).limit(limit)
    if model_ids is not None:
        query = query.where(ModelVersionRow.model_id.in_(list(model_ids)))
    if run_id is not None:
        query = query.where(ModelVersionRow.run_id == run_id)
    return list(session.scalars(query))


def versions_with_content(session: Session, model: RegisteredModel, content_oid: str,
                          flavor: str) -> list[ModelVersionRow]:
    """The versions of ``model`` whose model file has this content hash and flavor, oldest first."""
    return list(session.scalars(select(ModelVersionRow).where(
        ModelVersionRow.model_id == model.id, ModelVersionRow.content_oid == content_oid,
        ModelVersionRow.flavor == flavor, _live()).order_by(ModelVersionRow.version)))


def delete_version(session: Session, model: RegisteredModel, row: ModelVersionRow) -> None:
    """Delete a version (its aliases must be gone). The row stays, marked ``DELETED`` and hidden
    from every lookup, so version numbers are never reused (as in MLflow) and its verdicts and
    audit trail keep pointing at something."""
    session.execute(delete(ModelVersionTag).where(ModelVersionTag.version_id == row.id))
    row.status = DELETED
    row.updated_at = model.updated_at = now_ms()
    session.flush()


def _live() -> Any:
    return ModelVersionRow.status != DELETED


def set_version_tags(session: Session, version_id: int, tags: Mapping[str, object]) -> None:
    for key, value in tags.items():
        session.merge(ModelVersionTag(version_id=version_id, key=key, value=str(value)))
    session.flush()


def delete_version_tag(session: Session, version_id: int, key: str) -> None:
    session.execute(delete(ModelVersionTag).where(ModelVersionTag.version_id == version_id,
                                                  ModelVersionTag.key == key))


def version_tags_many(session: Session, version_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in version_ids}
    if version_ids:
        for tag in session.scalars(select(ModelVersionTag).where(ModelVersionTag.version_id.in_(list(version_ids)))):
            out[tag.version_id][tag.key] = tag.value
    return out


# -- aliases -------------------------------------------------------------------------------
def aliases_many(session: Session, model_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """{model_id: {alias: version number}}."""
    out: dict[int, dict[str, int]] = {i: {} for i in model_ids}
    if model_ids:
        rows = session.execute(
            select(ModelAlias.model_id, ModelAlias.alias, ModelVersionRow.version)
            .join(ModelVersionRow, ModelVersionRow.id == ModelAlias.version_id)
            .where(ModelAlias.model_id.in_(list(model_ids))))
        for model_id, alias, version in rows:
            out[model_id][alias] = version
    return out


def alias_target(session: Session, model: RegisteredModel, alias: str) -> ModelVersionRow | None:
    return session.scalar(select(ModelVersionRow).join(ModelAlias, ModelAlias.version_id == ModelVersionRow.id)
                          .where(ModelAlias.model_id == model.id, ModelAlias.alias == alias))


def put_alias(session: Session, model: RegisteredModel, alias: str, row: ModelVersionRow | None, *,
              actor: str | None, forced: bool = False, reason: str | None = None) -> int | None:
    """Point ``alias`` at ``row`` (or delete it when None); keeps history. Returns the previous version."""
    current = session.get(ModelAlias, (model.id, alias))
    previous = None
    if current is not None:
        previous = session.scalar(select(ModelVersionRow.version).where(ModelVersionRow.id == current.version_id))
    if row is None:
        if current is not None:
            session.delete(current)
    elif current is None:
        session.add(ModelAlias(model_id=model.id, alias=alias, version_id=row.id))
    else:
        current.version_id = row.id
        current.updated_at = now_ms()
    session.add(AliasHistory(model_id=model.id, alias=alias, version=row.version if row else None,
                             previous_version=previous, actor=actor, forced=forced, reason=reason))
    session.flush()
    return previous


def alias_history(session: Session, model: RegisteredModel, alias: str | None = None) -> list[AliasHistory]:
    query = select(AliasHistory).where(AliasHistory.model_id == model.id).order_by(AliasHistory.id)
    if alias:
        query = query.where(AliasHistory.alias == alias)
    return list(session.scalars(query))


# -- verdicts ---------------------------------------------------------------------------------
def add_verdict(session: Session, row: ModelVersionRow, *, passed: bool, body: dict, markdown: str,
                champion_version: int | None) -> VerdictRow:
    verdict = VerdictRow(version_id=row.id, passed=passed, body=json.dumps(body, sort_keys=True, default=str),
                         markdown=markdown, champion_version=champion_version)
    session.add(verdict)
    session.flush()
    return verdict


def verdicts_of(session: Session, version_ids: Iterable[int]) -> dict[int, list[VerdictRow]]:
    """Every verdict of each version, newest last."""
    ids = list(version_ids)
    out: dict[int, list[VerdictRow]] = {i: [] for i in ids}
    if ids:
        for v in session.scalars(select(VerdictRow).where(VerdictRow.version_id.in_(ids)).order_by(VerdictRow.id)):
            out[v.version_id].append(v)
    return out


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)
