"""Artifact paths: relative POSIX paths that can only name something inside the store.

MLflow shipped at least seven path-traversal CVEs in artifact handling (``..``, ``\\..\\``, double
URL-encoding, absolute paths). Here a path is URL-decoded until it stops changing, and refused when
it is absolute, has a drive letter, a backslash, a NUL or control character, or an empty, ``.`` or
``..`` segment. Object ids are derived from content, so an accepted path is only ever a lookup key.
"""

from __future__ import annotations

from urllib.parse import unquote

from shipyard.errors import PathEscapeError

MAX_PATH_LENGTH = 1000


def safe_relative(path: str, what: str = "artifact path") -> str:
    """``path`` normalised (no trailing slash), or PathEscapeError saying why it is refused."""
    if not isinstance(path, str):
        raise PathEscapeError(f"{what} must be a string, got {type(path).__name__}")
    decoded = path
    for _ in range(5):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        raise PathEscapeError(f"{what} {path!r} is URL-encoded too many times")
    shown = repr(path) if decoded == path else f"{path!r} (decoded: {decoded!r})"
    if len(decoded) > MAX_PATH_LENGTH:
        raise PathEscapeError(f"{what} is {len(decoded)} characters long; the limit is {MAX_PATH_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        raise PathEscapeError(f"{what} {shown} contains a control character")
    if "\\" in decoded:
        raise PathEscapeError(f"{what} {shown} contains a backslash", hint="use forward slashes")
    if decoded.startswith("/") or (len(decoded) > 1 and decoded[1] == ":"):
        raise PathEscapeError(f"{what} {shown} is absolute", hint="artifact paths are relative to the run")
    stripped = decoded.rstrip("/")
    parts = stripped.split("/")
    if not stripped or any(part in ("", ".", "..") for part in parts):
        raise PathEscapeError(f"{what} {shown} has an empty, '.' or '..' segment",
                              hint="artifact paths may not climb out of the run's artifact folder")
    return stripped
