"""Registry operations over the store: register, resolve, aliases, verdicts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard import audit
from shipyard.errors import CheckFailed, InputError, NotFound, UsageError
from shipyard.models.signature import Signature
from shipyard.store import registry as repo
from shipyard.store import runs as runs_repo

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")
VERSIONISH = re.compile(r"[vV]?\d+")
RESERVED_ALIASES = {"latest"}
CHAMPION = "champion"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as services and interfaces see it."""

    name: str
    version: int
    model_oid: str
    flavor: str
    run_id: str | None = None
    signature: Signature | None = None
    profile: dict[str, Any] | None = None
    profile_oid: str | None = None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    source: str | None = None
    size_bytes: int = 0
    trusted: bool = False
    user: str | None = None
    created_at: int = 0
    lineage: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None
    content_oid: str | None = None  # hash of the model file: one version per content (None before 0009)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def passed_gate(self) -> bool:
        return bool(self.verdict and self.verdict.get("passed"))

    def reference_profile(self) -> Any:
        """The training data's profile as a ``shipyard.data.profile.Profile`` (None if not stored)."""
        if self.profile is None:
            return None
        from shipyard.data.profile import Profile

        return Profile.from_dict(self.profile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "ref": self.ref, "model_oid": self.model_oid,
            "content_oid": self.content_oid, "flavor": self.flavor, "run_id": self.run_id, "aliases": list(self.aliases), "tags": self.tags,
            "description": self.description, "source": self.source, "size_bytes": self.size_bytes,
            "trusted": self.trusted, "user": self.user, "created_at": self.created_at,
            "signature": self.signature.to_dict() if self.signature else None,
            "profile_oid": self.profile_oid, "lineage": self.lineage,
            "verdict": None if self.verdict is None else {"passed": self.verdict.get("passed"),
                                                          "champion_version": self.verdict.get("champion_version"),
                                                          "created_at": self.verdict.get("created_at")},
        }


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InputError(f"model name {name!r} is not allowed",
                         hint="use letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit")
    return name


def validate_alias(alias: str) -> str:
    """Aliases are free-form names, but never something that reads as a version (``3``, ``v3``)."""
    if VERSIONISH.fullmatch(alias):
        raise InputError(f"alias {alias!r} looks like a version number, so NAME@{alias} would be ambiguous",
                         hint="pick a name such as 'champion', 'challenger' or 'staging'")
    if alias.lower() in RESERVED_ALIASES:
        raise InputError(f"alias {alias!r} is reserved", hint="pick another name")
    if not ALIAS_RE.fullmatch(alias):
        raise InputError(f"alias {alias!r} is not allowed",
                         hint="use letters, digits, '_' and '-', starting with a letter (at most 100)")
    return alias


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``name@3`` -> (name, 3, None); ``name@champion`` -> (name, None, 'champion'); ``name`` -> latest."""
    name, sep, target = ref.partition("@")
    if not name:
        raise UsageError(f"{ref!r} is not a model reference", hint="write NAME@VERSION or NAME@ALIAS, e.g. penguins@3")
    validate_name(name)
    if not sep:
        return name, None, None
    if not target:
        raise UsageError(f"{ref!r} names no version after '@'", hint="write NAME@VERSION or NAME@ALIAS")
    match = re.fullmatch(r"[vV]?(\d+)", target)
    if match:
        return name, int(match.group(1)), None
    return name, None, target


def _row_for(session: Session, ref: str) -> tuple[repo.RegisteredModel, repo.ModelVersionRow]:
    name, version, alias = parse_ref(ref)
    model = repo.get_model(session, name)
    if version is not None:
        return model, repo.get_version(session, model, version)
    if alias is not None:
        row = repo.alias_target(session, model, alias)
        if row is None:
            known = sorted(repo.aliases_many(session, [model.id])[model.id])
            hint = ("aliases: " + ", ".join(known)) if known else f"set one with 'shipyard models alias {name} {alias} VERSION'"
            raise NotFound(f"model {name!r} has no alias {alias!r}", hint=hint)
        return model, row
    rows = repo.list_versions(session, [model.id])
    if not rows:
        raise NotFound(f"model {name!r} has no versions yet")
    return model, rows[-1]


def _to_versions(session: Session, model_names: dict[int, str],
                 rows: list[repo.ModelVersionRow]) -> list[ModelVersion]:
    ids = [r.id for r in rows]
    tags = repo.version_tags_many(session, ids)
    aliases = repo.aliases_many(session, list(model_names))
    verdicts = repo.verdicts_of(session, ids)
    out = []
    for row in rows:
        mine = tuple(sorted(a for a, v in aliases[row.model_id].items() if v == row.version))
        latest = verdicts[row.id][-1] if verdicts[row.id] else None
        verdict = None
        if latest is not None:
            verdict = {**json.loads(latest.body), "passed": latest.passed, "champion_version": latest.champion_version,
                       "created_at": latest.created_at, "markdown": latest.markdown}
        out.append(ModelVersion(
            name=model_names[row.model_id], version=row.version, model_oid=row.model_oid, flavor=row.flavor,
            run_id=row.run_id, signature=Signature.from_dict(_load(row.signature)), profile=_load(row.profile),
            profile_oid=row.profile_oid, aliases=mine, tags=tags[row.id], description=row.description,
            source=row.source, size_bytes=row.size_bytes, trusted=row.trusted, user=row.user,
            created_at=row.created_at, lineage=_load(row.lineage) or {}, verdict=verdict,
            content_oid=row.content_oid,
        ))
    return out


def resolve(session: Session, ref: str) -> ModelVersion:
    """The version ``ref`` names: ``name@3``, ``name@v3``, ``name@champion`` or ``name`` (newest)."""
    model, row = _row_for(session, ref)
    return _to_versions(session, {model.id: model.name}, [row])[0]


def find_versions(session: Session, name: str | None = None, run_id: str | None = None) -> list[ModelVersion]:
    """Every version (of one model, or produced by one run), oldest first."""
    if name is not None:
        model = repo.get_model(session, name)
        names = {model.id: model.name}
        rows = repo.list_versions(session, [model.id], run_id=run_id)
    else:
        names = {m.id: m.name for m in repo.list_models(session)}
        rows = repo.list_versions(session, None, run_id=run_id)
    return sorted(_to_versions(session, names, rows), key=lambda v: (v.name, v.version))


def versions_trained_on(session: Session, digest: str) -> list[ModelVersion]:
    """Versions whose run (or its pipeline) read a dataset with this digest (``data used-by``)."""
    run_ids = set(session.scalars(select(runs_repo.DatasetInput.run_id).where(runs_repo.DatasetInput.digest == digest)))
    parents = set(session.scalars(select(runs_repo.Run.parent_run_id).where(runs_repo.Run.id.in_(run_ids)))) if run_ids else set()
    candidates = run_ids | {p for p in parents if p}
    names = {m.id: m.name for m in repo.list_models(session)}
    rows = [r for r in repo.list_versions(session)
            if r.run_id in candidates or digest in {d.get("oid") for d in (_load(r.lineage) or {}).values() if isinstance(d, dict)}]
    return sorted(_to_versions(session, names, rows), key=lambda v: (v.name, v.version))


def version_with_content(session: Session, name: str, content_oid: str, flavor: str) -> ModelVersion | None:
    """The newest version of ``name`` whose model file has this content hash (and flavor), if any.

    This is the registry's identity rule: a model is its file's content, so registering the same
    content again finds this version instead of numbering a new one.
    """
    model = repo.find_model(session, name)
    if model is None:
        return None
    rows = repo.versions_with_content(session, model, content_oid, flavor)
    return _to_versions(session, {model.id: model.name}, rows[-1:])[0] if rows else None


def tag_version(session: Session, ref: str, tags: dict[str, str], *, actor: str | None = None) -> ModelVersion:
    """Add (or overwrite) tags of an existing version (audited); returns the version."""
    model, row = _row_for(session, ref)
    if tags:
        repo.set_version_tags(session, row.id, tags)
        audit.record(session, "model.tag", f"{model.name}@{row.version}", {"tags": tags}, actor=actor)
    return _to_versions(session, {model.id: model.name}, [row])[0]


def register(session: Session, name: str, *, model_oid: str, flavor: str, content_oid: str | None = None,
             run_id: str | None = None, source: str | None = None, signature: Signature | None = None, profile: dict | None = None,
             profile_oid: str | None = None, lineage: dict | None = None, description: str | None = None,
             size_bytes: int = 0, trusted: bool = False, tags: dict[str, str] | None = None,
             actor: str | None = None) -> ModelVersion:
    """Record an already packaged model as the next version of ``name`` (audited).

    This always numbers a new version; ``content_oid`` (the model file's hash) is stored so that
    ``version_with_content`` can find it. Callers that want one version per content check first
    (``registry.project.register_from_project`` does).
    """
    model, row = record_version(
        session, name, model_oid=model_oid, flavor=flavor, content_oid=content_oid, run_id=run_id, source=source,
        signature=signature, profile=profile, profile_oid=profile_oid, lineage=lineage, description=description,
        size_bytes=size_bytes, trusted=trusted, tags=tags, actor=actor)
    return _to_versions(session, {model.id: model.name}, [row])[0]


def record_version(session: Session, name: str, *, model_oid: str, flavor: str, content_oid: str | None = None,
                   run_id: str | None = None, source: str | None = None, signature: Signature | None = None,
                   profile: dict | None = None, profile_oid: str | None = None, lineage: dict | None = None,
                   description: str | None = None, size_bytes: int = 0, trusted: bool = False,
                   tags: dict[str, str] | None = None,
                   actor: str | None = None) -> tuple[repo.RegisteredModel, repo.ModelVersionRow]:
    """``register`` without reading the version back: the model and the new row (for a caller
    that answers in its own shape, such as MLflow's ``model-versions/create``)."""
    validate_name(name)
    if run_id is not None:
        runs_repo.get_run(session, run_id)
    model = repo.get_model(session, name, create=True)
    who = actor or audit.current_actor()
    row = repo.create_version(
        session, model, model_oid=model_oid, content_oid=content_oid, flavor=flavor, run_id=run_id, source=source,
        signature=signature.to_dict() if signature else None, profile=profile, profile_oid=profile_oid,
        lineage=lineage, description=description, size_bytes=size_bytes, trusted=trusted, user=who, tags=tags,
    )
    audit.record(session, "model.register", f"{name}@{row.version}",
                 {"model_oid": model_oid, "content_oid": content_oid, "flavor": flavor, "run_id": run_id,
                  "trusted": trusted}, actor=who)
    return model, row


def set_alias(session: Session, name: str, alias: str, version: int, *, force: bool = False,
              reason: str | None = None, actor: str | None = None) -> int | None:
    """Point ``alias`` at ``version``; returns the version it pointed at before (audited).

    Moving ``champion`` to a version without a passing gate verdict is refused unless ``force``
    and a ``reason`` are given; the forced move and its reason are audited.
    """
    validate_alias(alias)
    model = repo.get_model(session, name)
    row = repo.get_version(session, model, version)
    forced = False
    if alias == CHAMPION:
        verdicts = repo.verdicts_of(session, [row.id])[row.id]
        latest = verdicts[-1] if verdicts else None
        if latest is None or not latest.passed:
            why = "has no gate verdict" if latest is None else "failed its latest gate"
            if not force:
                raise CheckFailed(f"{name}@{version} {why}; refusing to make it {CHAMPION}",
                                  hint=f"run 'shipyard gate {name}@{version}' first, or pass --force --reason \"...\"")
            if not reason or not reason.strip():
                raise UsageError("--force needs --reason \"...\" (the reason is kept in the audit log)")
            forced = True
    who = actor or audit.current_actor()
    previous = repo.put_alias(session, model, alias, row, actor=who, forced=forced, reason=reason)
    audit.record(session, "model.alias", f"{name}@{alias}",
                 {"alias": alias, "version": version, "previous": previous, "forced": forced, "reason": reason},
                 actor=who)
    return previous


def delete_alias(session: Session, name: str, alias: str, *, actor: str | None = None) -> int | None:
    """Remove ``alias`` (audited); returns the version it pointed at."""
    model = repo.get_model(session, name)
    if repo.alias_target(session, model, alias) is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    who = actor or audit.current_actor()
    previous = repo.put_alias(session, model, alias, None, actor=who)
    audit.record(session, "model.alias.delete", f"{name}@{alias}", {"alias": alias, "previous": previous}, actor=who)
    return previous


def record_verdict(session: Session, ref: str, body: dict[str, Any], markdown: str, *,
                   actor: str | None = None) -> None:
    """Store a gate verdict (JSON + Markdown) with the version it judged (audited)."""
    model, row = _row_for(session, ref)
    passed = bool(body.get("passed"))
    champion = body.get("champion", {}) or {}
    repo.add_verdict(session, row, passed=passed, body=body, markdown=markdown,
                     champion_version=champion.get("version"))
    audit.record(session, "model.gate", f"{model.name}@{row.version}",
                 {"passed": passed, "champion_version": champion.get("version"),
                  "failed": [c["name"] for c in body.get("checks", []) if c.get("passed") is False]}, actor=actor)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
