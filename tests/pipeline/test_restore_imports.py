"""A run-cache restore records its runs without paying for alembic or pydantic imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import select

from shipyard.pipeline.runner import Context, RunOptions, run
from shipyard.store import runs
from tests.pipeline.helpers import two_stage, write_params


def restorable(root: Path) -> Path:
    """A two-stage project whose next run restores ``train`` (k=1) from the run cache."""
    two_stage(root)
    for k in (1, 5):
        write_params(root, {"prepare": {"n": 3}, "train": {"k": k, "unused": 0}})
        run(Context(root, root / ".shipyard"), RunOptions())
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 1, "unused": 0}})
    old = time.time() - 5  # as files checked out earlier are: the parse cache trusts them
    for path in root.iterdir():
        if path.is_file():
            os.utime(path, (old, old))
    run(Context(root, root / ".shipyard"), RunOptions(dry_run=True))  # refreshes the parse cache
    return root


def test_restore_imports_neither_alembic_nor_pydantic_and_records_the_params(project):  # type: ignore[no-untyped-def]
    root = restorable(project.project.root)
    probe = textwrap.dedent("""
        import sys
        from pathlib import Path
        from shipyard.pipeline.runner import Context, RunOptions, run
        summary = run(Context(Path.cwd(), Path.cwd() / ".shipyard", echo=lambda m: None), RunOptions())
        print("RESTORED", summary.restored, summary.run_id)
        print("HEAVY", [m for m in ("alembic", "pydantic", "pandas", "shipyard.config") if m in sys.modules])
        """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert "RESTORED ['train']" in out.stdout, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    pipeline_run = out.stdout.split("RESTORED ['train'] ")[1].split()[0]
    with project.store.read() as session:
        child = session.scalars(select(runs.Run).where(runs.Run.parent_run_id == pipeline_run)).one()
        params = dict(session.execute(select(runs.Param.key, runs.Param.value).where(runs.Param.run_id == child.id)).all())
    assert params == {"train.k": "1"}


def test_cli_restore_without_a_model_section_imports_no_pydantic(project):  # type: ignore[no-untyped-def]
    """``shipyard run`` looks for a model to register only in the raw YAML when there is none."""
    root = restorable(project.project.root)
    probe = textwrap.dedent("""
        import sys
        from shipyard.cli.main import run
        try:
            run(["run"])
        except SystemExit as exc:
            assert not exc.code, exc.code
        print("HEAVY", [m for m in ("alembic", "pydantic", "shipyard.config", "shipyard.registry") if m in sys.modules])
        """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert "restored" in out.stdout.lower(), out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
