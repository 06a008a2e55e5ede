"""``shipyard doctor``: is everything this project needs in working order?"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import typer

from shipyard import __version__
from shipyard.cli.output import echo, print_json, table
from shipyard.errors import CheckFailed, ShipyardError
from shipyard.workspace import Workspace

app = typer.Typer(add_completion=False)

EXTRAS = {  # extra -> the module that proves it is installed
    "serve": "uvicorn",
    "sklearn": "skops",
    "postgres": "psycopg",
    "s3": "s3fs",
    "dask": "distributed",
    "onnx": "onnxruntime",
    "boosters": "xgboost",
    "ui": "jinja2",
    "feast": "feast",
}


def _check(name: str, fn: Callable[[], str]) -> dict[str, str]:
    try:
        return {"check": name, "status": "ok", "detail": fn()}
    except ShipyardError as exc:
        return {"check": name, "status": "fail", "detail": str(exc)}
    except Exception as exc:
        return {"check": name, "status": "fail", "detail": f"{type(exc).__name__}: {exc}"}


def _loaded(path: Path) -> Any:
    """shipyard.yaml validated once for every check that reads it (keyed by its modification time;
    a failed load is not kept)."""
    return _load_config(path, path.stat().st_mtime_ns)


@cache
def _load_config(path: Path, _stamp: int) -> Any:
    from shipyard.config import load_config

    return load_config(path)


def _config(ws: Workspace) -> str:
    if not ws.project.config_path.exists():
        return "no shipyard.yaml (dvc.yaml project)"
    cfg = _loaded(ws.project.config_path)
    return f"{ws.project.config_path.name}: {len(cfg.pipeline.stages)} stages"


def _feature_checks(ws: Workspace) -> list[dict[str, str]]:
    """The Feast repository and its online store, only when shipyard.yaml has ``features:`` (these
    checks import Feast, 8-10 s; a project without the section imports nothing of it)."""
    try:
        section = _loaded(ws.project.config_path).features if ws.project.config_path.exists() else None
    except ShipyardError:
        return []  # the config check above reports the file's problem
    if section is None:
        return []
    from shipyard.features import health
    from shipyard.features.stage import repo_path

    repo = repo_path(ws.project.root, section.repo)
    listed = _check("features", lambda: health.check_definitions(repo)[0])
    if listed["status"] != "ok":
        return [listed, {"check": "online store", "status": "fail",
                         "detail": "not checked: the feature repository did not load"}]
    return [listed, _check("online store", lambda: health.check_online(repo))]


def _store(ws: Workspace) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from shipyard.store.migrate import current, heads

    with ws.store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        at = current(conn)
    state = "current" if at == heads() else f"at {sorted(at)}, newest {sorted(heads())}"
    where = make_url(ws.store.url).render_as_string(hide_password=True)
    return f"{where} ({ws.store.dialect}, schema {state})"


def _audit(ws: Workspace) -> str:
    from shipyard import audit

    with ws.store.read() as session:
        result = audit.verify(session)
    if not result.ok:
        raise CheckFailed(f"audit log is broken: {result.problem}",
                          hint="the store was modified outside Shipyard; restore it from a backup")
    return f"hash chain intact ({result.events} events)"


def _objects(ws: Workspace, verify_all: bool) -> str:
    """Write, read back and delete a fresh probe object (fresh, so an old copy proves nothing)."""
    from shipyard.objects import key_of

    probe = b"shipyard doctor probe " + os.urandom(16).hex().encode() + b"\n"
    oid = ws.objects.put_bytes(probe)
    try:
        if ws.objects.get_bytes(oid) != probe:
            raise CheckFailed(f"object {oid} read back different bytes from {ws.objects.backend.url}")
    finally:
        ws.objects.backend.delete(key_of(oid))
    detail = f"{ws.objects.backend.url} (write, read and verify ok)"
    if verify_all:
        count = sum(1 for _ in ws.objects.backend.list())
        bad = ws.objects.verify_all()
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise CheckFailed(f"{len(bad)} of {count} objects are corrupt: {shown}",
                              hint="delete the corrupt files under the object store and re-create them "
                                   "(re-run the stages that made them)")
        detail += f"; all {count} objects verified"
    return detail


def _git(ws: Workspace) -> str:
    if shutil.which("git") is None:
        raise CheckFailed("git is not installed", hint="install git; runs record their commit")
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ws.project.root, capture_output=True, text=True)
    version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    if out.returncode != 0:
        return f"{version}; not a git repository (or no commit yet): runs will not record a commit"
    return f"{version}; HEAD {out.stdout.strip()}"


def _extras() -> str:
    have = [e for e, mod in EXTRAS.items() if importlib.util.find_spec(mod) is not None]
    missing = [e for e in EXTRAS if e not in have]
    return f"installed: {', '.join(have) or 'none'}" + (f"; missing: {', '.join(missing)}" if missing else "")


def _disk(ws: Workspace) -> str:
    state = ws.project.state_dir
    folder = state if state.exists() else ws.project.root
    free_gib = shutil.disk_usage(folder).free / 2**30
    if free_gib < 1:
        raise CheckFailed(f"only {free_gib:.2f} GiB free on the disk holding {folder}",
                          hint="free some disk space: writes fail cleanly (nothing is half-written) when it is full")
    return f"{free_gib:.1f} GiB free under {folder}"


@app.command()
def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    verify_objects: bool = typer.Option(False, "--verify-objects",
                                        help="Also re-hash every stored object (reads the whole store)."),
) -> None:
    """Check versions, shipyard.yaml, the Feast repo and online store (with features:), the store, the
    object store, git and extras. Exit 1 on a failure.

    Example: shipyard doctor --json
    """
    ws = Workspace.discover()
    results = [
        {"check": "versions", "status": "ok",
         "detail": f"shipyard {__version__}, Python {platform.python_version()}"},
        {"check": "project", "status": "ok", "detail": str(ws.project.root)},
        _check("config", lambda: _config(ws)),
        *_feature_checks(ws),
        store := _check("store", lambda: _store(ws)),
        _check("audit", lambda: _audit(ws)) if store["status"] == "ok" else
        {"check": "audit", "status": "fail", "detail": "not checked: the store did not open"},
        _check("objects", lambda: _objects(ws, verify_objects)),
        _check("git", lambda: _git(ws)),
        _check("extras", _extras),
        _check("disk", lambda: _disk(ws)),
    ]
    ws.close()
    if json_out:
        print_json(results)
    else:
        table(["check", "status", "detail"], [(r["check"], r["status"], r["detail"]) for r in results])
    failed = [r["check"] for r in results if r["status"] != "ok"]
    if failed:
        raise CheckFailed(f"doctor found problems: {', '.join(failed)}",
                          hint="each failed check above says what is wrong and what to do")
    if not json_out:
        echo("all checks passed")
