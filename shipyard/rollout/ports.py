"""What the rollout controller needs from the registry and the notifier, as small Protocols.

``RegistryPort`` is satisfied by ``RegistryAdapter`` over ``shipyard.registry``; ``Notifier`` by
``shipyard.notify.send`` when the notify package is installed, else by ``NullNotifier`` (STYLE A3).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from shipyard.errors import NotFound


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    passed_gate: bool | None  # None: no verdict recorded


class RegistryPort(Protocol):
    def version(self, session: Session, name: str, version: int) -> VersionInfo: ...

    def champion(self, session: Session, name: str) -> int | None: ...

    def champions(self, session: Session) -> dict[str, int]: ...

    def set_champion(self, session: Session, name: str, version: int, *, force: bool, reason: str) -> None: ...


class RegistryAdapter:
    """``RegistryPort`` over ``shipyard.registry`` (the alias move is audited there)."""

    def version(self, session: Session, name: str, version: int) -> VersionInfo:
        from shipyard import registry

        mv = registry.resolve(session, f"{name}@{version}")
        verdict = mv.verdict
        return VersionInfo(mv.name, mv.version, None if verdict is None else bool(verdict.get("passed")))

    def champion(self, session: Session, name: str) -> int | None:
        from shipyard import registry

        try:
            return registry.resolve(session, f"{name}@champion").version
        except NotFound:
            return None

    def champions(self, session: Session) -> dict[str, int]:
        from shipyard import registry

        return {mv.name: mv.version for mv in registry.find_versions(session) if "champion" in mv.aliases}

    def set_champion(self, session: Session, name: str, version: int, *, force: bool, reason: str) -> None:
        from shipyard import registry

        registry.set_alias(session, name, "champion", version, force=force, reason=reason)


class Notifier(Protocol):
    def __call__(self, event: dict[str, Any]) -> Any: ...


class NullNotifier:
    """Accepts every event and sends nothing (no ``notify:`` configured, or no notify package)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> list[Any]:
        self.events.append(event)
        return []


def notifier_for(notifiers: list[Any]) -> Notifier:
    """``shipyard.notify.send`` bound to the configured notifiers, or the null notifier."""
    if not notifiers:
        return NullNotifier()
    try:
        send = importlib.import_module("shipyard.notify").send
    except (ImportError, AttributeError):
        return NullNotifier()

    def deliver(event: dict[str, Any]) -> Any:
        return send(event, notifiers)

    return deliver
