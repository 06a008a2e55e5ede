"""The API token format: ``shp_`` + 43 base62 characters of randomness + a 6-character checksum.

Like GitHub's ``ghp_`` tokens, the prefix and the CRC32 checksum let a secret scanner recognise a
leaked token, and let us refuse a mistyped or made-up one without a database query. A token is
256 random bits, so a plain SHA-256 is the right stored form (no slow KDF is needed, and
verification is one dictionary or index lookup). Standard library only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "shp_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # 62**43 > 2**256
_CHECK_LEN = 6  # 62**6 > 2**32
_SHAPE = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_BODY_LEN + _CHECK_LEN}}}$")
DISPLAY_LEN = len(PREFIX) + 8  # what lists and audit events show: shp_ + 8 characters


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECK_LEN)


def new_token() -> str:
    """A fresh random token (shown to the user once, never stored)."""
    body = _base62(secrets.randbits(256), _BODY_LEN)
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    """True when ``token`` has the shape and a valid checksum (no database needed)."""
    if not _SHAPE.match(token):
        return False
    body, check = token[len(PREFIX):-_CHECK_LEN], token[-_CHECK_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def looks_like_token(value: str) -> bool:
    """True when ``value`` starts like a Shipyard token (even a malformed one)."""
    return value.startswith(PREFIX)


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def display_prefix(token: str) -> str:
    """The short, non-secret part of a token that lists and the audit log show."""
    return token[:DISPLAY_LEN]
