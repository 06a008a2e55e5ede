"""``shipyard users|tokens|projects`` and ``audit log --actor``, driven in process through the entry point."""

from __future__ import annotations

import io
import json

import pytest

from shipyard.auth import tokens
from shipyard.cli.main import run

PASSWORD = "correct horse battery"


def cli(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as done:
        run(list(argv))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_first_admin_gets_a_one_time_token(project, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(capsys, "users", "add", "root", "--admin")
    assert code == 0, err
    assert tokens.well_formed(out.strip()) and "shown only now" in err
    code, out, err = cli(capsys, "users", "add", "root2", "--admin", "--json")
    assert code == 0, err
    assert "token" not in json.loads(out) and json.loads(out)["admin"] is True


def test_users_projects_grants_and_tokens(project, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHIPYARD_ACTOR", "ops")
    assert cli(capsys, "users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n",
               monkeypatch=monkeypatch)[0] == 0
    assert cli(capsys, "projects", "create", "penguins")[0] == 0
    assert cli(capsys, "projects", "grant", "penguins", "alice", "editor")[0] == 0
    code, out, _ = cli(capsys, "projects", "list", "--json")
    assert json.loads(out)[0]["members"] == {"alice": "editor"}
    code, out, err = cli(capsys, "tokens", "create", "--user", "alice", "--scope", "runs:read,runs:write",
                         "--project", "penguins", "--expires", "30d", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert tokens.well_formed(made["token"]) and made["scopes"] == ["runs:read", "runs:write"]
    code, out, _ = cli(capsys, "tokens", "list", "--json")
    assert [t["prefix"] for t in json.loads(out)] == [made["prefix"]] and "token" not in json.loads(out)[0]
    assert cli(capsys, "tokens", "revoke", made["prefix"])[0] == 0
    code, out, _ = cli(capsys, "users", "list", "--json")
    assert json.loads(out)[0]["roles"] == {"penguins": "editor"}
    code, out, _ = cli(capsys, "audit", "log", "--actor", "ops", "--json")
    assert [e["kind"] for e in json.loads(out)][::-1] == [
        "auth.user_created", "auth.project_created", "auth.role_granted", "auth.token_created", "auth.token_revoked"]
    assert cli(capsys, "projects", "revoke", "penguins", "alice")[0] == 0
    assert cli(capsys, "users", "disable", "alice")[0] == 0


def test_service_account_and_password_change(project, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cli(capsys, "projects", "create", "penguins")
    code, _, err = cli(capsys, "users", "add", "ci-bot", "--service-account", "--project", "penguins", "--role",
                       "editor")
    assert code == 0, err
    code, out, _ = cli(capsys, "tokens", "create", "--user", "ci-bot", "--scope", "runs:write", "--json")
    assert json.loads(out)["project"] == "penguins"
    cli(capsys, "users", "add", "bob")
    assert cli(capsys, "users", "passwd", "bob", "--password-stdin", stdin=PASSWORD + "\n",
               monkeypatch=monkeypatch)[0] == 0


def test_mistakes_exit_2_name_the_field_and_change_nothing(project, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(capsys, "users", "add", "alice", "--password-stdin", stdin="short\n", monkeypatch=monkeypatch)
    assert code == 2 and "password: too short" in err
    code, out, _ = cli(capsys, "users", "list", "--json")
    assert json.loads(out) == []
    cli(capsys, "users", "add", "alice")
    code, _, err = cli(capsys, "tokens", "create", "--user", "alice", "--scope", "runs:raed")
    assert code == 2 and "unknown scope 'runs:raed'" in err and "runs:read" in err
    code, _, err = cli(capsys, "tokens", "create", "--user", "alice", "--scope", "runs:read", "--expires", "soon")
    assert code == 2 and "--expires" in err
    code, _, err = cli(capsys, "projects", "grant", "nope", "alice", "viewer")
    assert code == 2 and "no project 'nope'" in err
    code, _, err = cli(capsys, "users", "add", "ci", "--service-account")
    assert code == 2 and "--project" in err
    code, out, _ = cli(capsys, "tokens", "list", "--json")
    assert json.loads(out) == []
