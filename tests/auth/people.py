"""The users, roles and tokens that several auth tests start from."""

from __future__ import annotations

from shipyard.auth import credentials, service
from shipyard.store import Store


def role_tokens(store: Store, scopes: list[str]) -> dict[str, str]:
    """Project penguins with vera (viewer), eddie (editor) and mia (maintainer): a token of each by role."""
    service.create_project(store, "penguins", actor="ops")
    made = {}
    for name, role in (("vera", "viewer"), ("eddie", "editor"), ("mia", "maintainer")):
        service.create_user(store, name, actor="ops")
        service.grant(store, "penguins", name, role, actor="ops")
        made[role] = credentials.create_token(store, name, scopes=scopes, actor="ops")[0]
    return made


def two_projects(store: Store, viewer: str) -> None:
    """Projects penguins and iris; ``viewer`` views penguins, olga maintains iris."""
    for name in ("penguins", "iris"):
        service.create_project(store, name, actor="ops")
    service.create_user(store, viewer, actor="ops")
    service.grant(store, "penguins", viewer, "viewer", actor="ops")
    service.create_user(store, "olga", actor="ops")
    service.grant(store, "iris", "olga", "maintainer", actor="ops")


def gateway_tokens(store: Store) -> dict[str, str]:
    """``two_projects`` with app as the viewer: the gateway's three tokens."""
    two_projects(store, "app")
    return {
        "invoke": credentials.create_token(store, "app", scopes=["gateway:invoke"], actor="ops")[0],
        "read_only": credentials.create_token(store, "app", scopes=["models:read"], actor="ops")[0],
        "other_project": credentials.create_token(store, "olga", scopes=["gateway:invoke"], actor="ops")[0],
    }


def wait_until(condition, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (a background reload on another thread) until true or ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
