"""Users, service accounts, projects, roles and tokens on the store; every write is audited.

Each function is one transaction: the change and its hash-chained audit event commit together.
``actor`` names who did it (a principal's ``actor``, or ``audit.current_actor()`` on the CLI).
Login answers the same for an unknown user, a wrong password, a disabled or a locked account,
after the same Argon2 work; repeated failures lock the account for a while (both audited).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from shipyard import audit
from shipyard.auth import passwords
from shipyard.auth.model import Principal, check_role
from shipyard.errors import AlreadyExists, InputError, NotFound, ShipyardError, did_you_mean
from shipyard.store import Store
from shipyard.store import auth as repo

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class LoginFailed(ShipyardError):
    """A login was refused; the message never says which part was wrong."""

    exit_code = 1
    http_status = 401


@dataclass(frozen=True)
class LoginPolicy:
    """How many failed logins in a row lock an account, and for how long (seconds)."""

    max_failures: int = 5
    lockout_s: float = 900.0


def check_name(name: str, what: str = "user name") -> str:
    """``name`` if it is a valid user or service account name, else an InputError naming the rule."""
    if not _NAME.match(name):
        raise InputError(f"{what} {name!r} is not valid",
                         hint="1-100 characters: letters, digits and . _ @ + -, starting with a letter or digit")
    return name


def check_project_name(name: str) -> str:
    """``name`` if it is a valid project name, else an InputError naming the rule."""
    if not _PROJECT.match(name):
        raise InputError(f"project name {name!r} is not valid",
                         hint="1-100 characters: lower-case letters, digits and . _ -, starting with a letter or digit")
    return name


def principal_row(session: Session, name: str, *, for_update: bool = False) -> repo.AuthPrincipal:
    """The stored principal ``name``, or NotFound with the closest names."""
    row = repo.principal_by_name(session, name, for_update=for_update)
    if row is None:
        known = [p.name for p in repo.principals(session)]
        raise NotFound(f"no user or service account {name!r}", hint=did_you_mean(name, known) or "shipyard users list")
    return row


def project_row(session: Session, name: str) -> repo.AuthProject:
    """The stored project ``name``, or NotFound with the closest names and the command to create it."""
    row = repo.project(session, name)
    if row is None:
        known = [p.name for p in repo.projects(session)]
        raise NotFound(f"no project {name!r}", hint=did_you_mean(name, known) or f"shipyard projects create {name}")
    return row


def to_principal(row: repo.AuthPrincipal, roles: dict[str, str], token: repo.AuthToken | None = None) -> Principal:
    """The decision-ready Principal of a stored principal (and of the token it authenticated with)."""
    return Principal(
        name=row.name, kind=row.kind, admin=row.is_admin, roles=MappingProxyType(dict(roles)),
        scopes=None if token is None else frozenset(token.scopes.split()),
        token_project=None if token is None else token.project,
        token_prefix=None if token is None else token.prefix,
    )


def create_project(store: Store, name: str, *, actor: str) -> dict[str, Any]:
    """Create a project (nobody holds a role on it yet)."""
    check_project_name(name)
    with store.write() as session:
        if repo.project(session, name) is not None:
            raise AlreadyExists(f"project {name!r} already exists", hint="shipyard projects list")
        now = time.time()
        session.add(repo.AuthProject(name=name, created_at=now, created_by=actor))
        audit.record(session, "auth.project_created", f"project:{name}", {}, actor=actor)
    return {"name": name, "created_at": now, "created_by": actor}


def list_projects(store: Store) -> list[dict[str, Any]]:
    """Every project with its members and their roles."""
    with store.read() as session:
        return [{"name": p.name, "created_at": p.created_at, "created_by": p.created_by,
                 "members": dict(repo.members(session, p.name))} for p in repo.projects(session)]


def create_user(store: Store, name: str, *, password: str | None = None, admin: bool = False,
                actor: str) -> dict[str, Any]:
    """Add a user (no role on any project; a password only if given, never a default one)."""
    check_name(name)
    hashed = passwords.hash_password(password) if password is not None else None
    with store.write() as session:
        if repo.principal_by_name(session, name) is not None:
            raise AlreadyExists(f"user {name!r} already exists", hint="shipyard users list")
        session.add(repo.AuthPrincipal(name=name, kind="user", password_hash=hashed, is_admin=admin, disabled=False,
                                       failed_logins=0, created_at=time.time()))
        audit.record(session, "auth.user_created", f"user:{name}", {"admin": admin, "password": hashed is not None},
                     actor=actor)
    return {"name": name, "kind": "user", "admin": admin}


def create_service_account(store: Store, name: str, *, project: str, role: str = "editor",
                           actor: str) -> dict[str, Any]:
    """Add a service account owned by ``project`` with ``role`` there; it authenticates by token only."""
    check_name(name, "service account name")
    check_role(role)
    with store.write() as session:
        project_row(session, project)
        if repo.principal_by_name(session, name) is not None:
            raise AlreadyExists(f"{name!r} already exists", hint="shipyard users list")
        row = repo.AuthPrincipal(name=name, kind="service", password_hash=None, is_admin=False, disabled=False,
                                 owner_project=project, failed_logins=0, created_at=time.time())
        session.add(row)
        session.flush()
        repo.set_role(session, row.id, project, role)
        audit.record(session, "auth.user_created", f"service:{name}", {"project": project, "role": role}, actor=actor)
    return {"name": name, "kind": "service", "project": project, "role": role}


def list_users(store: Store) -> list[dict[str, Any]]:
    """Every principal with its kind, flags and roles (no secrets)."""
    with store.read() as session:
        rows = repo.principals(session)
        roles = repo.roles(session, [r.id for r in rows])
        return [{"name": r.name, "kind": r.kind, "admin": r.is_admin, "disabled": r.disabled,
                 "project": r.owner_project, "password": r.password_hash is not None,
                 "locked": bool(r.locked_until and r.locked_until > time.time()), "roles": roles[r.id]}
                for r in rows]


def set_password(store: Store, name: str, password: str, *, actor: str) -> None:
    """Set a user's password (and unlock the account)."""
    hashed = passwords.hash_password(password)
    with store.write() as session:
        row = principal_row(session, name, for_update=True)
        if row.kind != "user":
            raise InputError(f"{name!r} is a service account; it authenticates with tokens only",
                             hint=f"shipyard tokens create --user {name}")
        row.password_hash, row.failed_logins, row.locked_until = hashed, 0, None
        ended = repo.end_sessions(session, time.time(), name=name)  # a stolen session ends with the old password
        audit.record(session, "auth.password_set", f"user:{name}", {"sessions_ended": ended}, actor=actor)


def disable_user(store: Store, name: str, *, actor: str) -> None:
    """Disable a principal: its tokens and password stop working (within the caches' poll interval)."""
    with store.write() as session:
        row = principal_row(session, name, for_update=True)
        row.disabled = True
        ended = repo.end_sessions(session, time.time(), name=name)
        audit.record(session, "auth.user_disabled", f"{row.kind}:{name}", {"sessions_ended": ended}, actor=actor)


def grant(store: Store, project: str, name: str, role: str, *, actor: str) -> str | None:
    """Give ``name`` the ``role`` on ``project``; returns the role held before (audited with both)."""
    check_role(role)
    with store.write() as session:
        project_row(session, project)
        row = principal_row(session, name)
        if row.kind == "service" and row.owner_project != project:
            raise InputError(f"service account {name!r} belongs to project {row.owner_project!r}",
                             hint=f"create a service account in {project!r} instead")
        before = repo.set_role(session, row.id, project, role)
        audit.record(session, "auth.role_granted", f"project:{project}", {"principal": name, "role": role,
                                                                          "before": before}, actor=actor)
    return before


def revoke(store: Store, project: str, name: str, *, actor: str) -> str | None:
    """Remove ``name``'s role on ``project``; returns the role removed (None: there was none)."""
    with store.write() as session:
        project_row(session, project)
        row = principal_row(session, name)
        before = repo.set_role(session, row.id, project, None)
        audit.record(session, "auth.role_revoked", f"project:{project}", {"principal": name, "before": before},
                     actor=actor)
    return before
