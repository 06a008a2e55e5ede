"""The few git questions CI needs answered, through the git binary (no library).

Every function takes the repository root. ``resolve_base`` finds the commit to compare against;
in a shallow clone that commit is often missing, which is reported rather than guessed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import InputError, UsageError


def _git(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise UsageError("git is not installed", hint="install git; 'shipyard ci' compares commits")
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise InputError(f"git {' '.join(args)} failed in {root}: {result.stderr.strip()}")
    return result


def _git_bytes(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True)


def is_repo(root: Path) -> bool:
    return shutil.which("git") is not None and _git(root, "rev-parse", "--git-dir").returncode == 0


def require_repo(root: Path) -> None:
    """Raise a usage error naming the folder when it is not inside a git repository."""
    if not is_repo(root):
        raise UsageError(
            f"{root} is not inside a git repository; 'shipyard ci' reports on a commit",
            hint="run it in a git clone (git init && git add -A && git commit -m 'first' for a new project)",
        )


def head_commit(root: Path) -> str | None:
    out = _git(root, "rev-parse", "HEAD")
    return out.stdout.strip() if out.returncode == 0 else None


def current_branch(root: Path) -> str | None:
    out = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    name = out.stdout.strip()
    return name if out.returncode == 0 and name != "HEAD" else None


def remote_url(root: Path, remote: str = "origin") -> str | None:
    out = _git(root, "remote", "get-url", remote)
    return out.stdout.strip() if out.returncode == 0 else None


def is_shallow(root: Path) -> bool:
    return _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"


def is_dirty(root: Path) -> bool:
    return bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())


def rev_exists(root: Path, rev: str) -> str | None:
    """The full commit id of ``rev``, or None when this clone does not have it."""
    out = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass(frozen=True)
class Base:
    """The commit a report compares against, or why there is none."""

    ref: str | None
    commit: str | None
    reason: str | None = None


def default_branch(root: Path) -> str | None:
    out = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip().removeprefix("origin/")
    for name in ("main", "master"):
        if rev_exists(root, f"origin/{name}") or rev_exists(root, name):
            return name
    return None


def resolve_base(root: Path, base_ref: str | None) -> Base:
    """The merge base of HEAD and ``base_ref`` (default: the default branch), or a reason why not."""
    ref = base_ref or default_branch(root)
    if ref is None:
        return Base(None, None, "no base branch given and no main/master branch in this clone")
    candidates = [ref] if "/" in ref and rev_exists(root, ref) else [f"origin/{ref}", ref]
    found = next((c for c in candidates if rev_exists(root, c)), None)
    if found is None:
        why = f"base revision {ref!r} is not in this clone"
        if is_shallow(root):
            why += " (shallow clone: fetch it with 'git fetch --deepen=50 origin " + ref + "' or use fetch-depth: 0)"
        return Base(ref, None, why)
    merge = _git(root, "merge-base", "HEAD", found)
    if merge.returncode != 0:
        why = f"no common ancestor of HEAD and {found}"
        if is_shallow(root):
            why += " (shallow clone: the history between them was not fetched; use fetch-depth: 0)"
        return Base(ref, None, why)
    return Base(ref, merge.stdout.strip(), None)


def show(root: Path, rev: str, path: str) -> bytes | None:
    """The content of ``path`` (relative to the repository root) at ``rev``, or None if absent."""
    out = _git_bytes(root, "show", f"{rev}:{path}")
    return out.stdout if out.returncode == 0 else None


def toplevel(root: Path) -> Path:
    return Path(_git(root, "rev-parse", "--show-toplevel", check=True).stdout.strip())


def repo_path(root: Path, path: Path) -> str:
    """``path`` relative to the top of the git repository (the project may sit in a subfolder)."""
    return path.resolve().relative_to(toplevel(root).resolve()).as_posix()




def ancestors(root: Path, commit: str, limit: int = 20) -> list[str]:
    """``commit`` and its first-parent ancestors, newest first (as far as this clone has them)."""
    out = _git(root, "rev-list", "--first-parent", f"--max-count={limit}", commit)
    return out.stdout.split() if out.returncode == 0 else [commit]
