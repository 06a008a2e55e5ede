"""``shipyard users``, ``shipyard tokens`` and ``shipyard projects``: accounts, API tokens, roles.

These commands act on the project's store directly, as its operator (the audit log names
``SHIPYARD_ACTOR`` or user@host); with ``SHIPYARD_SERVER_URL`` they ask that server instead, as the
admin whose token ``SHIPYARD_TOKEN`` holds (``shipyard.server.api``; the audit log names that admin). Passwords are read from a hidden prompt or ``--password-stdin``,
never from an argument; a token is printed once, when it is made.
"""

from __future__ import annotations

import sys

import typer

from shipyard.cli.output import echo, print_json, table
from shipyard.errors import InputError
from shipyard.workspace import Workspace

users_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Add, list and disable users and service accounts; set passwords.")
tokens_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Create, list and revoke API tokens.")
projects_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Create and list projects; grant and revoke roles on them.")

_JSON = typer.Option(False, "--json", help="Print the result as JSON.")
_STDIN = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin.")


def _store():  # type: ignore[no-untyped-def]
    return Workspace.discover().store


def _server():  # type: ignore[no-untyped-def]
    """The server of SHIPYARD_SERVER_URL, None to act on the local store."""
    from shipyard.cli.remote import remote

    return remote()


def _path(*parts: str) -> str:
    from urllib.parse import quote

    return "/api/v1/" + "/".join(quote(p, safe="") for p in parts)


def _actor() -> str:
    from shipyard.audit import current_actor

    return current_actor()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("--password-stdin: stdin is empty", hint="echo \"$PASSWORD\" | shipyard users passwd NAME "
                                                                      "--password-stdin")
        return line.rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _show_token(secret: str, info: dict, json_out: bool) -> None:  # type: ignore[type-arg]
    if json_out:
        print_json({**info, "token": secret})
        return
    echo(secret)
    echo(f"token {info['prefix']} for {info['owner']}: scopes {' '.join(info['scopes'])}"
         + (f", project {info['project']}" if info["project"] else "")
         + ". It is shown only now: store it in a secret manager.", err=True)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User (or service account) name."),
    admin: bool = typer.Option(False, "--admin", help="A global admin (the first one gets a one-time token)."),
    service_account: bool = typer.Option(False, "--service-account", help="A service account (tokens only)."),
    project: str | None = typer.Option(None, "--project", help="The project that owns the service account."),
    role: str = typer.Option("editor", "--role", help="The service account's role in its project."),
    password: bool = typer.Option(False, "--password", help="Prompt for a password (none by default: tokens only)."),
    password_stdin: bool = _STDIN,
    json_out: bool = _JSON,
) -> None:
    """Add a user with no access to any project, or a service account owned by a project.

    Example: shipyard users add alice --password && shipyard projects grant penguins alice editor

    On a store without an admin, `shipyard users add root --admin` prints a one-time admin token.
    """
    from shipyard.auth import credentials, service

    if service_account and (not project or admin or password or password_stdin):
        raise InputError("--service-account needs --project and takes no --admin or password",
                         hint="shipyard users add ci-bot --service-account --project penguins --role editor")
    secret = _read_password(password_stdin) if (password or password_stdin) else None
    server = _server()
    if server is not None:  # the server has its admin already (the one calling): no first-admin token
        info = server.call("POST", _path("users"), f"add user {name}", json={
            "name": name, "admin": admin, "password": secret, "service_account": service_account,
            "project": project, "role": role})
    if service_account:
        if server is None:
            info = service.create_service_account(_store(), name, project=project, role=role, actor=_actor())
        if json_out:
            print_json(info)
        else:
            echo(f"service account {name} ({role} on {project}); "
                 f"make a token: shipyard tokens create --user {name} --scope runs:write")
        return
    if server is None:
        store, actor = _store(), _actor()
        first = credentials.bootstrap_admin(store, name, password=secret, actor=actor) if admin else None
        if first is not None:
            _show_token(*first, json_out)
            return
        info = service.create_user(store, name, password=secret, admin=admin, actor=actor)
    if json_out:
        print_json(info)
    else:
        echo(f"user {name} added{' (admin)' if admin else ''}; it has no role on any project yet"
             + ("" if admin else f": shipyard projects grant PROJECT {name} viewer"))


@users_app.command("list")
def users_list(json_out: bool = _JSON) -> None:
    """List users and service accounts with their roles (never a secret).

    Example: shipyard users list --json
    """
    from shipyard.auth import service

    server = _server()
    rows = server.get(_path("users"), "list users")["users"] if server is not None else service.list_users(_store())
    if json_out:
        print_json(rows)
        return
    table(["name", "kind", "admin", "disabled", "locked", "roles"],
          [(r["name"], r["kind"], r["admin"], r["disabled"], r["locked"],
            " ".join(f"{p}:{role}" for p, role in sorted(r["roles"].items()))) for r in rows])


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., help="User or service account name.")) -> None:
    """Disable a user or service account: its tokens and password stop working.

    Example: shipyard users disable alice
    """
    from shipyard.auth import service

    server = _server()
    if server is not None:
        server.call("POST", _path("users", name, "disable"), f"disable {name}")
    else:
        service.disable_user(_store(), name, actor=_actor())
    echo(f"{name} disabled; servers and gateways drop its tokens within their poll interval")


@users_app.command("passwd")
def users_passwd(name: str = typer.Argument(..., help="User name."), password_stdin: bool = _STDIN) -> None:
    """Set a user's password (at least 12 characters) and unlock the account.

    Example: shipyard users passwd alice
    """
    from shipyard.auth import service

    secret, server = _read_password(password_stdin), _server()
    if server is not None:
        server.call("POST", _path("users", name, "password"), f"set the password of {name}", json={"password": secret})
    else:
        service.set_password(_store(), name, secret, actor=_actor())
    echo(f"password of {name} set")


@tokens_app.command("create")
def tokens_create(
    user: str = typer.Option(..., "--user", help="The user or service account the token acts as."),
    scope: list[str] = typer.Option(..., "--scope", help="A scope (repeat): runs:read runs:write models:read "
                                    "models:write models:promote deploy:write gateway:invoke audit:read admin."),
    project: str | None = typer.Option(None, "--project", help="Limit the token to one project."),
    expires: str | None = typer.Option("90d", "--expires", help="Lifetime (e.g. 30d, 12h), or 'never'."),
    name: str = typer.Option("", "--name", help="A label (e.g. ci, laptop)."),
    json_out: bool = _JSON,
) -> None:
    """Make an API token; it is printed once and stored only as a hash.

    Example: shipyard tokens create --user ci-bot --scope runs:write --scope models:write --expires 30d
    """
    from shipyard.auth import credentials
    from shipyard.durations import parse_duration

    try:
        lifetime = None if expires in (None, "never") else parse_duration(expires)
    except ValueError as exc:
        raise InputError(f"--expires: {exc}", hint="e.g. --expires 30d, --expires 12h or --expires never") from exc
    scopes = [s for item in scope for s in item.replace(",", " ").split()]
    server = _server()
    if server is not None:
        info = server.call("POST", _path("tokens"), f"create a token for {user}", json={
            "user": user, "scopes": scopes, "project": project, "expires_in": lifetime, "name": name})
        secret = info.pop("token")
    else:
        secret, info = credentials.create_token(_store(), user, scopes=scopes, project=project, expires_in=lifetime,
                                                name=name, actor=_actor())
    _show_token(secret, info, json_out)


@tokens_app.command("list")
def tokens_list(user: str | None = typer.Option(None, "--user", help="Only this owner's tokens."),
                json_out: bool = _JSON) -> None:
    """List tokens: prefix, owner, scopes, project, expiry, last use, revocation.

    Example: shipyard tokens list --user ci-bot --json
    """
    from shipyard.auth import credentials

    server = _server()
    rows = (server.get(_path("tokens"), "list tokens", user=user)["tokens"] if server is not None
            else credentials.list_tokens(_store(), user))
    if json_out:
        print_json(rows)
        return
    table(["id", "prefix", "owner", "name", "scopes", "project", "expires", "last used", "revoked"],
          [(r["id"], r["prefix"], r["owner"], r["name"], " ".join(r["scopes"]), r["project"], _when(r["expires_at"]),
            _when(r["last_used_at"]), _when(r["revoked_at"])) for r in rows])


def _when(at: float | None) -> str:
    from datetime import UTC, datetime

    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


@tokens_app.command("revoke")
def tokens_revoke(ref: str = typer.Argument(..., help="The token's id or prefix (as listed), or the token."),
                  json_out: bool = _JSON) -> None:
    """Revoke a token; servers and gateways refuse it within their poll interval.

    Example: shipyard tokens revoke shp_AbCd1234
    """
    from shipyard.auth import credentials
    from shipyard.auth.tokens import display_prefix, looks_like_token

    server = _server()
    shown = display_prefix(ref) if looks_like_token(ref) else ref  # a secret never goes into a URL
    info = (server.call("DELETE", _path("tokens", shown), f"revoke token {shown}") if server is not None
            else credentials.revoke_token(_store(), ref, actor=_actor()))
    if json_out:
        print_json(info)
    else:
        echo(f"token {info['prefix']} of {info['owner']} revoked")


@projects_app.command("create")
def projects_create(name: str = typer.Argument(..., help="Project name (lower case)."), json_out: bool = _JSON) -> None:
    """Create a project; nobody has a role on it until granted.

    Example: shipyard projects create penguins
    """
    from shipyard.auth import service

    server = _server()
    info = (server.call("POST", _path("projects"), f"create project {name}", json={"name": name})
            if server is not None else service.create_project(_store(), name, actor=_actor()))
    if json_out:
        print_json(info)
    else:
        echo(f"project {name} created; grant roles: shipyard projects grant {name} USER viewer|editor|maintainer")


@projects_app.command("list")
def projects_list(json_out: bool = _JSON) -> None:
    """List projects and who holds which role on them.

    Example: shipyard projects list --json
    """
    from shipyard.auth import service

    server = _server()
    rows = (server.get(_path("projects"), "list projects")["projects"] if server is not None
            else service.list_projects(_store()))
    if json_out:
        print_json(rows)
        return
    table(["project", "members"], [(r["name"], " ".join(f"{u}:{role}" for u, role in sorted(r["members"].items())))
                                   for r in rows])


@projects_app.command("grant")
def projects_grant(project: str = typer.Argument(..., help="Project name."),
                   user: str = typer.Argument(..., help="User or service account."),
                   role: str = typer.Argument(..., help="viewer, editor or maintainer.")) -> None:
    """Give a user a role on a project (replacing the one it had).

    Example: shipyard projects grant penguins alice maintainer
    """
    from shipyard.auth import service

    server = _server()
    before = (server.call("PUT", _path("projects", project, "members", user), f"grant {role} on {project} to {user}",
                          json={"role": role})["before"] if server is not None
              else service.grant(_store(), project, user, role, actor=_actor()))
    echo(f"{user} is now {role} on {project}" + (f" (was {before})" if before and before != role else ""))


@projects_app.command("revoke")
def projects_revoke(project: str = typer.Argument(..., help="Project name."),
                    user: str = typer.Argument(..., help="User or service account.")) -> None:
    """Remove a user's role on a project.

    Example: shipyard projects revoke penguins alice
    """
    from shipyard.auth import service

    server = _server()
    before = (server.call("DELETE", _path("projects", project, "members", user), f"revoke {user}'s role on {project}")
              ["before"] if server is not None else service.revoke(_store(), project, user, actor=_actor()))
    echo(f"{user} no longer has a role on {project}" if before else f"{user} had no role on {project}")
