"""The one retry policy for outgoing HTTP (webhooks, forge comments, the tracking server), on stamina.

A caller wraps one attempt in a function that raises ``Retryable`` for what may work a moment later
(no connection, a timeout, 408/425/429, a 5xx) and anything else for what will not (a 4xx answer,
a bad token): only ``Retryable`` is tried again. Waits grow exponentially from ``wait_initial`` up to
``wait_max``, with a little jitter so that replicas failing together do not retry together; a
server's ``Retry-After`` replaces the computed wait (capped at ``RETRY_AFTER_MAX_S``). Every policy
is bounded twice: in attempts and in total time (``timeout``), so a dead endpoint costs at most
``timeout`` seconds. When the attempts or the time run out, the last ``Retryable`` is raised.

Retries live here only: an HTTP client below a policy must not retry on its own (an httpx transport
with ``retries=2`` under five attempts made fifteen requests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429})
RETRY_AFTER_MAX_S = 60.0


class Retryable(Exception):
    """One attempt failed in a way that may succeed later; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def retryable_status(status: int) -> bool:
    """True for an HTTP status worth another try: 5xx, and 408, 425, 429."""
    return status >= 500 or status in RETRYABLE_STATUS


def retry_after_seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header's delay in seconds (the delta form; a date is ignored)."""
    if header is None:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _hook(exc: Exception) -> bool | float:
    if not isinstance(exc, Retryable):
        return False
    if exc.retry_after is not None:
        return min(exc.retry_after, RETRY_AFTER_MAX_S)
    return True


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try: ``attempts`` in all (the first included), waits from
    ``wait_initial`` doubling up to ``wait_max``, everything within ``timeout`` seconds."""

    attempts: int = 4
    wait_initial: float = 0.2
    wait_max: float = 10.0
    timeout: float = 60.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout <= 0 or self.wait_initial < 0 or self.wait_max < 0:
            raise ValueError(f"a retry policy needs attempts >= 1, a positive timeout and waits >= 0: {self}")

    def run(self, attempt: Callable[[], T]) -> T:
        """``attempt()`` until it returns, raises something other than ``Retryable``, or the policy
        is spent (then its last ``Retryable`` is raised)."""
        import stamina

        for trial in stamina.retry_context(on=_hook, attempts=self.attempts, timeout=self.timeout,
                                           wait_initial=self.wait_initial, wait_max=self.wait_max,
                                           wait_jitter=min(self.jitter, self.wait_initial)):
            with trial:
                return attempt()
        raise AssertionError("unreachable: stamina raises the last error when the policy is spent")
