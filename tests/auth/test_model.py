"""The one permission decision: role x token scope x project, each answer with its status and reason."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from shipyard.auth.model import (
    ANY_PROJECT,
    ROLE_PERMISSIONS,
    SCOPES,
    Principal,
    check_scopes,
    decide,
    permission_for_alias,
    roles_from_groups,
)
from shipyard.errors import InputError


def user(role: str | None = None, project: str = "penguins", **token: object) -> Principal:
    roles = MappingProxyType({project: role} if role else {})
    return Principal(name="alice", roles=roles, **token)  # type: ignore[arg-type]


def test_anonymous_is_401_with_a_reason() -> None:
    decision = decide(None, "runs:read", "penguins")
    assert (decision.allowed, decision.status) == (False, 401)
    assert "Bearer" in decision.reasons[0]


def test_a_new_user_has_no_access_to_any_project() -> None:
    decision = decide(user(), "runs:read", "penguins")
    assert (decision.allowed, decision.status) == (False, 403)
    assert "no role on project 'penguins'" in decision.reasons[0]


@pytest.mark.parametrize("role", list(ROLE_PERMISSIONS))
@pytest.mark.parametrize("permission", SCOPES)
def test_each_role_grants_exactly_its_table(role: str, permission: str) -> None:
    decision = decide(user(role), permission, "penguins")
    assert decision.allowed is (permission in ROLE_PERMISSIONS[role])
    assert decision.status == (None if decision.allowed else 403)


def test_roles_are_per_project() -> None:
    assert not decide(user("maintainer", project="other"), "runs:read", "penguins").allowed


def test_moving_the_champion_needs_promote_which_an_editor_lacks() -> None:
    assert permission_for_alias("champion") == "models:promote"
    assert permission_for_alias("challenger") == "models:write"
    assert not decide(user("editor"), permission_for_alias("champion"), "penguins").allowed
    assert decide(user("maintainer"), permission_for_alias("champion"), "penguins").allowed


def test_effective_permission_is_role_intersected_with_token_scopes() -> None:
    token = user("maintainer", scopes=frozenset({"runs:read"}), token_prefix="shp_abcdefgh")
    assert decide(token, "runs:read", "penguins").allowed
    denied = decide(token, "runs:write", "penguins")
    assert denied.status == 403 and "lacks the scope runs:write" in denied.reasons[0]
    # a scope the role does not grant adds nothing
    viewer_token = user("viewer", scopes=frozenset({"runs:write"}), token_prefix="shp_abcdefgh")
    assert not decide(viewer_token, "runs:write", "penguins").allowed


def test_a_project_token_is_refused_on_another_project_and_server_wide() -> None:
    admin_token = Principal(name="root", admin=True, scopes=frozenset({"admin"}), token_project="penguins",
                            token_prefix="shp_abcdefgh")
    assert decide(admin_token, "runs:write", "penguins").allowed
    other = decide(admin_token, "runs:write", "iris")
    assert other.status == 403 and "limited to project 'penguins'" in other.reasons[0]
    assert not decide(admin_token, "admin", None).allowed


def test_admin_holds_everything_but_a_token_still_narrows_it() -> None:
    admin = Principal(name="root", admin=True)
    assert all(decide(admin, p, "anything").allowed for p in SCOPES)
    assert decide(admin, "admin", None).allowed
    narrowed = Principal(name="root", admin=True, scopes=frozenset({"runs:read"}), token_prefix="shp_x")
    assert not decide(narrowed, "runs:write", "penguins").allowed


def test_server_wide_actions_need_an_admin() -> None:
    assert decide(user("maintainer"), "admin", None).status == 403


def test_any_project_allows_a_listing_when_some_role_grants_it() -> None:
    assert decide(user("viewer"), "runs:read", ANY_PROJECT).allowed
    assert not decide(user(), "runs:read", ANY_PROJECT).allowed
    assert not decide(user("viewer"), "runs:write", ANY_PROJECT).allowed


def test_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        decide(user("viewer"), "runs:readd", "penguins")


def test_unknown_scope_names_the_closest() -> None:
    with pytest.raises(InputError, match="unknown scope 'runs:raed'") as caught:
        check_scopes(["runs:raed"])
    assert "runs:read" in str(caught.value.hint)


def test_groups_map_to_roles_keeping_the_strongest() -> None:
    mapping = {"ml-admins": "admin", "ml-team": "penguins:editor", "ml-leads": "penguins:maintainer",
               "readers": "iris:viewer"}
    assert roles_from_groups(["ml-team", "ml-leads", "readers", "other"], mapping) == (
        False, {"penguins": "maintainer", "iris": "viewer"})
    assert roles_from_groups(["ml-leads", "ml-team"], mapping)[1] == {"penguins": "maintainer"}
    assert roles_from_groups(["ml-admins"], mapping) == (True, {})
    with pytest.raises(InputError, match="PROJECT:ROLE"):
        roles_from_groups(["x"], {"x": "penguins"})
