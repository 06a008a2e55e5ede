"""A stage that reads features: retrieved before it runs, versioned, fingerprinted by view."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from shipyard.errors import CheckFailed
from shipyard.pipeline.runner import Context, RunOptions, explain, run
from tests.features.feast_repo import entities, stats, write_definitions
from tests.pipeline.helpers import py

pytestmark = pytest.mark.xdist_group("feast")
# the stage only proves it ran after its features were written (no pandas import: it would cost seconds)
COUNT = "import os, sys; open(sys.argv[2], 'w').write(str(os.path.getsize(sys.argv[1])))"


def config(root: Path) -> None:
    stage = {"cmd": py(COUNT) + " {out} {out}.rows", "outs": ["{out}.rows"]}
    doc = {"features": "feature_repo", "pipeline": {"stages": {
        "train_stats": {**{k: (v.format(out="stats.parquet") if isinstance(v, str) else [x.format(out="stats.parquet") for x in v])
                           for k, v in stage.items()},
                        "features": {"refs": ["driver_stats:conv_rate", "driver_stats:acc_rate"],
                                     "entities": "labels.parquet", "out": "stats.parquet"}},
        "train_rank": {**{k: (v.format(out="rank.parquet") if isinstance(v, str) else [x.format(out="rank.parquet") for x in v])
                          for k, v in stage.items()},
                       "features": {"refs": ["driver_rank:rank"], "entities": "labels.parquet", "out": "rank.parquet"}},
    }}}
    (root / "shipyard.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def go(root: Path, lines: list[str] | None = None):  # type: ignore[no-untyped-def]
    ctx = Context(root, root / ".shipyard")
    if lines is not None:
        ctx.echo = lines.append
    return run(ctx, RunOptions())


def test_features_rerun_exactly_the_stages_using_a_changed_view(project, feast_repo):
    root = project.project.root
    shutil.copytree(feast_repo, root / "feature_repo", ignore=shutil.ignore_patterns("registry.db", "online.db"))
    table = entities(50, 24, 500)
    table.to_parquet(root / "labels.parquet", index=False)
    config(root)
    lines: list[str] = []
    first = go(root, lines)
    assert sorted(first.ran) == ["train_rank", "train_stats"]
    assert (root / "stats.parquet.rows").read_text() == str((root / "stats.parquet").stat().st_size)
    got = pd.read_parquet(root / "stats.parquet")
    assert len(got) == len(table)  # every entity row, duplicates too
    assert got["conv_rate"].isna().any()  # rows before any value: nulls
    assert any("rows of features driver_stats:conv_rate" in line for line in lines)
    assert go(root).ran == []
    # a definition change (the rank view's TTL) re-runs only the stage using that view
    write_definitions(root / "feature_repo", rank_ttl_hours=1)
    why = explain(Context(root, root / ".shipyard"), "train_rank")
    assert any(c["kind"] == "features" and c["name"] == "driver_rank definition" for c in why["changes"])
    assert go(root).ran == ["train_rank"]
    write_definitions(root / "feature_repo")  # back: the earlier result comes from the run cache
    back = go(root)
    assert back.restored == ["train_rank"] and back.ran == []
    assert len(pd.read_parquet(root / "rank.parquet")) == len(table)
    # a source change re-runs only the stage reading that source
    changed = stats(50, 24, seed=7)
    changed.to_parquet(root / "feature_repo" / "data" / "driver_stats.parquet", index=False)
    assert go(root).ran == ["train_stats"]
    assert go(root).ran == []
    # lineage: the stage's run names the views and reads the retrieved rows as a dataset version
    from shipyard.store import open_store
    from shipyard.store import runs as runs_repo

    store = open_store(root / ".shipyard")
    with store.read() as session:
        from sqlalchemy import select

        tags = {t.value for t in session.scalars(select(runs_repo.Tag).where(runs_repo.Tag.key == "shipyard.features"))}
        inputs = {d.name for d in session.scalars(select(runs_repo.DatasetInput))}
    store.close()
    views = [json.loads(t)["views"] for t in tags]
    assert any("driver_rank" in v for v in views) and any("driver_stats" in v for v in views)
    assert any(name.startswith("stats@") for name in inputs) and any(name.startswith("rank@") for name in inputs)


def test_a_bad_entity_row_fails_the_stage_naming_it(project, feast_repo):
    root = project.project.root
    shutil.copytree(feast_repo, root / "feature_repo", ignore=shutil.ignore_patterns("registry.db", "online.db"))
    bad = entities(50, 24, 20)
    bad.loc[3, "driver_id"] = None  # a row without its key cannot be joined: an input error naming it
    bad.to_parquet(root / "labels.parquet", index=False)
    config(root)
    lines: list[str] = []
    with pytest.raises(CheckFailed, match="1 stage\\(s\\) failed: train_stats"):
        go(root, lines)
    assert any("the entity table has 1 row(s) without driver_id (rows 4)" in line for line in lines), lines
    assert not (root / "stats.parquet.rows").exists()


def test_a_project_without_features_imports_nothing_of_feast(project):
    root = project.project.root
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"pipeline": {"stages": {
        "one": {"cmd": py("open('a.txt', 'w').write('a')"), "outs": ["a.txt"]}}}}))
    code = ("import sys\nfrom shipyard.cli.main import run\nimport shipyard.cli.main\n"
            "try:\n    run(['run'])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('FEAST' if [m for m in sys.modules if m == 'feast' or m.startswith('feast.')] else 'CLEAN')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "CLEAN", done.stdout + done.stderr
    assert (root / "a.txt").read_text() == "a"


def test_status_of_a_feature_project_reads_neither_the_config_nor_feast(project, feast_repo):
    """The loader's cache carries features.repo: a no-op status validates nothing (no pydantic)."""
    root = project.project.root
    shutil.copytree(feast_repo, root / "feature_repo", ignore=shutil.ignore_patterns("registry.db", "online.db"))
    entities(50, 24, 100).to_parquet(root / "labels.parquet", index=False)
    config(root)
    assert sorted(go(root).ran) == ["train_rank", "train_stats"]
    old = time.time() - 60  # older than the loader's racy-file window, so its caches are written
    for path in [root / "shipyard.yaml", *(p for p in (root / "feature_repo").rglob("*") if p.is_file())]:
        os.utime(path, (old, old))
    assert go(root).ran == []  # writes the loader's and the definitions' caches
    code = ("import sys\nfrom shipyard.cli.main import run\n"
            "try:\n    run(['status'])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = sorted(m for m in sys.modules if m in ('feast', 'pydantic', 'shipyard.config'))\n"
            "print('LOADED ' + ','.join(heavy) if heavy else 'CLEAN')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "CLEAN", done.stdout + done.stderr
