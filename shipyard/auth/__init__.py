"""The auth room: principals, API tokens, roles per project and the one permission decision.

No HTTP here: ``shipyard.server.security`` turns requests into a ``Principal`` and asks
``decide(principal, permission, project)``. Modules: ``model`` (scopes, roles, ``decide``; pure),
``tokens`` (the ``shp_`` format), ``passwords`` (Argon2id), ``service`` (users, service accounts,
projects, roles), ``credentials`` (tokens, login, first admin), ``cache`` (token checks without a
database round trip per request).
"""

from shipyard.auth.model import (
    ANY_PROJECT,
    ROLES,
    SCOPES,
    Decision,
    Principal,
    decide,
    permission_for_alias,
)

__all__ = ["ANY_PROJECT", "ROLES", "SCOPES", "Decision", "Principal", "decide", "permission_for_alias"]
