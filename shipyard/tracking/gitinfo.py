"""Git facts of a run: commit, branch, dirty flag. Read once per folder per process."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@cache
def git_info(root: Path) -> dict[str, object]:
    """``{"commit", "branch", "dirty"}`` of the repository holding ``root``; empty outside git."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return {}
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": None if branch in (None, "HEAD") else branch,
            "dirty": None if status is None else bool(status)}


def resolve_revision(root: Path, revision: str) -> str | None:
    """The full commit id a revision (branch, tag, HEAD~1, short sha) names, or None."""
    return _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
