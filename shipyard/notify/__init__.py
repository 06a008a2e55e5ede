"""Notifications: signed webhooks (generic JSON, Slack, Teams), retried, never blocking the caller.

``send(event, notifiers)`` returns at once: each configured target gets the event through its own
background worker, which signs it (HMAC-SHA256 over ``timestamp + "." + body`` in
``X-Shipyard-Signature``, with ``X-Shipyard-Timestamp``), retries with exponential backoff, and
stores every delivery (delivered or failed) in the store's ``notify_deliveries`` table, so a target
that is down loses nothing. Past ``digest_after`` events within ``digest_window`` a target gets the
rest as one digest at the end of the window, not a storm. ``flush()`` waits for everything queued
(tests, shutdown); it also runs at interpreter exit.
"""

from shipyard.notify.core import (
    DeliveryResult,
    Dispatcher,
    NullNotifier,
    dispatcher,
    flush,
    redeliver,
    send,
)
from shipyard.notify.formats import render, summary
from shipyard.notify.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "Dispatcher",
    "NullNotifier",
    "dispatcher",
    "flush",
    "redeliver",
    "render",
    "send",
    "sign",
    "signed_headers",
    "summary",
    "verify_signature",
]
