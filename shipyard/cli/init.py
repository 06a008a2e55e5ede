"""``shipyard init``: start a project in the current folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import typer

from shipyard.cli.output import echo
from shipyard.errors import AlreadyExists, InputError, ShipyardError, StorageFull, UsageError
from shipyard.project import STATE_DIR, Project, ignore_state_dir

app = typer.Typer(add_completion=False)

CONFIG_TEMPLATE = """\
# Shipyard project: see docs/user-guide.md for every key.
pipeline:
  stages: {}
    # prepare:
    #   cmd: python src/prepare.py
    #   deps: [src/prepare.py, data/raw.csv]
    #   params: [prepare]
    #   outs: [data/prepared/]
"""

PARAMS_TEMPLATE = """\
# Parameters read by your stages; a stage lists the keys it uses under `params:`.
{}
"""


@app.command()
def init(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing shipyard.yaml and params.yaml."),
    keep: bool = typer.Option(False, "--keep", help="Keep an existing shipyard.yaml and params.yaml (adopt the "
                              "project): only create .shipyard/ and the .gitignore entry."),
    path: Path = typer.Argument(Path("."), help="Project folder (default: here)."),
) -> None:
    """Create shipyard.yaml, params.yaml and .shipyard/ (added to .gitignore).

    In a DVC project (dvc.yaml, no shipyard.yaml) only .shipyard/ is created: dvc.yaml is adopted.

    Nothing is changed unless everything succeeds: the store is opened (and migrated) first, the
    files are written atomically inside the store transaction that records the ``project.init``
    audit event, and restored if that transaction fails.

    Example: shipyard init && shipyard doctor
    """
    if force and keep:
        raise UsageError("--force and --keep contradict each other; nothing was changed",
                         hint="--force overwrites shipyard.yaml, --keep keeps it: pick one")
    root = path.resolve()
    project = Project(root)
    config_exists = project.config_path.exists()
    if config_exists and not (force or keep):
        raise AlreadyExists(f"{project.config_path} already exists; nothing was changed",
                            hint="use --keep to keep it and only create .shipyard/, or --force to overwrite it")
    # A DVC project is adopted as it is: a shipyard.yaml with stages would hide its dvc.yaml.
    adopt_dvc = not config_exists and (root / "dvc.yaml").is_file()
    writes: dict[Path, str] = {}
    if not (keep and config_exists) and not adopt_dvc:
        writes[project.config_path] = CONFIG_TEMPLATE
    if (not project.params_path.exists() or force) and not adopt_dvc:
        writes[project.params_path] = PARAMS_TEMPLATE
    gitignore = root / ".gitignore"
    ignored = _ignored(gitignore)
    if ignored is not None:
        writes[gitignore] = ignored
    existing = [p.name for p in (project.config_path, project.params_path) if p.exists() and p in writes]
    kept = [p.name for p in (project.config_path, project.params_path) if p.exists() and p not in writes]

    from shipyard import audit
    from shipyard.store import open_store

    created = _make_dirs(root, project.state_dir)
    try:
        store = open_store(project.state_dir)
    except ShipyardError:
        for folder in reversed(created):  # leave no empty folders behind
            _rmdir_quietly(folder)
        raise
    saved = {p: (p.read_bytes() if p.exists() else None) for p in writes}
    try:
        with store.write() as session:
            audit.record(session, "project.init", str(root), {"overwrote": existing, "kept": kept})
            session.flush()
            for target, text in writes.items():
                _write_atomic(target, text)
    except BaseException:
        for target, before in saved.items():  # put back exactly what was there
            _restore(target, before)
        raise
    finally:
        store.close()
    ignore_state_dir(project)
    echo(f"Initialized Shipyard project in {root}")
    wrote = [p.name for p in (project.config_path, project.params_path) if p in writes]
    echo(f"  wrote {', '.join(wrote) or 'no files'}" + (f"; kept {', '.join(kept)}" if kept else "")
         + f"; state in {STATE_DIR}/ (ignored by git)")
    if adopt_dvc:
        echo("  adopted dvc.yaml: 'shipyard run' runs its stages as they are (no shipyard.yaml needed; "
             "'shipyard import dvc' converts it)")
        echo("  next: 'shipyard status', then 'shipyard run'")
    else:
        echo("  next: add stages to shipyard.yaml, then 'shipyard run'")


def _ignored(gitignore: Path) -> str | None:
    """The new .gitignore text with the state folder added, or None if it is already ignored."""
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if f"/{STATE_DIR}/" in lines or f"{STATE_DIR}/" in lines or STATE_DIR in lines:
        return None
    return "\n".join([*lines, f"/{STATE_DIR}/"]) + "\n"


def _make_dirs(*folders: Path) -> list[Path]:
    """Create folders; returns the ones this call created (for clean-up on failure)."""
    created = []
    for folder in folders:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, folder) from exc
        created.extend(reversed(missing))
    return created


def _rmdir_quietly(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.shipyard-tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error(exc, target) from exc


def _restore(target: Path, before: bytes | None) -> None:
    try:
        if before is None:
            target.unlink(missing_ok=True)
        elif target.read_bytes() != before:
            target.write_bytes(before)
    except OSError:
        pass


def _os_error(exc: OSError, path: Path) -> ShipyardError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"no space left on the device while writing {path}; nothing was changed",
                           hint="free some disk space and retry")
    return InputError(f"cannot write {path}: {exc.strerror}; nothing was changed",
                      hint="check that the project folder is writable")
