"""What the report reads from the project: data deps, params files, metric files, metric rows."""

from __future__ import annotations

from pathlib import Path

from shipyard.ci import collect
from shipyard.config import load_config


def config(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "shipyard.yaml"
    path.write_text(text)
    return load_config(path)


def test_data_paths_are_sources_not_code_or_outputs(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.csv").write_text("a\n1\n")
    cfg = config(tmp_path, """
pipeline:
  stages:
    prepare: {cmd: python prep.py, deps: [prep.py, data/raw.csv, data/schema.yaml, conf.yaml], outs: [data/prepared/]}
    train: {cmd: python train.py, deps: [train.py, data/prepared/, data/prepared/train.parquet], outs: [model/]}
    evaluate: {cmd: python ev.py, deps: [model/, s3data/extra.parquet], metrics: [metrics.json, {scores.yaml: {cache: false}}]}
""")
    assert collect.data_paths(cfg, tmp_path) == ["data/raw.csv", "s3data/extra.parquet"]
    assert collect.metric_files(cfg) == ["metrics.json", "scores.yaml"]


def test_param_files_include_other_files(tmp_path: Path) -> None:
    cfg = config(tmp_path, """
pipeline:
  stages:
    train: {cmd: python t.py, params: [train, {conf/model.yaml: [lr]}]}
""")
    assert collect.param_files(cfg) == ["params.yaml", "conf/model.yaml"]


def test_flatten_and_numeric_leaves() -> None:
    assert collect.flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": [1, 2], "d": "x"}
    assert collect.numeric_leaves({"acc": 0.9, "n": 10, "ok": True, "name": "x", "nested": {"f1": 0.5},
                                   "bad": float("nan")}) == {"acc": 0.9, "n": 10.0, "nested.f1": 0.5}


def test_metric_rows_union_of_keys() -> None:
    rows = collect.metric_rows({"accuracy": 0.9}, {"accuracy": 0.92, "old_metric": 1.0}, {"val_loss": 0.3})
    by = {r.name: r for r in rows}
    assert by["accuracy"].base == 0.92 and by["old_metric"].value is None
    assert by["val_loss"].champion == 0.3 and not by["val_loss"].higher_is_better


def test_data_outside_git_is_compared_through_the_lock(tmp_path: Path) -> None:
    from shipyard.hashing import hash_file
    from shipyard.objects import ObjectStore
    from tests.ci.gitproject import git

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / ".gitignore").write_text("/data/\n/.shipyard/\n")
    raw = root / "data" / "raw.csv"
    raw.write_text("a,b\n1,x\n2,y\n")
    objects = ObjectStore.open(root / ".shipyard" / "objects")
    objects.put_path(raw)

    def lock(oid: str) -> str:
        return ("schema: shipyard-lock/1\nstages:\n  train:\n    cmd: python t.py\n    deps:\n"
                f"    - path: data/raw.csv\n      hash: {oid}\n      size: 1\n    outs: []\n")

    (root / "shipyard.lock").write_text(lock(hash_file(raw)))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    base = git(root, "rev-parse", "HEAD")
    raw.write_text("a,b,c\n1,x,0\n2,y,0\n3,z,1\n")
    (root / "shipyard.lock").write_text(lock(hash_file(raw)))
    [change] = collect.data_diff(root, base, ["data/raw.csv"], objects)
    assert change.status == "changed" and (change.base_rows, change.rows) == (2, 3)
    assert change.columns_added == ["c"]


def test_runs_metrics_and_histories_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    from shipyard.store import runs

    with store.write() as session:
        exp = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
        old = runs.create_run(session, experiment_id=exp.id, git_commit="a" * 40)
        runs.finish_run(session, old.id)
        parent = runs.create_run(session, experiment_id=exp.id, git_commit="b" * 40)
        child = runs.create_run(session, experiment_id=exp.id, parent_run_id=parent.id)
        runs.log_metrics(session, parent.id, [runs.MetricValue("accuracy", 0.5)])
        runs.log_metrics(session, child.id, [runs.MetricValue("loss", v, step=i) for i, v in enumerate([1.0, 0.6, 0.4])]
                         + [runs.MetricValue("accuracy", 0.9)])
        runs.finish_run(session, child.id)
        runs.finish_run(session, parent.id)
        parent_id, old_id = parent.id, old.id
    with store.read() as session:
        # the nearest commit with a finished top-level run wins, in the order given
        assert collect.runs_for_commit(session, ["c" * 40, "b" * 40, "a" * 40]) == (parent_id, "b" * 40)
        assert collect.runs_for_commit(session, ["a" * 40]) == (old_id, "a" * 40)
        assert collect.runs_for_commit(session, ["d" * 40]) == (None, None)
        assert collect.run_metrics(session, parent_id) == {"accuracy": 0.9, "loss": 0.4}
        assert collect.metric_histories(session, parent_id) == {"loss": [(0, 1.0), (1, 0.6), (2, 0.4)]}
