"""What a pipeline run records beside its outputs: git facts, dotted params, metrics, dataset lineage."""

from __future__ import annotations

import subprocess

from sqlalchemy import select

from shipyard.data.versions import add_dataset
from shipyard.pipeline.runner import Context, RunOptions, run
from shipyard.store import runs
from tests.pipeline.helpers import two_stage


def test_stage_runs_record_git_params_metrics_and_dataset_versions(project):  # type: ignore[no-untyped-def]
    root = project.project.root
    two_stage(root)
    (root / "raw.txt").write_text("a,b\n1,2\n3,4\n")
    (root / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    (root / "raw.txt").unlink()
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text().replace("raw.txt", "raw.csv"))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    version = add_dataset(project.store, project.objects, project.hasher, "raw.csv", name="raw").version

    summary = run(Context(root, root / ".shipyard"), RunOptions())
    assert summary.ran == ["prepare", "train"]

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    with project.store.read() as session:
        stage_runs = {r.name: r for r in session.scalars(select(runs.Run).where(runs.Run.parent_run_id.is_not(None)))}
        assert {r.git_commit for r in stage_runs.values()} == {commit}
        prepare, train = stage_runs["prepare"], stage_runs["train"]
        params = dict(session.execute(select(runs.Param.key, runs.Param.value).where(runs.Param.run_id == prepare.id)).all())
        assert params == {"prepare.n": "3"}
        inputs = list(session.scalars(select(runs.DatasetInput).where(runs.DatasetInput.run_id == prepare.id)))
        assert [(i.name, i.digest, i.source) for i in inputs] == [(version.ref, version.oid, "raw.csv")]
        assert not list(session.scalars(select(runs.DatasetInput).where(runs.DatasetInput.run_id == train.id)))
        metric = session.get(runs.LatestMetric, (train.id, "k"))
        assert metric is not None and metric.value == 1.0
