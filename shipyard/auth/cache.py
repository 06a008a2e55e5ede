"""Token checks on the request path without a database round trip.

``TokenCache`` holds every live token's hash with its principal, loaded in two queries and reloaded
when older than ``interval`` seconds: a revocation, a disabled user or a role change is seen within
that interval, and a request costs a checksum, a SHA-256 and a dictionary lookup. Last-use times are
kept in memory and written in one statement at each reload.

Under steady traffic no request waits for a reload: once the table is ``RELOAD_AHEAD`` of the
interval old, the next lookup starts one reload on a background thread and goes on with the table
it has (still within the interval). Only a lookup that finds the table past the full interval (no
traffic for a while, or the store slow to answer) reloads before answering, so a revocation is
still seen within the interval.
"""

from __future__ import annotations

import itertools
import logging
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
# the fraction of the interval after which a lookup starts the next reload in the background
RELOAD_AHEAD = 0.8

_log = logging.getLogger(__name__)


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
        # public for the enforcement point's fast path (AuthMiddleware.__call__), which reads them
        # inline, as ``check`` does: the clock, when to start the next reload (``reload_ahead``), and
        # the last use of each token id since the last reload (written to the store at the next one)
        self.clock = clock
        self.reload_due_at = float("-inf")
        self.last_used: dict[int, float] = {}
        self._entries: dict[str, _Entry] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()
        self._reloading = False  # a background reload is running
        # a new value at every reload and expire(), never one used before (next() of a count is atomic,
        # a reload runs on another thread): a decision remembered under an older generation may rest
        # on a revoked token or an old role, so callers that memoise decisions compare it
        self._generations = itertools.count(1)
        self.generation = 0

    @property
    def stale(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.interval

    def expire(self) -> None:
        """Reload on the next lookup (this process changed tokens, roles or users: see it at once)."""
        self._loaded_at = None
        self.generation = next(self._generations)

    def entry(self, token: str) -> _Entry | None:
        """The loaded entry of ``token`` (None when unknown), for a caller that remembers it."""
        return self._entries.get(tokens.token_hash(token))

    def valid_until(self, entry: _Entry) -> float:
        """Until when a decision made now for ``entry`` stands: the end of this load's interval, or the
        token's expiry when sooner (-inf when nothing is loaded). A remembered decision stands while
        ``generation`` is the one it was made at (no reload or expire() since) and ``clock()`` is
        before this."""
        if self._loaded_at is None:
            return float("-inf")
        until = self._loaded_at + self.interval
        return until if entry.expires_at is None else min(until, entry.expires_at)

    def may_reload_for(self, token: str) -> bool:
        """True when ``token`` missed, is well formed and the last load is over ``MISS_RELOAD_S`` old."""
        loaded = self._loaded_at
        return (loaded is not None and self.clock() - loaded >= MISS_RELOAD_S and tokens.well_formed(token)
                and tokens.token_hash(token) not in self._entries)

    def refresh(self, *, only_if_stale: bool = False, only_if_due: bool = False) -> None:
        """Write pending last-use times, then reload every live token (two queries).

        ``only_if_stale`` / ``only_if_due``: skip when another thread reloaded while this one waited
        for the lock (the table is no longer past its interval / its reload-ahead point)."""
        with self._lock:
            if (only_if_stale and not self.stale) or (only_if_due and self.clock() < self.reload_due_at):
                return
            before = self.generation  # expire() assigns a new one: a reload that read the store before it must not count
            used, self.last_used = self.last_used, {}
            if used:
                with self.store.write() as session:
                    repo.touch_tokens(session, used)
            with self.store.read() as session:
                rows = repo.live_tokens(session)
                roles = repo.roles(session, {who.id for _, who in rows})
            self._entries = {tok.hash: _Entry(tok.id, to_principal(who, roles[who.id], tok), tok.expires_at)
                             for tok, who in rows}
            loaded = self.clock()
            self.reload_due_at = loaded + self.interval * RELOAD_AHEAD
            # an expire() while the store was read may be about a change this load missed: reload again
            self._loaded_at = loaded if self.generation == before else None
            self.generation = next(self._generations)

    def reload_ahead(self) -> None:
        """Start one reload on a background thread, so no request waits for it while it is on time."""
        if self._reloading:
            return
        self._reloading = True
        threading.Thread(target=self._reload_in_background, name="shipyard-token-reload", daemon=True).start()

    def _reload_in_background(self) -> None:
        try:
            self.refresh(only_if_due=True)
        except Exception:  # the store is down: the next lookup past the interval reloads and reports it
            self.reload_due_at = self.clock() + MISS_RELOAD_S  # not one thread per request meanwhile
            _log.warning("token cache: the background reload failed; retrying in %.0f s", MISS_RELOAD_S,
                         exc_info=True)
        finally:
            self._reloading = False

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
        now = self.clock()
        if entry.expires_at is not None and entry.expires_at <= now:
            return TokenCheck(None, "the token has expired")
        self.last_used[entry.token_id] = now
        if now >= self.reload_due_at:
            self.reload_ahead()
        return TokenCheck(entry.principal, "valid token")
