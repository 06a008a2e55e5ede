"""API tokens (create, list, revoke), password login with lockout, and the first admin.

A token is shown once by ``create_token`` and stored only as its SHA-256. Checking a token on a
request goes through ``shipyard.auth.cache.TokenCache`` (no database round trip per request).
"""

from __future__ import annotations

import time
from typing import Any

from shipyard import audit
from shipyard.auth import passwords, tokens
from shipyard.auth.model import ALL_PERMISSIONS, Principal, check_scopes
from shipyard.auth.service import LoginFailed, LoginPolicy, principal_row, project_row, to_principal
from shipyard.errors import AlreadyExists, InputError, NotFound
from shipyard.store import Store
from shipyard.store import auth as repo

_LOGIN_FAILED = "login failed: wrong user name or password (or the account is locked for a while)"


def create_token(store: Store, owner: str, *, scopes: list[str] | tuple[str, ...], project: str | None = None,
                 expires_in: float | None = None, name: str = "", actor: str) -> tuple[str, dict[str, Any]]:
    """Mint a token for ``owner``: (the token, shown once; its stored description)."""
    wanted = check_scopes(scopes)
    if not wanted:
        raise InputError("a token needs at least one scope", hint="--scope " + " --scope ".join(("runs:read",
                                                                                                  "models:read")))
    if expires_in is not None and expires_in <= 0:
        raise InputError(f"expires: {expires_in} is not a positive duration", hint="e.g. --expires 90d")
    secret = tokens.new_token()
    now = time.time()
    with store.write() as session:
        who = principal_row(session, owner)
        if who.disabled:
            raise InputError(f"{owner!r} is disabled; it cannot get new tokens")
        if project is not None:
            project_row(session, project)
        if who.kind == "service" and project not in (None, who.owner_project):
            raise InputError(f"service account {owner!r} belongs to project {who.owner_project!r}",
                             hint=f"--project {who.owner_project}")
        project = who.owner_project if who.kind == "service" else project
        row = repo.AuthToken(prefix=tokens.display_prefix(secret), hash=tokens.token_hash(secret), principal_id=who.id,
                             name=name, scopes=" ".join(sorted(wanted)), project=project,
                             expires_at=None if expires_in is None else now + expires_in, created_at=now,
                             created_by=actor)
        session.add(row)
        session.flush()
        info = _describe(row, owner)
        audit.record(session, "auth.token_created", f"token:{row.prefix}", {k: info[k] for k in (
            "id", "owner", "scopes", "project", "expires_at", "name")}, actor=actor)
    return secret, info


def _describe(row: repo.AuthToken, owner: str) -> dict[str, Any]:
    return {"id": row.id, "prefix": row.prefix, "owner": owner, "name": row.name, "scopes": row.scopes.split(),
            "project": row.project, "created_at": row.created_at, "created_by": row.created_by,
            "expires_at": row.expires_at, "last_used_at": row.last_used_at, "revoked_at": row.revoked_at}


def list_tokens(store: Store, owner: str | None = None) -> list[dict[str, Any]]:
    """Every token (or one owner's), newest first: prefix, scopes, project, expiry, last use; never the secret."""
    with store.read() as session:
        owner_id = principal_row(session, owner).id if owner else None
        return [_describe(row, name) for row, name in repo.tokens(session, owner_id)]


def revoke_token(store: Store, ref: str, *, actor: str) -> dict[str, Any]:
    """Revoke the token with id or display prefix ``ref`` (every cache drops it within its poll interval)."""
    with store.write() as session:
        if ref.isdigit():
            row = session.get(repo.AuthToken, int(ref))
            found = [row] if row is not None else []
        else:
            found = repo.tokens_by_prefix(session, tokens.display_prefix(ref))
        if not found:
            raise NotFound(f"no token {ref!r}", hint="give its id or its prefix as 'shipyard tokens list' shows it")
        if len(found) > 1:
            raise InputError(f"the prefix {ref!r} matches {len(found)} tokens", hint="revoke by id instead")
        row = found[0]
        if row.revoked_at is None:
            row.revoked_at = time.time()
            audit.record(session, "auth.token_revoked", f"token:{row.prefix}", {"id": row.id}, actor=actor)
        owner = session.get(repo.AuthPrincipal, row.principal_id)
        return _describe(row, owner.name if owner else "?")


def login(store: Store, name: str, password: str, *, policy: LoginPolicy = LoginPolicy(),
          record_success: bool = True) -> Principal:
    """Check a user name and password; LoginFailed (one message for every cause) when refused.

    The Argon2 check runs in every case, so the time taken does not say whether the user exists.
    Each failure is counted and audited; the ``max_failures``-th in a row locks the account.
    """
    now = time.time()
    with store.write() as session:
        row = repo.principal_by_name(session, name, for_update=True)
        stored = row.password_hash if row is not None else None
        matches = passwords.verify(password, stored)
        usable = row is not None and not row.disabled and not (row.locked_until and row.locked_until > now)
        if matches and usable and row is not None:
            if row.failed_logins or row.locked_until:
                row.failed_logins, row.locked_until = 0, None
            if record_success:
                audit.record(session, "auth.login", f"user:{name}", {}, actor=name)
            return to_principal(row, repo.roles(session, [row.id])[row.id])
        cause = "unknown user" if row is None else ("disabled" if row.disabled else
                                                    "locked" if not usable else "wrong password")
        audit.record(session, "auth.login_failed", f"user:{name}", {"cause": cause}, actor=name)
        if row is not None and cause == "wrong password":
            row.failed_logins += 1
            if row.failed_logins >= policy.max_failures:
                row.locked_until = now + policy.lockout_s
                audit.record(session, "auth.lockout", f"user:{name}",
                             {"failures": row.failed_logins, "until": row.locked_until}, actor=name)
    raise LoginFailed(_LOGIN_FAILED)


def bootstrap_admin(store: Store, name: str = "admin", *, password: str | None = None,
                    actor: str) -> tuple[str, dict[str, Any]] | None:
    """On a store without an admin: create admin ``name`` (no password) and return a one-time token.

    Returns None when an enabled admin already exists. ``shipyard server`` calls this on first start
    with auth on and prints the token once; ``shipyard users add NAME --admin`` does the same.
    """
    from shipyard.auth.service import create_user

    with store.read() as session:
        if repo.any_admin(session):
            return None
        exists = repo.principal_by_name(session, name) is not None
    if exists:
        raise InputError(f"{name!r} exists but is not an admin", hint="choose another name for the first admin")
    try:
        create_user(store, name, password=password, admin=True, actor=actor)
    except AlreadyExists:
        return None  # another process (a second server starting at once) made the first admin
    return create_token(store, name, scopes=sorted(ALL_PERMISSIONS), name="bootstrap", actor=actor)


def first_start(store: Store, project: str, *, actor: str = "shipyard server") -> tuple[str, dict[str, Any]] | None:
    """What ``shipyard server`` runs when it starts with auth on: make sure its project exists and,
    on a store without an admin, create ``admin`` and return its one-time token (None otherwise)."""
    from shipyard.auth.service import create_project

    with store.read() as session:
        missing = repo.project(session, project) is None
    if missing:
        try:
            create_project(store, project, actor=actor)
        except AlreadyExists:
            pass  # a second process starting at the same time created it
    return bootstrap_admin(store, "admin", actor=actor)


def start_session(store: Store, name: str, via: str, lifetime: float) -> str:
    """A new browser session of ``name`` (logged in ``via`` password or oidc): the id its cookie carries.

    Only the id's SHA-256 is stored; ``end_session`` (logout), a disabled user or a new password end
    it on the server, so a copy of the cookie is refused at once, by every server process.
    """
    import secrets

    sid, now = secrets.token_urlsafe(32), time.time()
    with store.write() as session:
        session.add(repo.AuthSession(hash=tokens.token_hash(sid), name=name, via=via, created_at=now,
                                     expires_at=now + lifetime))
    return sid


def end_session(store: Store, sid: str, *, actor: str) -> bool:
    """Log a browser session out (audited); False when it had ended already."""
    with store.write() as session:
        ended = repo.end_sessions(session, time.time(), digest=tokens.token_hash(sid)) > 0
        if ended:
            audit.record(session, "auth.logout", f"user:{actor}", {}, actor=actor)
    return ended


def session_user(store: Store, name: str, sid: str | None = None) -> Principal | None:
    """The current Principal of a user logged in by password (None once deleted or disabled, or when
    the session ``sid`` has ended).

    Browser sessions look the user up on each page, so disabling a user, changing a role or logging
    out takes effect at the next page, not when the cookie expires.
    """
    with store.read() as session:
        if sid is not None and repo.live_session(session, tokens.token_hash(sid), time.time()) is None:
            return None
        row = repo.principal_by_name(session, name)
        if row is None or row.disabled or row.kind != "user":
            return None
        return to_principal(row, repo.roles(session, [row.id])[row.id])


def session_alive(store: Store, sid: str) -> bool:
    """Whether the browser session ``sid`` is live (not logged out, not expired)."""
    with store.read() as session:
        return repo.live_session(session, tokens.token_hash(sid), time.time()) is not None


def record_sso_login(store: Store, principal: Principal, issuer: str) -> None:
    """Audit a single sign-on login (password logins are audited by ``login``)."""
    with store.write() as session:
        audit.record(session, "auth.login", f"user:{principal.name}",
                     {"via": "oidc", "issuer": issuer, "admin": principal.admin, "roles": dict(principal.roles)},
                     actor=principal.actor)
