"""Token checks on the request path without a database round trip.

``TokenCache`` holds every live token's hash with its principal, loaded in two queries and reloaded
when older than ``interval`` seconds: a revocation, a disabled user or a role change is seen within
that interval, and a request costs a checksum, a SHA-256 and a dictionary lookup. Last-use times are
kept in memory and written in one statement at each reload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shipyard.auth import tokens
from shipyard.auth.model import Principal
from shipyard.auth.service import to_principal
from shipyard.store import Store
from shipyard.store import auth as repo

DEFAULT_INTERVAL_S = 30.0
# a well-formed token the cache does not know may be one made since the last load (shipyard tokens
# create on another process): reload for it, but at most this often, so unknown tokens cannot turn
# every request into two queries
MISS_RELOAD_S = 1.0


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of checking one token: the principal, or why there is none."""

    principal: Principal | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.principal is not None


@dataclass(frozen=True)
class _Entry:
    token_id: int
    principal: Principal
    expires_at: float | None


class TokenCache:
    """Live tokens by hash, reloaded from the store every ``interval`` seconds (on the next lookup)."""

    def __init__(self, store: Store, interval: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.interval = interval
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._loaded_at: float | None = None
        self._used: dict[int, float] = {}
        self._lock = threading.Lock()
        # bumped at every reload and expire(): a decision remembered under an older generation may
        # rest on a revoked token or an old role, so callers that memoise decisions compare it
        self.generation = 0

    @property
    def stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self.interval

    def expire(self) -> None:
        """Reload on the next lookup (this process changed tokens, roles or users: see it at once)."""
        self._loaded_at = None
        self.generation += 1

    def entry(self, token: str) -> _Entry | None:
        """The loaded entry of ``token`` (None when unknown), for a caller that remembers it."""
        return self._entries.get(tokens.token_hash(token))

    def still(self, generation: int, entry: _Entry) -> bool:
        """Whether a decision made for ``entry`` at ``generation`` still stands: no reload since, none
        due, the token unexpired; then its use is recorded (written at the next reload)."""
        now, loaded = self._clock(), self._loaded_at
        if generation != self.generation or loaded is None or now - loaded >= self.interval:
            return False
        if entry.expires_at is not None and entry.expires_at <= now:
            return False
        self._used[entry.token_id] = now
        return True

    def may_reload_for(self, token: str) -> bool:
        """True when ``token`` missed, is well formed and the last load is over ``MISS_RELOAD_S`` old."""
        loaded = self._loaded_at
        return (loaded is not None and self._clock() - loaded >= MISS_RELOAD_S and tokens.well_formed(token)
                and tokens.token_hash(token) not in self._entries)

    def refresh(self, *, only_if_stale: bool = False) -> None:
        """Write pending last-use times, then reload every live token (two queries)."""
        with self._lock:
            if only_if_stale and not self.stale:
                return  # another thread reloaded while this one waited for the lock
            used, self._used = self._used, {}
            if used:
                with self.store.write() as session:
                    repo.touch_tokens(session, used)
            with self.store.read() as session:
                rows = repo.live_tokens(session)
                roles = repo.roles(session, {who.id for _, who in rows})
            self._entries = {tok.hash: _Entry(tok.id, to_principal(who, roles[who.id], tok), tok.expires_at)
                             for tok, who in rows}
            self._loaded_at = self._clock()
            self.generation += 1

    def check(self, token: str) -> TokenCheck:
        """The principal a token stands for, or the reason it is refused."""
        # every stored token is well formed, so a hit needs no checksum: it only names a miss's reason
        if self.stale and tokens.well_formed(token):
            self.refresh(only_if_stale=True)
        entry = self._entries.get(tokens.token_hash(token))
        if entry is None:
            if not tokens.well_formed(token):
                return TokenCheck(None, "the token is malformed (wrong prefix, length or checksum)")
            return TokenCheck(None, "the token is unknown or was revoked")
        now = self._clock()
        if entry.expires_at is not None and entry.expires_at <= now:
            return TokenCheck(None, "the token has expired")
        self._used[entry.token_id] = now
        return TokenCheck(entry.principal, "valid token")
