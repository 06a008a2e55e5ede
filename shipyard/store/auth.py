"""Auth tables and their queries: principals, projects, roles per project, API tokens, browser sessions.

Plain rows and batch queries only; the rules (who may do what, password and token checks, the
audit event of every write) live in ``shipyard.auth``. Tokens are kept as SHA-256 hashes.
Times are float seconds since the epoch (UTC) so SQLite and PostgreSQL compare them alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.store.base import Base


class AuthPrincipal(Base):
    """A user (``kind='user'``) or a service account (``kind='service'``, owned by a project)."""

    __tablename__ = "auth_principals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_project: Mapped[str | None] = mapped_column(String(100), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class AuthProject(Base):
    """A project: the unit roles are granted on."""

    __tablename__ = "auth_projects"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))


class AuthRole(Base):
    """One principal's role on one project."""

    __tablename__ = "auth_roles"
    principal_id: Mapped[int] = mapped_column(ForeignKey("auth_principals.id", ondelete="CASCADE"), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("auth_projects.name", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))


class AuthToken(Base):
    """An API token: its hash, display prefix, owner, scopes, project, expiry and use."""

    __tablename__ = "auth_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("auth_principals.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(Text)
    project: Mapped[str | None] = mapped_column(String(100), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuthSession(Base):
    """A browser session: the SHA-256 of the id its cookie carries, who, how, until when, and its end."""

    __tablename__ = "auth_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    via: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def principal_by_name(session: Session, name: str, *, for_update: bool = False) -> AuthPrincipal | None:
    """The principal called ``name`` (row-locked on PostgreSQL when ``for_update``)."""
    query = select(AuthPrincipal).where(AuthPrincipal.name == name)
    return session.scalars(query.with_for_update() if for_update else query).first()


def principals(session: Session, ids: Iterable[int] | None = None) -> list[AuthPrincipal]:
    """All principals (or those with the given ids), by name."""
    query = select(AuthPrincipal).order_by(AuthPrincipal.name)
    if ids is not None:
        query = query.where(AuthPrincipal.id.in_(list(ids)))
    return list(session.scalars(query))


def any_admin(session: Session) -> bool:
    """True when at least one enabled admin exists."""
    query = select(AuthPrincipal.id).where(AuthPrincipal.is_admin.is_(True), AuthPrincipal.disabled.is_(False))
    return session.scalars(query.limit(1)).first() is not None


def project(session: Session, name: str) -> AuthProject | None:
    """The project ``name``, or None."""
    return session.get(AuthProject, name)


def projects(session: Session) -> list[AuthProject]:
    """Every project, by name."""
    return list(session.scalars(select(AuthProject).order_by(AuthProject.name)))


def roles(session: Session, principal_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """principal id -> {project: role}, for many principals in one query."""
    ids = list(principal_ids)
    found: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for row in session.scalars(select(AuthRole).where(AuthRole.principal_id.in_(ids))):
            found[row.principal_id][row.project] = row.role
    return found


def members(session: Session, project_name: str) -> list[tuple[str, str]]:
    """(principal name, role) of everyone with a role on the project."""
    query = (select(AuthPrincipal.name, AuthRole.role).join(AuthRole, AuthRole.principal_id == AuthPrincipal.id)
             .where(AuthRole.project == project_name).order_by(AuthPrincipal.name))
    return [(name, role) for name, role in session.execute(query)]


def set_role(session: Session, principal_id: int, project_name: str, role: str | None) -> str | None:
    """Grant ``role`` (or remove the role when None); returns the role held before."""
    row = session.get(AuthRole, (principal_id, project_name))
    before = row.role if row else None
    if role is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(AuthRole(principal_id=principal_id, project=project_name, role=role))
    else:
        row.role = role
    session.flush()
    return before


def tokens(session: Session, principal_id: int | None = None) -> list[tuple[AuthToken, str]]:
    """(token row, owner name) of every token, or of one principal's, newest first."""
    query = (select(AuthToken, AuthPrincipal.name).join(AuthPrincipal, AuthPrincipal.id == AuthToken.principal_id)
             .order_by(AuthToken.id.desc()))
    if principal_id is not None:
        query = query.where(AuthToken.principal_id == principal_id)
    return [(tok, name) for tok, name in session.execute(query)]


def tokens_by_prefix(session: Session, prefix: str) -> list[AuthToken]:
    """The tokens whose display prefix is ``prefix`` (normally one)."""
    return list(session.scalars(select(AuthToken).where(AuthToken.prefix == prefix)))


def live_tokens(session: Session) -> list[tuple[AuthToken, AuthPrincipal]]:
    """Every unrevoked token of an enabled principal, with its principal (one query)."""
    query = (select(AuthToken, AuthPrincipal).join(AuthPrincipal, AuthPrincipal.id == AuthToken.principal_id)
             .where(AuthToken.revoked_at.is_(None), AuthPrincipal.disabled.is_(False)))
    return [(tok, who) for tok, who in session.execute(query)]


def touch_tokens(session: Session, last_used: Mapping[int, float]) -> None:
    """Record the last use of many tokens in one statement (the token cache flushes these on refresh)."""
    if not last_used:
        return
    table = AuthToken.__table__
    newer = or_(table.c.last_used_at.is_(None), table.c.last_used_at < bindparam("b_at"))
    statement = update(table).where(table.c.id == bindparam("b_id"), newer).values(last_used_at=bindparam("b_at"))
    session.execute(statement, [{"b_id": token_id, "b_at": at} for token_id, at in last_used.items()])


def live_session(session: Session, digest: str, now: float) -> AuthSession | None:
    """The unrevoked, unexpired session whose id hashes to ``digest``."""
    return session.scalars(select(AuthSession).where(AuthSession.hash == digest, AuthSession.revoked_at.is_(None),
                                                     AuthSession.expires_at > now)).first()


def end_sessions(session: Session, now: float, *, digest: str | None = None, name: str | None = None) -> int:
    """Revoke the session with ``digest``, or every live session of ``name``; returns how many ended."""
    table = AuthSession.__table__
    which = table.c.hash == digest if digest is not None else table.c.name == name
    result = session.execute(update(table).where(which, table.c.revoked_at.is_(None)).values(revoked_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
