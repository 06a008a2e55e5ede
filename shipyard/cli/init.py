"""``shipyard init``: start a project in the current folder."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.output import echo
from shipyard.errors import AlreadyExists
from shipyard.project import CONFIG_NAME, PARAMS_NAME, STATE_DIR, Project

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
    path: Path = typer.Argument(Path("."), help="Project folder (default: here)."),
) -> None:
    """Create shipyard.yaml, params.yaml and .shipyard/ (added to .gitignore).

    Example: shipyard init && shipyard doctor
    """
    root = path.resolve()
    project = Project(root)
    existing = [p for p in (project.config_path, project.params_path) if p.exists()]
    config_exists = project.config_path.exists()
    if config_exists and not force:
        raise AlreadyExists(f"{project.config_path} already exists; nothing was changed",
                            hint="use --force to overwrite it")
    root.mkdir(parents=True, exist_ok=True)
    project.config_path.write_text(CONFIG_TEMPLATE)
    if not project.params_path.exists() or force:
        project.params_path.write_text(PARAMS_TEMPLATE)
    project.state_dir.mkdir(exist_ok=True)
    _ignore_state_dir(root / ".gitignore")

    from shipyard import audit
    from shipyard.store import open_store

    store = open_store(project.state_dir)
    with store.write() as session:
        audit.record(session, "project.init", str(root), {"overwrote": [p.name for p in existing]})
    store.close()
    echo(f"Initialized Shipyard project in {root}")
    echo(f"  wrote {CONFIG_NAME}, {PARAMS_NAME}; state in {STATE_DIR}/ (ignored by git)")
    echo("  next: add stages to shipyard.yaml, then 'shipyard run'")


def _ignore_state_dir(gitignore: Path) -> None:
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if f"/{STATE_DIR}/" not in lines and f"{STATE_DIR}/" not in lines and STATE_DIR not in lines:
        lines.append(f"/{STATE_DIR}/")
        gitignore.write_text("\n".join(lines) + "\n")
