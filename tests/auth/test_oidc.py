"""OIDC against a real provider process on loopback (oidc-provider-mock): code flow with PKCE, then
the ID token is verified and its groups become roles."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from shipyard.auth.model import decide
from shipyard.auth.oidc import TokenRejected, principal_from_claims, verify_id_token

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MAPPING = {"ml-team": "penguins:editor", "ml-leads": "penguins:maintainer", "platform": "admin"}
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    from oidc_provider_mock import User, run_server_in_thread

    users = [User(sub="alice", claims={"preferred_username": "alice", "groups": ["ml-team", "unrelated"]}),
             User(sub="bob", claims={"email": "bob@example.com", "groups": ["platform"]})]
    with run_server_in_thread(require_nonce=True, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def login(issuer: str, sub: str, *, nonce: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    """The authorization code flow with PKCE, as the server's login route will run it."""
    with httpx.Client(timeout=10) as http:
        meta = http.get(f"{issuer}/.well-known/openid-configuration").json()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"client_id": "shipyard", "redirect_uri": REDIRECT, "response_type": "code", "state": "s1",
                  "scope": "openid profile email", "nonce": nonce, "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        answer = http.post(meta["authorization_endpoint"], params=params, data={"sub": sub})
        assert answer.status_code in (302, 303), answer.text
        query = parse_qs(urlparse(answer.headers["location"]).query)
        assert query["state"] == ["s1"]
        tokens = http.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
            "client_id": "shipyard", "client_secret": "any", "code_verifier": verifier}).json()
        return tokens["id_token"], http.get(meta["jwks_uri"]).json()


def test_a_provider_login_becomes_a_principal_with_mapped_roles(provider: str) -> None:
    id_token, jwks = login(provider, "alice", nonce="n-1")
    claims = verify_id_token(id_token, jwks, issuer=provider, audience="shipyard", nonce="n-1")
    alice = principal_from_claims(claims, MAPPING)
    assert (alice.name, alice.admin, dict(alice.roles)) == ("alice", False, {"penguins": "editor"})
    assert decide(alice, "runs:write", "penguins").allowed
    assert not decide(alice, "models:promote", "penguins").allowed
    id_token, jwks = login(provider, "bob", nonce="n-2")
    bob = principal_from_claims(verify_id_token(id_token, jwks, issuer=provider, audience="shipyard", nonce="n-2"),
                                MAPPING)
    assert bob.name == "bob@example.com" and bob.admin


def test_a_token_for_another_audience_issuer_or_nonce_is_rejected(provider: str) -> None:
    id_token, jwks = login(provider, "alice", nonce="n-3")
    with pytest.raises(TokenRejected, match="aud"):
        verify_id_token(id_token, jwks, issuer=provider, audience="someone-else", nonce="n-3")
    with pytest.raises(TokenRejected, match="iss"):
        verify_id_token(id_token, jwks, issuer="http://evil.example", audience="shipyard", nonce="n-3")
    with pytest.raises(TokenRejected, match="nonce"):
        verify_id_token(id_token, jwks, issuer=provider, audience="shipyard", nonce="replayed")
    header, body, signature = id_token.split(".")
    forged = f"{header}.{body[:-4]}AAAA.{signature}"
    with pytest.raises(TokenRejected, match="signature"):
        verify_id_token(forged, jwks, issuer=provider, audience="shipyard", nonce="n-3")
