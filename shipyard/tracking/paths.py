"""Artifact paths: relative POSIX paths that can only name something inside the store.

MLflow shipped at least seven path-traversal CVEs in artifact handling (``..``, ``\\..\\``, double
URL-encoding, absolute paths). Here a path is URL-decoded until it stops changing, refused when it is too long or
holds a control character, and then goes through ``hashing.check_relative``, the one check of a
relative key: refused when it is absolute, has a drive letter, a backslash, or an empty, ``.`` or
``..`` segment. Object ids are derived from content, so an accepted path is only ever a lookup key.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from shipyard.errors import PathEscapeError
from shipyard.hashing import check_relative

MAX_PATH_LENGTH = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a control character (one C-speed scan: every artifact request)


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
    if _CONTROL.search(decoded):
        raise PathEscapeError(f"{what} {shown} contains a control character")
    # the one check of a relative key (no filesystem: an accepted path is only a lookup key);
    # project.resolve_inside is its counterpart for paths on disk
    key = decoded.rstrip("/") if decoded.strip("/") else decoded
    return check_relative(key, f"{what} {shown}" if decoded != path else what)
