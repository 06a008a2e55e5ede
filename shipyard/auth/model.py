"""Scopes, roles, principals and the one permission decision. Pure values, no store, no HTTP.

Effective permission = what the principal's role on the project grants, intersected with the
token's scopes (a password or browser login carries no scopes: the role alone decides). A new
principal holds no role anywhere; global admins hold every permission on every project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shipyard.errors import InputError, did_you_mean

SCOPES: tuple[str, ...] = (
    "runs:read", "runs:write", "models:read", "models:write", "models:promote",
    "deploy:write", "gateway:invoke", "audit:read", "admin",
)
_VIEWER = frozenset({"runs:read", "models:read", "gateway:invoke"})
_EDITOR = _VIEWER | {"runs:write", "models:write"}
_MAINTAINER = _EDITOR | {"models:promote", "deploy:write", "audit:read"}
ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "viewer": _VIEWER,
    "editor": frozenset(_EDITOR),
    "maintainer": frozenset(_MAINTAINER),
})
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
ALL_PERMISSIONS = frozenset(SCOPES)
# The project argument of ``decide`` for routes that list across projects and filter their own
# results (e.g. "search runs"): allowed when the principal holds the permission on some project.
ANY_PROJECT = "*"
CHAMPION = "champion"


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; an unknown scope is an InputError naming it and the known ones."""
    found = frozenset(scopes)
    for scope in sorted(found):
        if scope not in ALL_PERMISSIONS:
            raise InputError(f"unknown scope {scope!r}", hint=did_you_mean(scope, SCOPES) or "known: " + " ".join(SCOPES))
    return found


def check_role(role: str) -> str:
    """``role`` if it is a project role, else an InputError listing the roles."""
    if role not in ROLE_PERMISSIONS:
        raise InputError(f"unknown role {role!r}", hint="roles: " + ", ".join(ROLES) + " (admin is global: --admin)")
    return role


def permission_for_alias(alias: str) -> str:
    """The permission that moving ``alias`` needs: the champion alias is a promotion."""
    return "models:promote" if alias == CHAMPION else "models:write"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user or service account, its roles, and (when via a token) the token's limits.

    ``scopes`` is None for a password or browser login; ``token_project`` limits a token to one project.
    """

    name: str
    kind: str = "user"
    admin: bool = False
    roles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    scopes: frozenset[str] | None = None
    token_project: str | None = None
    token_prefix: str | None = None
    via: str | None = None

    @property
    def actor(self) -> str:
        """The name written into audit events: the principal, and the token prefix when via a token
        (or ``via``: ``oidc`` for a single sign-on user, whose name the identity provider chose)."""
        through = self.token_prefix or self.via
        return f"{self.name} via {through}" if through else self.name


@dataclass(frozen=True)
class Decision:
    """The answer of ``decide``: allowed, the HTTP status when not (401 or 403), and why."""

    allowed: bool
    status: int | None
    reasons: tuple[str, ...]


def _deny(status: int, *reasons: str) -> Decision:
    return Decision(False, status, reasons)


def _role_grants(principal: Principal, permission: str, project: str | None) -> tuple[bool, str]:
    """Whether the principal's admin flag or role grants ``permission`` on ``project``, and why."""
    if principal.admin:
        return True, f"{principal.name} is a global admin"
    if project is None:
        return False, f"{permission} on the whole server needs a global admin; {principal.name} is not one"
    if project == ANY_PROJECT:
        held = {p: r for p, r in principal.roles.items()
                if principal.token_project in (None, p) and permission in ROLE_PERMISSIONS.get(r, ())}
        if held:
            return True, f"{principal.name} holds {permission} on " + ", ".join(sorted(held))
        return False, f"{principal.name} holds {permission} on no project"
    role = principal.roles.get(project)
    if role is None:
        return False, f"{principal.name} has no role on project {project!r} (grant one: shipyard projects grant)"
    if permission not in ROLE_PERMISSIONS.get(role, ()):
        return False, f"{principal.name} is {role} on project {project!r}, which does not grant {permission}"
    return True, f"{principal.name} is {role} on project {project!r}"


def decide(principal: Principal | None, permission: str, project: str | None) -> Decision:
    """The one permission decision of Shipyard.

    ``project`` is the project the request touches, None for a server-wide action (admin only), or
    ``ANY_PROJECT`` for a listing that filters itself. No principal: 401. Otherwise the role must
    grant the permission and, for a token, its scopes must include it and its project must match: 403.
    """
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {' '.join(SCOPES)}")
    if principal is None:
        return _deny(401, "no credentials: send a token as 'Authorization: Bearer shp_...'")
    reasons: list[str] = []
    if principal.scopes is not None and permission not in principal.scopes and "admin" not in principal.scopes:
        reasons.append(f"the token {principal.token_prefix} lacks the scope {permission}")
    if principal.token_project is not None and project not in (principal.token_project, ANY_PROJECT):
        where = "the whole server" if project is None else f"project {project!r}"
        reasons.append(f"the token {principal.token_prefix} is limited to project {principal.token_project!r}, "
                       f"not {where}")
    granted, why = _role_grants(principal, permission, project)
    if not granted:
        reasons.append(why)
    if reasons:
        return _deny(403, *reasons)
    return Decision(True, None, (why,))


def roles_from_groups(groups: Iterable[str], mapping: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    """(admin, {project: role}) from an identity provider's group claim.

    ``mapping`` maps a group to ``admin`` or ``PROJECT:ROLE``; several groups on one project keep the
    strongest role. Unmapped groups grant nothing.
    """
    admin = False
    granted: dict[str, str] = {}
    for group in groups:
        target = mapping.get(group)
        if target is None:
            continue
        if target == "admin":
            admin = True
            continue
        project, sep, role = target.rpartition(":")
        if not sep or not project:
            raise InputError(f"group mapping {group!r}: {target!r} is not 'admin' or 'PROJECT:ROLE'")
        check_role(role)
        if ROLES.index(role) > ROLES.index(granted.get(project, "viewer")) or project not in granted:
            granted[project] = role
    return admin, granted
