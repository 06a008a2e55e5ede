"""HMAC-SHA256 signatures of webhook bodies, and their check on the receiving side.

The signed message is ``f"{timestamp}.".encode() + body``: binding the timestamp stops a replay of an
old body with a fresh timestamp. Receivers call ``verify_signature`` with the raw body and the two
headers; it compares in constant time and refuses timestamps older than ``tolerance_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Shipyard-Signature"
TIMESTAMP_HEADER = "X-Shipyard-Timestamp"
PREFIX = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp.body`` with the shared secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def signed_headers(secret: str | None, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one delivery: content type and timestamp always, the signature with a secret."""
    timestamp = str(int(now if now is not None else time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, "User-Agent": "shipyard-notify"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def verify_signature(secret: str, body: bytes, timestamp: str | None, signature: str | None, *,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """True when ``signature`` is ours for this body and timestamp, and the timestamp is recent."""
    if not secret or not timestamp or not signature:
        return False
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    current = now if now is not None else time.time()
    if abs(current - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())
