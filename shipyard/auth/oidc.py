"""Single sign-on: an OpenID Connect ID token becomes a Principal, its groups mapped to roles.

The browser flow (authorization code with PKCE, via Authlib's Starlette client) belongs to the
server; this module holds what needs no HTTP: checking an ID token's signature against the
provider's JWKS and its issuer, audience, expiry and nonce (with joserfc), and turning its claims
into a Principal whose admin flag and project roles come from the group claim through the
configured mapping (``roles_from_groups``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from shipyard.auth.model import Principal, roles_from_groups
from shipyard.errors import InputError, MissingExtra, ShipyardError

ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")
NAME_CLAIMS = ("preferred_username", "email", "sub")


class TokenRejected(ShipyardError):
    """An ID token failed verification (signature, issuer, audience, expiry or nonce)."""

    exit_code = 1
    http_status = 401


def verify_id_token(id_token: str, jwks: Mapping[str, Any], *, issuer: str, audience: str,
                    nonce: str | None = None, leeway: int = 60) -> dict[str, Any]:
    """The claims of a valid ID token; TokenRejected saying which check failed otherwise."""
    try:
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet
    except ImportError as exc:
        raise MissingExtra("OIDC login needs joserfc", hint='pip install "shipyard[oidc]"') from exc
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(dict(jwks)), algorithms=list(ALGORITHMS))
    except (JoseError, ValueError) as exc:
        raise TokenRejected(f"ID token: the signature does not verify ({exc})") from exc
    wanted: dict[str, Any] = {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": audience},
                              "exp": {"essential": True}, "sub": {"essential": True}}
    if nonce is not None:
        wanted["nonce"] = {"essential": True, "value": nonce}
    try:
        jwt.JWTClaimsRegistry(leeway=leeway, **wanted).validate(token.claims)
    except JoseError as exc:
        raise TokenRejected(f"ID token: {exc}") from exc
    return dict(token.claims)


def principal_from_claims(claims: Mapping[str, Any], group_mapping: Mapping[str, str], *,
                          group_claim: str = "groups") -> Principal:
    """The Principal of a verified ID token: its name, and roles from its groups (nothing unmapped)."""
    name = next((str(claims[c]) for c in NAME_CLAIMS if isinstance(claims.get(c), str) and claims[c]), None)
    if name is None:
        raise InputError("ID token: no preferred_username, email or sub claim to name the user")
    groups = claims.get(group_claim, [])
    if isinstance(groups, str):
        groups = groups.split()
    if not isinstance(groups, list):
        raise InputError(f"ID token: the {group_claim!r} claim is not a list of group names")
    admin, roles = roles_from_groups([str(g) for g in groups], group_mapping)
    return Principal(name=name, kind="user", admin=admin, roles=MappingProxyType(roles), via="oidc")
