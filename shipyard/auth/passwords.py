"""Passwords: Argon2id through pwdlib, a minimum length, and a constant-work check.

``verify`` always runs one Argon2 verification, also for an unknown user (against a dummy hash),
so the answer takes the same time whether or not the user exists.
"""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any

from shipyard.errors import InputError, MissingExtra

MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 hashes anything, but a megabyte password is an attack, not a password


@cache
def _hasher() -> Any:
    try:
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher
    except ImportError as exc:
        raise MissingExtra("password hashing needs pwdlib with argon2", hint='pip install "shipyard[auth]"') from exc
    return PasswordHash((Argon2Hasher(),))


@cache
def _dummy_hash() -> str:
    return str(_hasher().hash(secrets.token_urlsafe(24)))


def check_strength(password: str) -> None:
    """Refuse a password that is too short or too long (InputError naming the rule)."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"password: too short ({len(password)} characters); the minimum is {MIN_LENGTH}",
                         hint="use a passphrase of a few words, or a password manager")
    if len(password) > MAX_LENGTH:
        raise InputError(f"password: too long (more than {MAX_LENGTH} characters)")


def hash_password(password: str) -> str:
    """The Argon2id hash of a password that passed ``check_strength``."""
    check_strength(password)
    return str(_hasher().hash(password))


def verify(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, the same work and False."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        ok = bool(_hasher().verify(password, stored or _dummy_hash()))
    except Exception:  # a malformed stored hash must read as "no", not crash the login
        return False
    return ok and stored is not None
