"""Auth settings of a server process, and what clients need to reach a server that has auth and TLS.

Read from environment variables for now (proposed ``shipyard.yaml`` keys in brackets):

- ``SHIPYARD_PROJECT`` [server.project]: the project a server's routes belong to (default: the
  project directory's name, lower-cased);
- ``SHIPYARD_SESSION_SECRET`` [server.session_secret]: the key that signs browser session cookies;
  without it, one is generated on first start and kept in the store (``store_meta``), so every
  server process on the same store signs alike;
- ``SHIPYARD_SESSION_HOURS`` [server.session_hours]: how long a browser login lasts (default 8);
- ``SHIPYARD_OIDC_ISSUER``, ``SHIPYARD_OIDC_CLIENT_ID``, ``SHIPYARD_OIDC_CLIENT_SECRET`` [auth.oidc.issuer,
  client_id, client_secret]: single sign-on; OIDC login is on when the issuer and client id are set;
- ``SHIPYARD_OIDC_GROUPS_CLAIM`` [auth.oidc.groups_claim] (default ``groups``) and
  ``SHIPYARD_OIDC_GROUP_MAP`` [auth.oidc.groups]: ``group=admin,group=PROJECT:ROLE,...``;
- ``SHIPYARD_OIDC_SCOPES`` [auth.oidc.scopes] (default ``openid profile email``);
- clients: ``SHIPYARD_TOKEN`` (sent as ``Authorization: Bearer``) and ``SHIPYARD_CA_BUNDLE`` (a PEM
  file of the private CA that signed the server's certificate).
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy.exc import IntegrityError

from shipyard.errors import ConfigError
from shipyard.store import Store
from shipyard.store.tables import MetaEntry

SESSION_SECRET_KEY = "auth.session_secret"
_NOT_PROJECT = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class OidcSettings:
    """One OpenID Connect provider: where it is, who we are to it, and how its groups map to roles."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    groups_claim: str = "groups"
    group_mapping: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    scopes: str = "openid profile email"

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class AuthSettings:
    """What a server process needs for browser login: session key and lifetime, and OIDC (optional)."""

    session_secret: str | None = None
    session_hours: float = 8.0
    oidc: OidcSettings | None = None


def parse_group_map(text: str) -> dict[str, str]:
    """``group=admin,group=PROJECT:ROLE`` as a mapping; a malformed pair is a ConfigError naming it."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        group, sep, target = pair.partition("=")
        if not sep or not group.strip() or not target.strip():
            raise ConfigError(f"SHIPYARD_OIDC_GROUP_MAP: {pair!r} is not GROUP=admin or GROUP=PROJECT:ROLE")
        mapping[group.strip()] = target.strip()
    return mapping


def auth_settings(env: Mapping[str, str] | None = None) -> AuthSettings:
    """The auth settings from the environment (see the module docstring for the variables)."""
    env = os.environ if env is None else env
    oidc = None
    if env.get("SHIPYARD_OIDC_ISSUER") and env.get("SHIPYARD_OIDC_CLIENT_ID"):
        oidc = OidcSettings(issuer=env["SHIPYARD_OIDC_ISSUER"], client_id=env["SHIPYARD_OIDC_CLIENT_ID"],
                            client_secret=env.get("SHIPYARD_OIDC_CLIENT_SECRET") or None,
                            groups_claim=env.get("SHIPYARD_OIDC_GROUPS_CLAIM") or "groups",
                            group_mapping=MappingProxyType(parse_group_map(env.get("SHIPYARD_OIDC_GROUP_MAP", ""))),
                            scopes=env.get("SHIPYARD_OIDC_SCOPES") or "openid profile email")
    elif env.get("SHIPYARD_OIDC_ISSUER") or env.get("SHIPYARD_OIDC_CLIENT_ID"):
        raise ConfigError("OIDC login needs both SHIPYARD_OIDC_ISSUER and SHIPYARD_OIDC_CLIENT_ID")
    try:
        hours = float(env.get("SHIPYARD_SESSION_HOURS") or 8)
    except ValueError:
        raise ConfigError(f"SHIPYARD_SESSION_HOURS={env['SHIPYARD_SESSION_HOURS']!r} is not a number") from None
    if hours <= 0:
        raise ConfigError(f"SHIPYARD_SESSION_HOURS={hours:g}: a session must last a positive time")
    return AuthSettings(session_secret=env.get("SHIPYARD_SESSION_SECRET") or None, session_hours=hours, oidc=oidc)


def server_project(directory_name: str, env: Mapping[str, str] | None = None) -> str:
    """The project a server's routes belong to: SHIPYARD_PROJECT, else the directory name made valid."""
    env = os.environ if env is None else env
    explicit = env.get("SHIPYARD_PROJECT")
    if explicit:
        return explicit
    name = _NOT_PROJECT.sub("-", directory_name.lower()).strip("-._")
    return name[:100] or "default"


def session_secret(store: Store, settings: AuthSettings) -> str:
    """The configured session key, else the store's (generated and kept on first use)."""
    if settings.session_secret:
        return settings.session_secret
    with store.read() as session:
        row = session.get(MetaEntry, SESSION_SECRET_KEY)
        if row is not None:
            return row.value
    try:
        with store.write() as session:
            session.add(MetaEntry(key=SESSION_SECRET_KEY, value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another server process on this store kept one first: read theirs below
    with store.read() as session:
        row = session.get(MetaEntry, SESSION_SECRET_KEY)
        if row is None:
            raise ConfigError("could not keep a session key in the store", hint="set SHIPYARD_SESSION_SECRET")
        return row.value


def tls_verify(env: Mapping[str, str] | None = None) -> ssl.SSLContext | bool:
    """What an HTTP client passes as ``verify``: the system CAs, or also ``SHIPYARD_CA_BUNDLE``'s."""
    env = os.environ if env is None else env
    bundle = env.get("SHIPYARD_CA_BUNDLE")
    if not bundle:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"SHIPYARD_CA_BUNDLE={bundle}: cannot load it as PEM certificates ({exc})") from None
    return context


def client_options(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``httpx.Client`` keyword arguments to reach a Shipyard server: certificate checks and the token."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {"verify": tls_verify(env)}
    token = env.get("SHIPYARD_TOKEN")
    if token:
        options["headers"] = {"Authorization": f"Bearer {token}"}
    return options
