"""Users, service accounts, projects, roles, tokens and login on a real store (SQLite and PostgreSQL).

Every write leaves its audit event in the same transaction; the chain verifies afterwards.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shipyard import audit
from shipyard.auth import credentials, service, tokens
from shipyard.auth.model import decide
from shipyard.errors import AlreadyExists, InputError, NotFound
from shipyard.store import auth as repo
from shipyard.store.tables import AuditEvent

PASSWORD = "correct horse battery"


def kinds(store) -> list[str]:  # type: ignore[no-untyped-def]
    with store.read() as session:
        return [e.kind for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


def test_users_projects_and_roles_are_audited(store) -> None:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    assert service.grant(store, "penguins", "alice", "editor", actor="ops") is None
    assert service.grant(store, "penguins", "alice", "maintainer", actor="ops") == "editor"
    assert service.list_users(store)[0]["roles"] == {"penguins": "maintainer"}
    assert service.list_projects(store)[0]["members"] == {"alice": "maintainer"}
    assert service.revoke(store, "penguins", "alice", actor="ops") == "maintainer"
    assert service.list_users(store)[0]["roles"] == {}
    assert kinds(store) == ["auth.project_created", "auth.user_created", "auth.role_granted", "auth.role_granted",
                            "auth.role_revoked"]
    with store.read() as session:
        assert audit.verify(session).ok
        assert {e.actor for e in audit.events(session)} == {"ops"}


def test_no_password_is_stored_in_clear_and_short_ones_are_refused(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="password: too short"):
        service.create_user(store, "bob", password="short", actor="ops")
    assert service.list_users(store) == []  # nothing written
    service.create_user(store, "bob", password=PASSWORD, actor="ops")
    with store.read() as session:
        row = repo.principal_by_name(session, "bob")
        assert row is not None and row.password_hash and PASSWORD not in row.password_hash
        assert row.password_hash.startswith("$argon2id$")


def test_bad_names_and_duplicates(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="user name"):
        service.create_user(store, "a b", actor="ops")
    with pytest.raises(InputError, match="project name"):
        service.create_project(store, "Penguins!", actor="ops")
    service.create_project(store, "penguins", actor="ops")
    with pytest.raises(AlreadyExists):
        service.create_project(store, "penguins", actor="ops")
    with pytest.raises(NotFound, match="no project 'penguin'") as caught:
        service.grant(store, "penguin", "x", "viewer", actor="ops")
    assert "penguins" in str(caught.value.hint)
    service.create_user(store, "carol", actor="ops")
    with pytest.raises(InputError, match="unknown role 'owner'"):
        service.grant(store, "penguins", "carol", "owner", actor="ops")


def test_service_accounts_belong_to_one_project(store) -> None:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_project(store, "iris", actor="ops")
    service.create_service_account(store, "ci-bot", project="penguins", role="editor", actor="ops")
    with pytest.raises(InputError, match="belongs to project 'penguins'"):
        service.grant(store, "iris", "ci-bot", "viewer", actor="ops")
    _, info = credentials.create_token(store, "ci-bot", scopes=["runs:write"], actor="ops")
    assert info["project"] == "penguins"
    with pytest.raises(InputError, match="service account"):
        service.set_password(store, "ci-bot", PASSWORD, actor="ops")


def test_tokens_are_shown_once_stored_hashed_listed_and_revoked(store) -> None:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", actor="ops")
    secret, info = credentials.create_token(store, "alice", scopes=["runs:read", "runs:write"], project="penguins",
                                            expires_in=3600, name="laptop", actor="ops")
    assert tokens.well_formed(secret) and info["prefix"] == secret[:12]
    with store.read() as session:
        stored = session.scalars(select(repo.AuthToken)).one()
        assert stored.hash == tokens.token_hash(secret) and secret not in (stored.hash, stored.prefix)
    listed = credentials.list_tokens(store, "alice")
    assert [t["scopes"] for t in listed] == [["runs:read", "runs:write"]]
    assert "hash" not in listed[0]
    revoked = credentials.revoke_token(store, info["prefix"], actor="ops")
    assert revoked["revoked_at"] is not None
    credentials.revoke_token(store, str(info["id"]), actor="ops")  # twice: no second event
    assert kinds(store).count("auth.token_revoked") == 1
    with pytest.raises(NotFound):
        credentials.revoke_token(store, "shp_nothere0", actor="ops")


def test_token_requests_with_bad_input_change_nothing(store) -> None:  # type: ignore[no-untyped-def]
    service.create_user(store, "alice", actor="ops")
    with pytest.raises(InputError, match="unknown scope 'runs:raed'"):
        credentials.create_token(store, "alice", scopes=["runs:raed"], actor="ops")
    with pytest.raises(InputError, match="at least one scope"):
        credentials.create_token(store, "alice", scopes=[], actor="ops")
    with pytest.raises(NotFound, match="no project"):
        credentials.create_token(store, "alice", scopes=["runs:read"], project="nope", actor="ops")
    assert credentials.list_tokens(store) == []


def test_login_same_answer_for_unknown_user_and_wrong_password(store) -> None:  # type: ignore[no-untyped-def]
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    with pytest.raises(service.LoginFailed) as unknown:
        credentials.login(store, "mallory", PASSWORD)
    with pytest.raises(service.LoginFailed) as wrong:
        credentials.login(store, "alice", PASSWORD + "x")
    assert str(unknown.value) == str(wrong.value)
    principal = credentials.login(store, "alice", PASSWORD)
    assert principal.name == "alice" and principal.scopes is None
    assert kinds(store)[-3:] == ["auth.login_failed", "auth.login_failed", "auth.login"]


def test_repeated_failures_lock_the_account_and_are_audited(store) -> None:  # type: ignore[no-untyped-def]
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    policy = service.LoginPolicy(max_failures=3, lockout_s=3600)
    for _ in range(3):
        with pytest.raises(service.LoginFailed):
            credentials.login(store, "alice", "wrong password!", policy=policy)
    assert kinds(store).count("auth.lockout") == 1
    with pytest.raises(service.LoginFailed):  # even the right password, while locked
        credentials.login(store, "alice", PASSWORD, policy=policy)
    assert service.list_users(store)[0]["locked"]
    service.set_password(store, "alice", PASSWORD, actor="ops")  # an admin reset unlocks
    assert credentials.login(store, "alice", PASSWORD, policy=policy).name == "alice"
    with store.read() as session:
        assert audit.verify(session).ok


def test_disabled_users_cannot_log_in(store) -> None:  # type: ignore[no-untyped-def]
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    service.disable_user(store, "alice", actor="ops")
    with pytest.raises(service.LoginFailed):
        credentials.login(store, "alice", PASSWORD)


def test_first_admin_gets_a_one_time_token_only_once(store) -> None:  # type: ignore[no-untyped-def]
    first = credentials.bootstrap_admin(store, "root", actor="server")
    assert first is not None
    secret, info = first
    assert tokens.well_formed(secret) and "admin" in info["scopes"]
    assert credentials.bootstrap_admin(store, "root2", actor="server") is None
    assert [u["name"] for u in service.list_users(store)] == ["root"]


def test_a_logged_in_principal_is_decided_by_its_roles(store) -> None:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    assert decide(credentials.login(store, "alice", PASSWORD), "runs:read", "penguins").status == 403
    service.grant(store, "penguins", "alice", "viewer", actor="ops")
    assert decide(credentials.login(store, "alice", PASSWORD), "runs:read", "penguins").allowed


def test_first_start_creates_the_project_and_the_admin_once(store) -> None:  # type: ignore[no-untyped-def]
    first = credentials.first_start(store, "penguins")
    assert first is not None and tokens.well_formed(first[0]) and first[1]["owner"] == "admin"
    assert credentials.first_start(store, "penguins") is None
    assert [p["name"] for p in service.list_projects(store)] == ["penguins"]
    assert kinds(store) == ["auth.project_created", "auth.user_created", "auth.token_created"]
