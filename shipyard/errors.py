"""One exception hierarchy for Shipyard.

Every error carries a message (what went wrong, and where), a hint (what to do next) and the exit
code the CLI returns for it: 1 a check failed, 2 usage or input error, 3 internal error. Adapters
that talk to third-party libraries catch their exceptions and re-raise one of these, chaining the
cause with ``from`` so nothing is lost.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    exit_code: int = EXIT_USAGE
    http_status: int = 400

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(ShipyardError):
    """The command was called wrongly (bad option, bad argument)."""


class ConfigError(ShipyardError):
    """shipyard.yaml, params.yaml or another input file is malformed."""


class InputError(ShipyardError):
    """A file, request or value given to Shipyard is not what it expects."""


class PathEscapeError(InputError):
    """A path points outside the project or the store."""


class NotFound(ShipyardError):
    """A named thing (stage, run, model, object, alias) does not exist."""

    http_status = 404


class AlreadyExists(ShipyardError):
    """Creating something that is already there."""

    http_status = 409


class MissingExtra(ShipyardError):
    """An optional dependency group is not installed."""


class CheckFailed(ShipyardError):
    """A check ran and said no (validation, gate, audit verification)."""

    exit_code = EXIT_CHECK_FAILED
    http_status = 422


class StoreError(ShipyardError):
    """The metadata store cannot be opened, migrated or written."""

    exit_code = EXIT_INTERNAL
    http_status = 503


class StoreBusy(StoreError):
    """Another process holds the store for longer than we are willing to wait."""


class ObjectCorrupt(ShipyardError):
    """An object read back does not match its hash (Invariant 3)."""

    exit_code = EXIT_INTERNAL
    http_status = 500


class StorageFull(ShipyardError):
    """The disk or quota is full; nothing was written."""

    exit_code = EXIT_INTERNAL
    http_status = 507


class UnsafeModel(ShipyardError):
    """A model file would run code on load and was not explicitly trusted."""


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """Return a hint naming the closest known names to ``name``, or None."""
    known = sorted(set(choices))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    # Swapped letters ('dpes' for 'deps') are the commonest typo: rank same-letter names first.
    close.sort(key=lambda c: sorted(c) != sorted(name))
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if known and len(known) <= 12:
        return "known: " + ", ".join(known)
    return None


def require_extra(module: str, extra: str) -> None:
    """Import ``module`` or raise MissingExtra naming the pip command that installs it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"this feature needs the optional package {module!r}, which is not installed",
            hint=f'pip install "shipyard[{extra}]"',
        ) from exc
