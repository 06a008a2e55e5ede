"""Where a project lives on disk, and paths that must stay inside it.

A project is the folder holding ``shipyard.yaml`` (or ``dvc.yaml``); its state lives in
``.shipyard/`` below it. ``SHIPYARD_HOME`` overrides the state folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import NotFound, PathEscapeError

CONFIG_NAME = "shipyard.yaml"
PARAMS_NAME = "params.yaml"
STATE_DIR = ".shipyard"
PROJECT_MARKERS = (CONFIG_NAME, "dvc.yaml")
OBJECTS_ENV = "SHIPYARD_OBJECTS"


def shared_objects() -> str | None:
    """The object store the team shares, from ``$SHIPYARD_OBJECTS`` (a folder or any fsspec URL)."""
    return os.environ.get(OBJECTS_ENV) or None


def objects_location(state_dir: str | os.PathLike[str]) -> str:
    """Where a project's objects live: the shared store when set, else ``STATE_DIR/objects``.

    The one place this is decided: the pipeline runner, the run cache, sync and the workspace ask here.
    """
    return shared_objects() or str(Path(state_dir) / "objects")


@dataclass(frozen=True)
class Project:
    """A project root and the locations derived from it."""

    root: Path

    @property
    def state_dir(self) -> Path:
        override = os.environ.get("SHIPYARD_HOME")
        return Path(override).resolve() if override else self.root / STATE_DIR

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def params_path(self) -> Path:
        return self.root / PARAMS_NAME

    @property
    def objects_dir(self) -> Path:
        """The local object folder (push and pull sync it with the shared store)."""
        return self.state_dir / "objects"

    @property
    def objects_location(self) -> str:
        """Where this project's objects are read and written (see ``objects_location``)."""
        return objects_location(self.state_dir)

    @property
    def stat_cache_path(self) -> Path:
        return self.state_dir / "statcache.db"

    def inside(self, path: str | os.PathLike[str], what: str = "path") -> Path:
        """Resolve ``path`` (relative to the root) and refuse it if it leaves the project."""
        return resolve_inside(self.root, path, what)

    def relative(self, path: str | os.PathLike[str]) -> str:
        """The POSIX path of ``path`` relative to the root (after the escape check)."""
        return self.inside(path).relative_to(self.root.resolve()).as_posix()


def config_section(config_path: str | os.PathLike[str], key: str, unreadable: object = None) -> object:
    """One top-level section of shipyard.yaml by a cheap look at the YAML (no pydantic, ~1 ms), so a
    command pays for the full config only when the section is there: None when absent or no file,
    ``unreadable`` when the file does not parse (the full loader reports it with file and line)."""
    import yaml

    try:
        raw = yaml.load(Path(config_path).read_text(encoding="utf-8"),
                        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError):
        return unreadable
    return raw.get(key) if isinstance(raw, dict) else None


STATE_GITIGNORE = "# Created by Shipyard: the project's state (database, caches, objects) never belongs in git.\n*\n"


def ignore_state_dir(project: Project) -> None:
    """Make sure git ignores the state folder, whichever command creates it first (not only
    ``shipyard init``): the folder gets a ``.gitignore`` of ``*``, as pytest and ruff do with their
    caches, so the user's own .gitignore is not needed. A state folder moved out of the project
    (SHIPYARD_HOME) is left alone; a read-only project only loses the marker. The folder itself
    is never created here: a command that fails on bad input must leave the project as it was."""
    if os.environ.get("SHIPYARD_HOME"):
        return
    marker = project.state_dir / ".gitignore"
    if os.path.exists(marker) or not project.state_dir.is_dir():
        return
    try:
        marker.write_text(STATE_GITIGNORE, encoding="utf-8")
    except OSError:
        pass


def find_project(start: str | os.PathLike[str] | None = None) -> Project:
    """Walk up from ``start`` to the first folder holding a project marker (its state folder is
    git-ignored from then on)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_file() for marker in PROJECT_MARKERS):
            project = Project(folder)
            ignore_state_dir(project)
            return project
    raise NotFound(
        f"no {CONFIG_NAME} in {here} or any parent folder",
        hint="run 'shipyard init' in your project's root folder",
    )


def resolve_inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str) -> Path:
    """Resolve ``path`` under ``root``, following symlinks, and refuse any escape.

    Refuses absolute paths, ``..`` segments that climb out, and symlinks pointing outside.
    """
    raw = os.fspath(path)
    base = Path(root).resolve()
    if not raw or "\x00" in raw:
        raise PathEscapeError(f"{what} {raw!r} is empty or contains a NUL byte")
    if os.path.isabs(raw) or raw.startswith("\\") or (len(raw) > 1 and raw[1] == ":"):
        raise PathEscapeError(
            f"{what} {raw!r} is absolute; it must be relative to {base}",
            hint="write the path relative to the project root",
        )
    candidate = (base / raw).resolve()
    if candidate != base and base not in candidate.parents:
        raise PathEscapeError(
            f"{what} {raw!r} resolves to {candidate}, outside {base}",
            hint="keep paths inside the project; symlinks may not point out of it",
        )
    return candidate
